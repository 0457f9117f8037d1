// Package convtest runs conversation tests: YAML files (*.test.yaml) that
// script a patient's messages and the bot's expected answers against a flow,
// in the simulator, and report failures, coverage of the flow's steps and
// branches, JUnit XML and GitHub annotations. `safeflow test` is its
// command line.
package convtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"time"

	"github.com/safeflow/safeflow/engine/answer"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/flows/diag"
)

// Suite is a set of test files, each bound to the flows found next to it.
type Suite struct {
	Files []*File
	// Flows maps each folder to the flows it holds.
	Flows map[string]*flows.Set
	// Broken lists flow diagnostics with errors, which fail the tests of
	// their folder.
	Broken diag.List
}

// Load finds the test files in paths (folders are searched recursively),
// parses them and loads the flows next to them. Mistakes in test files are
// returned together as Problems; a path that cannot be read is an error.
func Load(paths []string) (*Suite, error) {
	files, err := flows.FindFiles(paths, flows.IsTestFile)
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		if info, err := os.Stat(p); err == nil && !info.IsDir() && !flows.IsTestFile(p) {
			return nil, fmt.Errorf("%s is not a conversation test file: test files are named *.test.yaml", p)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no conversation test files (*.test.yaml) found in %v", paths)
	}
	slices.Sort(files)
	files = slices.Compact(files)
	s := &Suite{Flows: map[string]*flows.Set{}}
	var problems Problems
	for _, path := range files {
		src, err := readFile(path)
		if err != nil {
			return nil, err
		}
		// A file with mistakes is still checked against its flow, so that
		// one run lists every mistake.
		p := &parser{file: path}
		f := p.parse(src)
		problems = append(problems, p.problems...)
		if f.doc == nil || f.Flow == "" {
			continue
		}
		set, err := s.folder(filepath.Dir(path))
		if err != nil {
			return nil, err
		}
		problems = append(problems, s.bind(f, set)...)
		s.Files = append(s.Files, f)
	}
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool {
			a, b := problems[i].Pos, problems[j].Pos
			if a.File != b.File {
				return a.File < b.File
			}
			return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
		})
		return nil, problems
	}
	return s, nil
}

func readFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	if info.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s is larger than %d KB; split it into several test files", path, MaxFileSize>>10)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	return b, nil
}

