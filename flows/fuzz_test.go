package flows_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/flows/diag"
)

// parseTimeout bounds one Parse: the loader runs on every hot reload, so an
// input that makes it hang is as bad as one that makes it panic.
const parseTimeout = 2 * time.Second

// FuzzParse feeds the loader arbitrary bytes, seeded with the example flows
// and every fixture. Parse must return within parseTimeout, never panic,
// place every diagnostic inside the file, and give the same answer twice.
func FuzzParse(f *testing.F) {
	var seeds []string
	examples, _ := filepath.Glob("../examples/*.yaml")
	seeds = append(seeds, examples...)
	err := filepath.WalkDir("testdata", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && flows.IsFlowFile(path) {
			seeds = append(seeds, path)
		}
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		first := parseBounded(t, src)
		if second := parseBounded(t, src); first != second {
			t.Fatalf("Parse is not deterministic:\n%s\n---\n%s", first, second)
		}
	})
}

// parseBounded parses src in a goroutine, fails the test on a panic, a hang
// or a misplaced diagnostic, and returns the rendered diagnostics.
func parseBounded(t *testing.T, src []byte) string {
	t.Helper()
	type result struct {
		out   string
		fault string
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{fault: fmt.Sprintf("Parse panicked: %v\n%s", p, debug.Stack())}
			}
		}()
		f, d := flows.Parse("fuzz.yaml", src)
		if msg := checkDiags(f, d, src); msg != "" {
			done <- result{fault: msg}
			return
		}
		var b strings.Builder
		diag.WriteText(&b, d, func(string) []byte { return src }, 0)
		done <- result{out: b.String()}
	}()
	select {
	case r := <-done:
		if r.fault != "" {
			t.Fatal(r.fault)
		}
		return r.out
	case <-time.After(parseTimeout):
		t.Fatalf("Parse did not return within %v on %d bytes", parseTimeout, len(src))
		return ""
	}
}

// checkDiags checks what must hold of any parse result.
func checkDiags(f *flows.Flow, d diag.List, src []byte) string {
	lines := bytes.Split(src, []byte("\n"))
	for _, x := range d {
		p := x.Pos
		if p.File != "fuzz.yaml" {
			return fmt.Sprintf("diagnostic in file %q: %v", p.File, x)
		}
		if p.Line == 0 {
			continue
		}
		if p.Line < 0 || p.Line > len(lines) || p.Col < 1 {
			return fmt.Sprintf("diagnostic outside the file (%d lines): %v", len(lines), x)
		}
		line := bytes.TrimSuffix(lines[p.Line-1], []byte("\r"))
		if utf8.Valid(line) && p.Col > utf8.RuneCount(line)+1 {
			return fmt.Sprintf("diagnostic past the end of line %d (%q): %v", p.Line, line, x)
		}
		if x.Message == "" || x.Code == "" {
			return fmt.Sprintf("diagnostic without code or message: %#v", x)
		}
	}
	if d.Errors() > 0 {
		return ""
	}
	// A flow without errors must be runnable.
	if f == nil || f.StartStep() == nil {
		return "a flow without errors has no start step"
	}
	for _, s := range f.Steps {
		for _, e := range f.Edges(s) {
			if e.To == nil {
				return fmt.Sprintf("step %s has an edge to nowhere", s.ID)
			}
		}
		for _, r := range s.Next {
			if f.Step(r.Goto) == nil {
				return fmt.Sprintf("step %s goes to missing step %q without an error", s.ID, r.Goto)
			}
			if r.When != nil && r.When.Program == nil && r.When.Ident == "" {
				return fmt.Sprintf("step %s has an uncompiled guard %q without an error", s.ID, r.When.Source)
			}
		}
	}
	return ""
}

// FuzzExprInFlow puts an arbitrary expression into a small flow, in a
// guard, a set and a message template, written in each YAML style, so that
// the compiler and the mapping of expression errors back to file positions
// see far more expressions than FuzzParse reaches.
func FuzzExprInFlow(f *testing.F) {
	for _, e := range []string{"age(born) >= 18", "name + \"x\"", "1 +\n  'a'", "weight > 100 and", "\"é\" + 'ü' * 2",
		"(a", "x ? 'a' : 'b'", "name matches \"(?i)a|b\"", "format_date(born, 'es')", "\t\"\\\"\"", "{{", "}}"} {
		for style := range byte(5) {
			f.Add(e, style)
		}
	}
	f.Fuzz(func(t *testing.T, expr string, style byte) {
		src := "flow: fuzz\nsteps:\n  a:\n    ask: { prompt: \"Name?\", save: name }\n    next: b\n" +
			"  b:\n    ask: { prompt: \"Born?\", type: date, save: born }\n    set:\n      v: " + yamlScalar(expr, style, 6) +
			"\n    say: " + yamlScalar("Hi {{ "+expr+" }}!", style, 6) +
			"\n    next:\n      - when: " + yamlScalar(expr, style, 10) + "\n        goto: c\n      - goto: c\n  c:\n    end: true\n"
		parseBounded(t, []byte(src))
	})
}

// yamlScalar writes s as a YAML scalar in one of five styles: plain, double
// quoted, single quoted, literal and folded, indented for block styles.
func yamlScalar(s string, style byte, indent int) string {
	pad := "\n" + strings.Repeat(" ", indent)
	switch style % 5 {
	case 1:
		b, _ := json.Marshal(s)
		return string(b)
	case 2:
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	case 3:
		return "|" + pad + strings.ReplaceAll(s, "\n", pad)
	case 4:
		return ">" + pad + strings.ReplaceAll(s, "\n", pad)
	}
	return s
}
