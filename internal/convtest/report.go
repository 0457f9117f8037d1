package convtest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// maxTranscript is how many transcript lines a failure shows before the
// failing turn; earlier ones are summed up.
const maxTranscript = 30

// Text writes a failure as its message, the transcript up to the failing
// turn, and the first difference marked with >>>:
//
//	examples/intake.test.yaml:12:7: the bot said something else
//	    patient [sms]: INTAKE
//	>>> --- expected: bot [sms]: /new patient/
//	    +++ got:      bot [sms]: Are you a new patient with us?
func (f *Failure) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", f.Pos, f.Msg)
	lines := f.Transcript
	if n := len(lines) - maxTranscript; n > 0 {
		fmt.Fprintf(&b, "    (%d earlier lines)\n", n)
		lines = lines[n:]
	}
	for _, l := range lines {
		s := l.String()
		// Further lines of a multi-line message line up under its text.
		more := "    "
		if i := strings.Index(s, "]: "); i >= 0 && l.Who != "" {
			more += strings.Repeat(" ", i+3)
		}
		writeIndented(&b, "    ", more, s)
	}
	for i, d := range f.Diffs {
		mark := "    "
		if i == 0 {
			mark = ">>> "
		}
		if d.Want != "" {
			writeIndented(&b, mark+"--- expected: ", "                  ", d.Want)
			mark = "    "
		}
		writeIndented(&b, mark+"+++ got:      ", "                  ", d.Got)
	}
	return b.String()
}

// writeIndented writes text after first, and its further lines after more,
// so that multi-line messages stay readable.
func writeIndented(w io.Writer, first, more, text string) {
	for i, line := range strings.Split(text, "\n") {
		if i == 0 {
			fmt.Fprintf(w, "%s%s\n", first, line)
		} else {
			fmt.Fprintf(w, "%s%s\n", more, line)
		}
	}
}

// TextOptions tune WriteText.
type TextOptions struct {
	// Verbose lists every test, not only the failing ones.
	Verbose bool
}

// WriteText writes failures, coverage lines with what was missed, and a
// summary line.
func (r *Report) WriteText(w io.Writer, o TextOptions) {
	for _, fr := range r.Files {
		for _, res := range fr.Results {
			where := fmt.Sprintf("%s:%d", res.Test.Pos.File, res.Test.Pos.Line)
			switch {
			case res.Updated:
				fmt.Fprintf(w, "--- UPDATED: %s (%s): the bot lines now say what the bot said\n", res.Test.Name, where)
				if o.Verbose {
					writeIndented(w, "    ", "    ", strings.TrimSuffix(res.Failure.Text(), "\n"))
				}
			case res.Failure != nil:
				fmt.Fprintf(w, "--- FAIL: %s (%s)\n", res.Test.Name, where)
				writeIndented(w, "    ", "    ", strings.TrimSuffix(res.Failure.Text(), "\n"))
			case o.Verbose:
				fmt.Fprintf(w, "ok   %s (%s)\n", res.Test.Name, where)
			}
		}
	}
	for _, c := range r.Coverage {
		fmt.Fprintln(w, c.String())
		if m := c.Missed(); m != "" {
			fmt.Fprintf(w, "  missed: %s\n", m)
		}
	}
	fmt.Fprintln(w, r.Summary())
}

// Summary is the last line of text output.
func (r *Report) Summary() string {
	files := plural(len(r.Files), "file")
	if n := r.Failed(); n > 0 {
		return fmt.Sprintf("FAIL: %d of %s failed (%s)", n, plural(r.Total(), "test"), files)
	}
	updated := 0
	for _, f := range r.Files {
		for _, res := range f.Results {
			if res.Updated {
				updated++
			}
		}
	}
	if updated > 0 {
		return fmt.Sprintf("ok: %s pass, %d of them after updating their bot lines (%s) — review the changes", plural(r.Total(), "test"), updated, files)
	}
	return fmt.Sprintf("ok: %s passed (%s)", plural(r.Total(), "test"), files)
}

// Failed counts the tests that failed.
func (r *Report) Failed() int {
	n := 0
	for _, f := range r.Files {
		for _, res := range f.Results {
			if !res.Passed() {
				n++
			}
		}
	}
	return n
}

