package flows

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/safeflow/safeflow/flows/diag"
)

// Set is a group of flows that run together: one clinic's flow folder.
type Set struct {
	// Flows are the flows that loaded without errors, by id.
	Flows map[string]*Flow
	// Files maps each file read to its source, for printing diagnostics.
	Files map[string][]byte
	Diags diag.List
}

// Source returns a file's text, for diag.WriteText.
func (s *Set) Source(file string) []byte { return s.Files[file] }

// IsTestFile reports whether a path names a conversation test file rather
// than a flow.
func IsTestFile(path string) bool {
	return strings.HasSuffix(path, ".test.yaml") || strings.HasSuffix(path, ".test.yml")
}

// IsFlowFile reports whether a path names a flow file.
func IsFlowFile(path string) bool {
	return (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) && !IsTestFile(path)
}

// FindFiles expands files and directories into the flow files they hold,
// searching directories recursively. A path that cannot be read is an error.
func FindFiles(paths []string, match func(string) bool) ([]string, error) {
	var out []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", p, errors.Unwrap(err))
		}
		if !info.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
			}
			if d.IsDir() && path != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if !d.IsDir() && match(path) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LoadFiles reads, compiles and checks every file, then checks the files
// against each other. Errors reading a file are returned; problems in a
// file are in the set's diagnostics.
func LoadFiles(files []string) (*Set, error) {
	srcs := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := readLimited(f)
		if err != nil {
			return nil, err
		}
		srcs[f] = b
	}
	return NewSet(srcs), nil
}

// readLimited reads a file, refusing one far beyond MaxFileSize without
// reading it all.
func readLimited(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	if info.Size() > MaxFileSize {
		// Parse reports the size as a diagnostic; keep one byte too many.
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
		}
		defer f.Close()
		b := make([]byte, MaxFileSize+1)
		n, err := io.ReadFull(f, b)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("cannot read %s: %w", path, err)
		}
		return b[:n], nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	return b, nil
}

// NewSet loads flows from sources keyed by file name.
func NewSet(srcs map[string][]byte) *Set {
	s := &Set{Flows: map[string]*Flow{}, Files: srcs}
	names := make([]string, 0, len(srcs))
	for n := range srcs {
		names = append(names, n)
	}
	slices.Sort(names)
	var loaded []*Flow
	for _, name := range names {
		f, d := Parse(name, srcs[name])
		s.Diags = append(s.Diags, d...)
		if f != nil && d.Errors() == 0 {
			loaded = append(loaded, f)
		}
	}
	s.crossCheck(loaded)
	s.Diags = s.Diags.Sort()
	return s
}

// crossCheck finds clashes between flows: one id in two files, one trigger
// keyword in two flows, two flows that both start by default.
func (s *Set) crossCheck(loaded []*Flow) {
	words := map[string]*Flow{}
	var deflt *Flow
	for _, f := range loaded {
		if prev := s.Flows[f.ID]; prev != nil {
			s.Diags.Add(f.Pos, diag.DuplicateFlow, "Give one of them another `flow:` id.",
				"the flow id `%s` is also used by %s", f.ID, prev.File)
			continue
		}
		s.Flows[f.ID] = f
		for i, w := range f.Trigger.Keywords {
			if prev := words[w]; prev != nil {
				p := f.Trigger.Pos
				if i < len(f.Trigger.wordPos) {
					p = f.Trigger.wordPos[i]
				}
				s.Diags.Add(p, diag.KeywordCollision, "Use a different trigger keyword in one of the flows.",
					"the trigger keyword %s is also used by the flow `%s` (%s)", w, prev.ID, prev.File)
				continue
			}
			words[w] = f
		}
		if f.Trigger.Default {
			if deflt != nil {
				s.Diags.Add(f.Trigger.Pos, diag.KeywordCollision, "Only one flow may have `default: true`.",
					"this flow and `%s` (%s) both start by default", deflt.ID, deflt.File)
				continue
			}
			deflt = f
		}
	}
	// A trigger keyword of one flow that another flow uses as a keyword
	// would never start the first flow while the second is running.
	for _, f := range loaded {
		for _, k := range f.Keywords {
			if other := words[k.Word]; other != nil && other != f {
				s.Diags.Add(k.Pos, diag.KeywordCollision, "Rename one of the keywords.",
					"keyword %s is also the trigger of the flow `%s` (%s)", k.Word, other.ID, other.File)
			}
		}
	}
}

// ByKeyword returns the flow a trigger keyword starts, or nil.
func (s *Set) ByKeyword(word string) *Flow {
	for _, f := range s.Flows {
		if slices.Contains(f.Trigger.Keywords, strings.ToUpper(word)) {
			return f
		}
	}
	return nil
}

// Default returns the flow that starts for a contact with no keyword, or nil.
func (s *Set) Default() *Flow {
	for _, f := range s.Flows {
		if f.Trigger.Default {
			return f
		}
	}
	return nil
}

// Flow returns the flow with the given id, or nil.
func (s *Set) Flow(id string) *Flow { return s.Flows[id] }

// Version returns the flow with the given id when its hash matches, or nil.
// A Set holds one version of each flow; the registry keeps older ones.
func (s *Set) Version(id, hash string) *Flow {
	if f := s.Flows[id]; f != nil && f.Hash == hash {
		return f
	}
	return nil
}
