// Package diag holds source positions and the diagnostics that safeflow reports
// about flow files. It is a leaf package: everything that reads a flow file
// reports through it, and the CLI prints through it.
package diag

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Pos is a place in a flow file. Line and Col count from 1; a zero Pos means
// "the file as a whole".
type Pos struct {
	File string
	Line int
	Col  int
}

// String formats the position as file:line:col.
func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Shift returns the position moved by lines and, on the same line, by cols.
func (p Pos) Shift(lines, cols int) Pos {
	if lines > 0 {
		return Pos{File: p.File, Line: p.Line + lines, Col: cols}
	}
	return Pos{File: p.File, Line: p.Line, Col: p.Col + cols}
}

// Severity says whether a diagnostic stops a flow from going live.
type Severity int

const (
	// Error stops the flow from loading.
	Error Severity = iota
	// Warning is printed; `validate --strict` treats it as an error.
	Warning
)

// String returns "error" or "warning".
func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// MarshalJSON writes the severity as its name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Diagnostic is one finding about a flow file, written for clinic staff.
type Diagnostic struct {
	Pos      Pos
	Severity Severity
	Code     Code
	Message  string
	Hint     string
}

// Error formats the diagnostic on one line, as file:line:col: severity CODE: message.
func (d Diagnostic) Error() string {
	return fmt.Sprintf("%s: %s %s: %s", d.Pos, d.Severity, d.Code, d.Message)
}

// List collects diagnostics. The zero value is ready to use.
type List []Diagnostic

// Add appends a diagnostic of the code's default severity.
func (l *List) Add(pos Pos, code Code, hint, format string, args ...any) {
	*l = append(*l, Diagnostic{Pos: pos, Severity: code.Severity(), Code: code, Message: fmt.Sprintf(format, args...), Hint: hint})
}

// Sort orders the list by file, line, column and code, and drops exact
// duplicates (the same finding reached twice by two checks).
func (l List) Sort() List {
	slices.SortStableFunc(l, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Message, b.Message))
	})
	return slices.Compact(l)
}

// Errors counts the diagnostics of severity Error.
func (l List) Errors() int { return l.count(Error) }

// Warnings counts the diagnostics of severity Warning.
func (l List) Warnings() int { return l.count(Warning) }

func (l List) count(s Severity) int {
	n := 0
	for _, d := range l {
		if d.Severity == s {
			n++
		}
	}
	return n
}

// Err returns the list as an error when it holds at least one error, else nil.
func (l List) Err() error {
	if l.Errors() == 0 {
		return nil
	}
	return &ListError{List: l}
}

// ListError is the error form of a List that holds errors.
type ListError struct{ List List }

func (e *ListError) Error() string {
	var first Diagnostic
	for _, d := range e.List {
		if d.Severity == Error {
			first = d
			break
		}
	}
	if n := e.List.Errors(); n > 1 {
		return fmt.Sprintf("%s (and %d more)", first.Error(), n-1)
	}
	return first.Error()
}

// Sources gives the text of a file by name, for printing the source line
// under a diagnostic. It returns nil when the text is not known.
type Sources func(file string) []byte

// WriteText prints each diagnostic as
//
//	file:line:col: error SF012: message
//	    source line
//	    ^
//	  hint: how to fix it
//
// and stops after max diagnostics (0: no limit), saying "(and N more)".
func WriteText(w io.Writer, l List, src Sources, max int) {
	lines := sourceLines{src: src}
	for i, d := range l {
		if max > 0 && i == max {
			fmt.Fprintf(w, "(and %d more)\n", len(l)-max)
			return
		}
		fmt.Fprintf(w, "%s: %s %s: %s\n", d.Pos, d.Severity, d.Code, d.Message)
		if line, ok := lines.line(d.Pos); ok {
			fmt.Fprintf(w, "    %s\n    %s^\n", line, caretPad(line, d.Pos.Col))
		}
		if d.Hint != "" {
			fmt.Fprintf(w, "  hint: %s\n", d.Hint)
		}
	}
}

// sourceLines finds source lines for WriteText. It indexes the lines of
// each file once, so that printing many diagnostics of a large file does
// not scan the file again for each one.
type sourceLines struct {
	src   Sources
	file  string
	text  []byte
	start []int // byte offset of each line of text
}

// line returns line p.Line of p.File, tabs kept so the caret lines up.
func (s *sourceLines) line(p Pos) (string, bool) {
	if s.src == nil || p.Line < 1 {
		return "", false
	}
	if s.start == nil || p.File != s.file {
		s.file, s.text, s.start = p.File, s.src(p.File), []int{0}
		for i, b := range s.text {
			if b == '\n' {
				s.start = append(s.start, i+1)
			}
		}
	}
	if s.text == nil || p.Line > len(s.start) {
		return "", false
	}
	end := len(s.text)
	if p.Line < len(s.start) {
		end = s.start[p.Line] - 1
	}
	return strings.TrimRight(string(s.text[s.start[p.Line-1]:end]), "\r"), true
}

// caretPad returns the white space that puts a caret under column col,
// copying tabs so the caret lines up in any terminal.
func caretPad(line string, col int) string {
	var b strings.Builder
	n := 1
	for _, r := range line {
		if n >= col {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		n++
	}
	for ; n < col; n++ {
		b.WriteByte(' ')
	}
	return b.String()
}

// jsonDiagnostic is the shape of one diagnostic in `validate --format json`.
type jsonDiagnostic struct {
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Col      int      `json:"col"`
	Severity Severity `json:"severity"`
	Code     Code     `json:"code"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint"`
}

// WriteJSON prints the list as one JSON array of
// {file, line, col, severity, code, message, hint}.
func WriteJSON(w io.Writer, l List) error {
	out := make([]jsonDiagnostic, len(l))
	for i, d := range l {
		out[i] = jsonDiagnostic{d.Pos.File, d.Pos.Line, d.Pos.Col, d.Severity, d.Code, d.Message, d.Hint}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// WriteGitHub prints GitHub Actions workflow commands, one per diagnostic, so
// CI shows them as annotations on the flow file.
func WriteGitHub(w io.Writer, l List) {
	for _, d := range l {
		msg := d.Message
		if d.Hint != "" {
			msg += " Hint: " + d.Hint
		}
		fmt.Fprintf(w, "::%s file=%s,line=%d,col=%d,title=%s::%s\n", d.Severity,
			ghProperty(d.Pos.File), d.Pos.Line, d.Pos.Col, d.Code, ghData(msg))
	}
}

// ghData escapes a message per the workflow-command rules.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// ghProperty escapes a property value per the workflow-command rules.
func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