// Total counts the tests that ran.
func (r *Report) Total() int {
	n := 0
	for _, f := range r.Files {
		n += len(f.Results)
	}
	return n
}

// WriteGitHub writes one GitHub Actions annotation per failing test,
// `::error file=F,line=L,col=C,title=T::message`, then the coverage and
// summary lines.
func (r *Report) WriteGitHub(w io.Writer) {
	for _, fr := range r.Files {
		for _, res := range fr.Results {
			if res.Passed() {
				continue
			}
			f := res.Failure
			fmt.Fprintf(w, "::error file=%s,line=%d,col=%d,title=%s::%s\n", ghProperty(f.Pos.File), f.Pos.Line, f.Pos.Col,
				ghProperty("test failed: "+res.Test.Name), ghData(strings.TrimSuffix(f.Text(), "\n")))
		}
	}
	for _, c := range r.Coverage {
		fmt.Fprintln(w, c.String())
		if m := c.Missed(); m != "" {
			fmt.Fprintf(w, "  missed: %s\n", m)
		}
	}
	fmt.Fprintln(w, r.Summary())
}

// ghData escapes an annotation's message as the Actions runner expects.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// ghProperty escapes an annotation property (file, title).
func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// JUnit XML, as read by CI servers: one testsuite per test file, one
// testcase per test.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Name     string       `xml:"name,attr"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Time     string       `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name     string      `xml:"name,attr"`
		Tests    int         `xml:"tests,attr"`
		Failures int         `xml:"failures,attr"`
		Errors   int         `xml:"errors,attr"`
		Time     string      `xml:"time,attr"`
		File     string      `xml:"file,attr"`
		Cases    []junitCase `xml:"testcase"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		File      string        `xml:"file,attr"`
		Line      int           `xml:"line,attr"`
		Time      string        `xml:"time,attr"`
		Failure   *junitFailure `xml:"failure,omitempty"`
	}
	junitFailure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",cdata"`
	}
)

// WriteJUnit writes the report as JUnit XML.
func (r *Report) WriteJUnit(w io.Writer) error {
	all := junitSuites{Name: "safeflow conversation tests"}
	var total float64
	for _, fr := range r.Files {
		s := junitSuite{Name: fr.File.Path, File: fr.File.Path}
		var secs float64
		for _, res := range fr.Results {
			d := res.Duration.Seconds()
			secs += d
			c := junitCase{Name: res.Test.Name, Classname: fr.File.Flow, File: fr.File.Path, Line: res.Test.Pos.Line,
				Time: fmt.Sprintf("%.3f", d)}
			if !res.Passed() {
				f := res.Failure
				c.Failure = &junitFailure{Message: f.Pos.String() + ": " + f.Msg, Type: "conversation", Text: f.Text()}
				s.Failures++
			}
			s.Cases = append(s.Cases, c)
		}
		s.Tests = len(fr.Results)
		s.Time = fmt.Sprintf("%.3f", secs)
		all.Tests += s.Tests
		all.Failures += s.Failures
		total += secs
		all.Suites = append(all.Suites, s)
	}
	all.Time = fmt.Sprintf("%.3f", total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// WriteProblems writes mistakes in test files as file:line:col: message,
// with the source line and a caret under the column.
func WriteProblems(w io.Writer, p Problems, src func(file string) []byte) {
	for _, pr := range p {
		fmt.Fprintf(w, "%s: %s\n", pr.Pos, pr.Msg)
		if src == nil || pr.Pos.Line < 1 {
			continue
		}
		lines := strings.Split(string(src(pr.Pos.File)), "\n")
		if pr.Pos.Line > len(lines) {
			continue
		}
		line := strings.TrimRight(lines[pr.Pos.Line-1], "\r")
		var pad strings.Builder
		for i, r := range []rune(line) {
			if i >= pr.Pos.Col-1 {
				break
			}
			if r == '\t' {
				pad.WriteByte('\t')
			} else {
				pad.WriteByte(' ')
			}
		}
		fmt.Fprintf(w, "    %s\n    %s^\n", line, pad.String())
	}
}