// folder loads (once) the flow files of a folder: every *.yaml beside the
// tests, so that keywords of other flows behave as they will in production.
func (s *Suite) folder(dir string) (*flows.Set, error) {
	if set, ok := s.Flows[dir]; ok {
		return set, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", dir, errors.Unwrap(err))
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && flows.IsFlowFile(e.Name()) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	set, err := flows.LoadFiles(files)
	if err != nil {
		return nil, err
	}
	for _, d := range set.Diags {
		if d.Severity == diag.Error {
			s.Broken = append(s.Broken, d)
		}
	}
	s.Flows[dir] = set
	return set, nil
}

// Sources returns the text of the flow files, for printing diagnostics.
func (s *Suite) Sources() diag.Sources {
	return func(file string) []byte {
		for _, set := range s.Flows {
			if b, ok := set.Files[file]; ok {
				return b
			}
		}
		return nil
	}
}

// FlowSet returns the flows that a test file runs against.
func (s *Suite) FlowSet(f *File) *flows.Set { return s.Flows[filepath.Dir(f.Path)] }

// bind checks a test file against its flows: the flow exists, and the
// steps and variables the tests name are the flow's own.
func (s *Suite) bind(f *File, set *flows.Set) Problems {
	p := &parser{file: f.Path}
	fl := set.Flow(f.Flow)
	if fl == nil {
		if s.brokenIn(filepath.Dir(f.Path)) {
			// The flow may be the one that failed to load; its tests fail
			// with the flow's own diagnostics instead.
			return nil
		}
		ids := make([]string, 0, len(set.Flows))
		for id := range set.Flows {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		msg := fmt.Sprintf("there is no flow `%s` next to this test file (in %s)", f.Flow, filepath.Dir(f.Path))
		switch sg := suggest(f.Flow, ids); {
		case sg != "":
			msg += fmt.Sprintf("; did you mean `%s`?", sg)
		case len(ids) > 0:
			msg += "; the flows there are " + keyList(ids)
		default:
			msg += "; put the flow file in the same folder as the test file"
		}
		p.problems = append(p.problems, Problem{Pos: f.FlowPos, Msg: msg})
		return p.problems
	}
	for _, t := range f.Tests {
		if t.Start != nil {
			if t.Start.Step != "" && fl.Step(t.Start.Step) == nil {
				p.problems = append(p.problems, Problem{Pos: t.Start.StepPos, Msg: stepMsg(fl, t.Start.Step, "`start:` names")})
			}
			for _, v := range t.Start.Vars {
				if fl.Variables[v.Name] == nil && v.Name != "language" {
					p.problems = append(p.problems, Problem{Pos: v.NamePos, Msg: varMsg(fl, v.Name)})
				} else if _, err := Value(fl, v.Name, v.Value, t.Now); err != nil {
					p.problems = append(p.problems, Problem{Pos: v.Pos, Msg: err.Error()})
				}
			}
		}
		check := func(e *Expect) {
			if e == nil {
				return
			}
			if e.Step != nil && fl.Step(*e.Step) == nil {
				p.problems = append(p.problems, Problem{Pos: e.pos["step"], Msg: stepMsg(fl, *e.Step, "`expect:` names")})
			}
			for _, v := range e.Vars {
				if fl.Variables[v.Name] == nil {
					p.problems = append(p.problems, Problem{Pos: v.Pos, Msg: varMsg(fl, v.Name)})
				}
			}
		}
		check(t.Expect)
		for _, turn := range t.Turns {
			check(turn.Expect)
		}
	}
	return p.problems
}

func (s *Suite) brokenIn(dir string) bool {
	for _, d := range s.Broken {
		if filepath.Dir(d.Pos.File) == dir {
			return true
		}
	}
	return false
}

func stepMsg(fl *flows.Flow, id, what string) string {
	ids := make([]string, len(fl.Steps))
	for i, st := range fl.Steps {
		ids[i] = st.ID
	}
	msg := fmt.Sprintf("%s the step `%s`, which the flow `%s` does not have", what, id, fl.ID)
	if sg := suggest(id, ids); sg != "" {
		msg += fmt.Sprintf("; did you mean `%s`?", sg)
	}
	return msg
}

func varMsg(fl *flows.Flow, name string) string {
	names := make([]string, 0, len(fl.Variables))
	for n := range fl.Variables {
		names = append(names, n)
	}
	slices.Sort(names)
	msg := fmt.Sprintf("the flow `%s` has no variable `%s`", fl.ID, name)
	if sg := suggest(name, names); sg != "" {
		msg += fmt.Sprintf("; did you mean `%s`?", sg)
	}
	return msg
}

// answerKinds maps a Go type to the answer parser that reads it, for
// variables computed by `set:`, which have no input type of their own.
var answerKinds = map[reflect.Type]string{
	reflect.TypeFor[bool]():      answer.YesNo,
	reflect.TypeFor[int]():       answer.Integer,
	reflect.TypeFor[float64]():   answer.Number,
	reflect.TypeFor[time.Time](): answer.Date,
	reflect.TypeFor[string]():    answer.Text,
}

// Value reads a variable's value as written in a test file into the value
// the engine keeps, with the parser of the variable's type: dates become
// time.Time, yes/no a bool, phone numbers E.164. now anchors relative dates.
func Value(fl *flows.Flow, name, text string, now time.Time) (any, error) {
	if name == "language" && fl.Variables[name] == nil {
		return text, nil // the contact's language, which every flow accepts
	}
	v := fl.Variables[name]
	if v == nil {
		return nil, errors.New(varMsg(fl, name))
	}
	kind := v.Type
	switch kind {
	case answer.Choice, answer.Pattern:
		// The clinic's value is taken as written: the flow's choices and
		// pattern check what patients type.
		return text, nil
	}
	if _, ok := answer.Lookup(kind); !ok {
		kind = answerKinds[v.GoType]
		if kind == "" {
			return text, nil
		}
	}
	val, err := answer.Parse(kind, text, &answer.Options{Now: now})
	if err != nil {
		return nil, fmt.Errorf("the variable `%s` holds a %s, and %q cannot be read as one", name, kindWord(kind), text)
	}
	return val, nil
}

func kindWord(kind string) string {
	switch kind {
	case answer.YesNo:
		return "yes/no answer"
	case answer.Integer:
		return "whole number"
	case answer.Phone:
		return "phone number"
	case answer.Email:
		return "email address"
	case answer.Zip:
		return "zip code"
	}
	return kind
}
