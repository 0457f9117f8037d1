package convtest

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// suiteDir writes test files next to a copy of testdata/clinic/checkup.yaml
// in a fresh folder and returns the folder.
func suiteDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	flow, err := os.ReadFile("testdata/clinic/checkup.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "checkup.yaml"), flow, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func load(t *testing.T, paths ...string) *Suite {
	t.Helper()
	s, err := Load(paths)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

func TestExamplesPassWithFullCoverage(t *testing.T) {
	s := load(t, "../../examples")
	if len(s.Files) < 5 {
		t.Errorf("found %d test files in examples/, want one per example flow (5)", len(s.Files))
	}
	rep := s.Run(context.Background(), Options{})
	var out bytes.Buffer
	rep.WriteText(&out, TextOptions{})
	if rep.Failed() > 0 {
		t.Fatalf("example conversations fail:\n%s", out.String())
	}
	if len(rep.Coverage) != len(s.Files) {
		t.Errorf("coverage for %d flows, want %d", len(rep.Coverage), len(s.Files))
	}
	for _, c := range rep.Coverage {
		if !c.Complete() {
			t.Errorf("%s\n  missed: %s", c, c.Missed())
		}
	}
}

func TestPassingFile(t *testing.T) {
	s := load(t, "testdata/clinic")
	rep := s.Run(context.Background(), Options{})
	var out bytes.Buffer
	rep.WriteText(&out, TextOptions{Verbose: true})
	if rep.Failed() != 0 || rep.Total() != 4 {
		t.Fatalf("got %d failed of %d, want 0 of 4:\n%s", rep.Failed(), rep.Total(), out.String())
	}
	for _, want := range []string{
		"ok   Monday with a note on the secure page (testdata/clinic/checkup.test.yaml:6)",
		"coverage checkup: steps 5/5 (100%), branches 5/6 (83%)",
		"  missed: branch ask-dob -> desk (on fail)",
		"ok: 4 tests passed (1 file)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// start is the opening every failure case below shares.
const start = `flow: checkup
tests:
  - name: case
    conversation:
      - user: CHECK
      - bot: "Hello from the clinic."
`

func TestFailures(t *testing.T) {
	tests := []struct {
		name  string
		turns string
		// line is the line of the failing turn.
		line      int
		msg       string
		want, got string
	}{
		{
			name:  "WrongText",
			turns: `      - bot: "What is your name?"` + "\n",
			line:  7, msg: "the bot said something else",
			want: "bot [sms]: What is your name?", got: "bot [sms]: What is your date of birth?",
		},
		{
			name:  "WrongRegexp",
			turns: `      - bot: /name/` + "\n",
			line:  7, msg: "the bot said something else",
			want: "bot [sms]: /name/", got: "bot [sms]: What is your date of birth?",
		},
		{
			name:  "ExtraBotLine",
			turns: "      - user: 04/23/1985\n",
			line:  7, msg: "the bot said 1 line more than the test lists here",
			want: "(no more bot lines)", got: "bot [sms]: What is your date of birth?",
		},
		{
			name:  "ExtraBotLineAtTheEnd",
			turns: "",
			line:  6, msg: "the bot said 1 line more",
			want: "(no more bot lines)", got: "bot [sms]: What is your date of birth?",
		},
		{
			name:  "MissingBotLine",
			turns: "      - bot: /birth/\n      - bot: \"One more?\"\n",
			line:  8, msg: "the test expects another bot line, but the bot said nothing more",
			want: "bot [sms]: One more?", got: "(nothing)",
		},
		{
			name:  "WrongChannel",
			turns: `      - secure: "What is your date of birth?"` + "\n",
			line:  7, msg: "the bot sent this line on sms, not on secure",
			want: "bot [secure]: What is your date of birth?", got: "bot [sms]: What is your date of birth?",
		},
		{
			name: "WrongButtons",
			turns: `      - bot: /birth/
      - user: 04/23/1985
      - bot: { text: "/Which day/", buttons: [Mon, Tue] }
`,
			line: 9, msg: "the bot offered other buttons",
			want: "bot [sms]: /Which day/ [buttons: Mon | Tue]",
			got:  "bot [sms]: Which day?\nReply 1 for Monday or 2 for Tuesday.",
		},
		{
			name: "ExpectMismatch",
			turns: `      - bot: /birth/
      - user: 04/23/1985
      - bot: /Which day/
    expect:
      vars: { dob: 1985-04-24 }
      step: done
`,
			line: 11, msg: "the conversation is not in the expected state (2 differences)",
			want: "vars.dob: 1985-04-24", got: "vars.dob: 1985-04-23",
		},
		{
			name: "ExpectMidway",
			turns: `      - bot: /birth/
      - expect: { ended: true }
      - user: 04/23/1985
`,
			line: 8, msg: "not in the expected state (1 difference)",
			want: "ended: true", got: "ended: false (status active)",
		},
		{
			name: "SecurePageNotOpen",
			turns: `      - bot: /birth/
      - user: { text: hi, channel: secure }
`,
			line: 8, msg: "the patient cannot type on the secure page: it is not open",
		},
		{
			name: "NoLinkToOpen",
			turns: `      - bot: /birth/
      - open_link: "04/23/1985"
`,
			line: 8, msg: "there is no secure link waiting to be opened",
		},
		{
			name: "IdentityRefused",
			turns: `      - bot: /birth/
      - user: 04/23/1985
      - bot: /Which day/
      - user: Monday
      - bot: /Tap/
      - open_link: "01/01/1999"
`,
			line: 12, msg: "the identity check refused the answer",
		},
		{
			name: "IdentityNeedsAnAnswer",
			turns: `      - bot: /birth/
      - user: 04/23/1985
      - bot: /Which day/
      - user: Monday
      - bot: /Tap/
      - open_link: true
`,
			line: 12, msg: "this flow checks the patient's identity",
		},
		{
			name: "HandBackWhenNotHandedOff",
			turns: `      - bot: /birth/
      - handback: true
`,
			line: 8, msg: "an agent cannot hand this chat back: it is not handed off",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := suiteDir(t, map[string]string{"case.test.yaml": start + tc.turns})
			rep := load(t, dir).Run(context.Background(), Options{})
			if rep.Failed() != 1 {
				t.Fatalf("got %d failures, want 1", rep.Failed())
			}
			f := rep.Files[0].Results[0].Failure
			if f.Pos.Line != tc.line {
				t.Errorf("failure at line %d, want %d (%s)", f.Pos.Line, tc.line, f.Msg)
			}
			if !strings.Contains(f.Msg, tc.msg) {
				t.Errorf("message %q, want it to contain %q", f.Msg, tc.msg)
			}
			if tc.want == "" && tc.got == "" {
				return
			}
			if len(f.Diffs) == 0 {
				t.Fatalf("no difference shown")
			}
			if f.Diffs[0].Want != tc.want || f.Diffs[0].Got != tc.got {
				t.Errorf("first difference\n  want %q / %q\n  got  %q / %q", tc.want, tc.got, f.Diffs[0].Want, f.Diffs[0].Got)
			}
			text := f.Text()
			if !strings.Contains(text, ">>> --- expected: "+tc.want) || !strings.Contains(text, "+++ got:      "+strings.Split(tc.got, "\n")[0]) {
				t.Errorf("failure text does not mark the difference:\n%s", text)
			}
			if !strings.Contains(text, "    patient [sms]: CHECK\n    bot [sms]: Hello from the clinic.\n") {
				t.Errorf("failure text lacks the transcript:\n%s", text)
			}
		})
	}
}

func TestFailureStopsAtTheFirstDifference(t *testing.T) {
	dir := suiteDir(t, map[string]string{"case.test.yaml": start + `      - bot: "wrong"
      - user: 04/23/1985
      - bot: "also wrong"
`})
	rep := load(t, dir).Run(context.Background(), Options{})
	f := rep.Files[0].Results[0].Failure
	if f.Pos.Line != 7 || len(f.Diffs) != 1 {
		t.Errorf("failure at line %d with %d differences, want line 7 with 1", f.Pos.Line, len(f.Diffs))
	}
	for _, l := range f.Transcript {
		if strings.Contains(l.Text, "04/23/1985") {
			t.Errorf("the transcript runs past the failing turn: %v", f.Transcript)
		}
	}
}

func TestBadTestFiles(t *testing.T) {
	tests := []struct {
		name string
		src  string
		// want lists "line:col: text" that must each appear.
		want []string
	}{
		{"NotYAML", "flow: checkup\ntests: [\n", []string{"this is not valid YAML"}},
		{"Empty", "", []string{"1:1: the file is empty"}},
		{"NoFlow", "tests:\n  - name: a\n    expect: { ended: true }\n", []string{"1:1: the file needs `flow:`"}},
		{"NoTests", "flow: checkup\n", []string{"1:1: the file needs `tests:`"}},
		{"UnknownFileKey", "flow: checkup\ntest:\n  - name: a\n", []string{"2:1: the test file has an unknown key `test`; did you mean `tests`?"}},
		{"UnknownFlow", "flow: chekup\ntests:\n  - name: a\n    expect: { ended: true }\n",
			[]string{"1:7: there is no flow `chekup` next to this test file", "did you mean `checkup`?"}},
		{"UnknownTestKey", start + "    chanel: sms\n", []string{"7:5: a test has an unknown key `chanel`; did you mean `channel`?"}},
		{"UnknownTurn", start + "      - usr: hi\n", []string{"7:9: unknown turn `usr`; did you mean `user`?"}},
		{"TwoKeysInATurn", start + "      - user: hi\n        bot: hello\n", []string{"8:9: each turn has one key"}},
		{"BadStep", "flow: checkup\ntests:\n  - name: a\n    start: ask-dayz\n    expect: { ended: true }\n",
			[]string{"4:12: `start:` names the step `ask-dayz`, which the flow `checkup` does not have; did you mean `ask-day`?"}},
		{"BadExpectStep", start + "    expect: { step: don }\n", []string{"7:21: `expect:` names the step `don`", "did you mean `done`?"}},
		{"UnknownVariable", "flow: checkup\ntests:\n  - name: a\n    vars: { dobb: 1985-04-23 }\n    expect: { ended: false }\n",
			[]string{"4:13: the flow `checkup` has no variable `dobb`; did you mean `dob`?"}},
		{"BadVariableValue", "flow: checkup\ntests:\n  - name: a\n    vars: { dob: someday }\n    expect: { ended: false }\n",
			[]string{"4:18: the variable `dob` holds a date, and \"someday\" cannot be read as one"}},
		{"BadRegexp", start + "      - bot: /[/\n", []string{"7:14: this pattern between / / is not a valid regular expression"}},
		{"BadWait", start + "      - wait: soon\n", []string{"7:15: `wait:` needs a length of time"}},
		{"BadChannel", "flow: checkup\nchannel: fax\ntests:\n  - name: a\n    expect: { ended: false }\n", []string{"2:10: the channel \"fax\" is not known"}},
		{"WrongOriginChannel", start + "      - messenger: hi\n", []string{"7:9: this test runs on sms, so the bot cannot write on messenger"}},
		{"BadNow", "flow: checkup\nnow: tomorrow\ntests:\n  - name: a\n    expect: { ended: false }\n", []string{"2:6: `now:` should be a date and time"}},
		{"DuplicateNames", "flow: checkup\ntests:\n  - name: a\n    expect: { ended: false }\n  - name: a\n    expect: { ended: false }\n",
			[]string{"5:5: two tests are named \"a\" (the other is on line 3)"}},
		{"NoName", "flow: checkup\ntests:\n  - expect: { ended: false }\n", []string{"3:5: this test needs a `name:`"}},
		{"BotBeforeAnyone", "flow: checkup\ntests:\n  - name: a\n    conversation:\n      - bot: hi\n",
			[]string{"5:9: the conversation starts with the patient's message"}},
		{"BadSecureState", start + "    expect: { secure: closed }\n", []string{"7:23: `secure:` is none, pending"}},
		{"Aliases", "flow: checkup\nx: &a 1\ntests:\n  - name: a\n    expect: { ended: false }\n", []string{"anchors and aliases"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := suiteDir(t, map[string]string{"bad.test.yaml": tc.src})
			_, err := Load([]string{dir})
			var p Problems
			if !errors.As(err, &p) {
				t.Fatalf("Load returned %v, want Problems", err)
			}
			var out bytes.Buffer
			WriteProblems(&out, p, func(string) []byte { return []byte(tc.src) })
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("problems lack %q:\n%s", w, out.String())
				}
			}
			if !strings.Contains(out.String(), filepath.Join(dir, "bad.test.yaml")+":") {
				t.Errorf("problems do not name the file:\n%s", out.String())
			}
		})
	}
}

func TestProblemsShowTheSourceLine(t *testing.T) {
	src := start + "      - usr: hi\n"
	dir := suiteDir(t, map[string]string{"bad.test.yaml": src})
	_, err := Load([]string{dir})
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("Load returned %v, want Problems", err)
	}
	var out bytes.Buffer
	WriteProblems(&out, p, func(string) []byte { return []byte(src) })
	if want := "\n          - usr: hi\n            ^\n"; !strings.Contains(out.String(), want) {
		t.Errorf("got\n%s\nwant the line with a caret under `usr`", out.String())
	}
}

func TestLoadErrors(t *testing.T) {
	dir := suiteDir(t, nil)
	tests := []struct {
		name  string
		paths []string
		want  string
	}{
		{"Missing", []string{filepath.Join(dir, "nope")}, "cannot read"},
		{"NoTests", []string{dir}, "no conversation test files"},
		{"FlowFileGiven", []string{filepath.Join(dir, "checkup.yaml")}, "is not a conversation test file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.paths)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%v) = %v, want an error containing %q", tc.paths, err, tc.want)
			}
			if errors.As(err, new(Problems)) {
				t.Errorf("an unreadable path is reported as a problem in a test file")
			}
		})
	}
}

func TestBrokenFlowFailsItsTests(t *testing.T) {
	dir := suiteDir(t, map[string]string{"case.test.yaml": start})
	if err := os.WriteFile(filepath.Join(dir, "checkup.yaml"), []byte("flow: checkup\nsteps:\n  a:\n    next: nowhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := load(t, dir)
	if len(s.Broken) == 0 {
		t.Fatal("the broken flow's errors are not kept")
	}
	rep := s.Run(context.Background(), Options{})
	if rep.Failed() != 1 || !strings.Contains(rep.Files[0].Results[0].Failure.Msg, "did not load") {
		t.Errorf("got %d failures, want the test to fail because its flow did not load", rep.Failed())
	}
}

func TestJUnit(t *testing.T) {
	dir := suiteDir(t, map[string]string{
		"a.test.yaml": start + "      - bot: \"wrong\"\n",
		"b.test.yaml": start + "      - bot: /birth/\n",
	})
	rep := load(t, dir).Run(context.Background(), Options{})
	var buf bytes.Buffer
	if err := rep.WriteJUnit(&buf); err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("the JUnit XML does not parse: %v\n%s", err, buf.String())
	}
	if got.Tests != 2 || got.Failures != 1 || len(got.Suites) != 2 {
		t.Fatalf("got %d tests, %d failures, %d suites; want 2, 1, 2", got.Tests, got.Failures, len(got.Suites))
	}
	a := got.Suites[0]
	if a.Name != filepath.Join(dir, "a.test.yaml") || a.Failures != 1 || len(a.Cases) != 1 {
		t.Fatalf("first suite: %+v", a)
	}
	c := a.Cases[0]
	if c.Name != "case" || c.Classname != "checkup" || c.Line != 3 || c.Failure == nil {
		t.Fatalf("test case: %+v", c)
	}
	if !strings.Contains(c.Failure.Message, "a.test.yaml:7:9: the bot said something else") ||
		!strings.Contains(c.Failure.Text, ">>> --- expected: bot [sms]: wrong") {
		t.Errorf("failure: %+v", c.Failure)
	}
	if got.Suites[1].Cases[0].Failure != nil {
		t.Errorf("the passing test has a failure")
	}
}

func TestGitHubAnnotations(t *testing.T) {
	dir := suiteDir(t, map[string]string{"a.test.yaml": start + "      - bot: \"wrong, 100%\"\n"})
	rep := load(t, dir).Run(context.Background(), Options{})
	var out bytes.Buffer
	rep.WriteGitHub(&out)
	first, _, _ := strings.Cut(out.String(), "\n")
	file := filepath.Join(dir, "a.test.yaml")
	want := "::error file=" + file + ",line=7,col=9,title=test failed%3A case::" + file +
		":7:9: the bot said something else%0A    patient [sms]: CHECK"
	if !strings.HasPrefix(first, want) {
		t.Errorf("got\n%s\nwant it to start with\n%s", first, want)
	}
	if !strings.Contains(first, "wrong, 100%25") {
		t.Errorf("the message is not escaped: %s", first)
	}
}

func TestUpdateRewritesBotLinesAndThenPasses(t *testing.T) {
	src := `# Tests for checkup.
flow: checkup
now: 2026-11-30T09:00:00-05:00

tests:
  # The first test.
  - name: wrong, missing and extra lines
    conversation:
      - user: CHECK
      - bot: "Hello from the clinic."   # kept as written
      - bot: "What's your birthday?"    # wrong text
      - user: 04/23/1985
      - user: "1"                       # the choice list is missing
      - bot: /Tap/
      - bot: "an extra line"

      - open_link: "04/23/1985"
      - secure: "Anything we should know?"
      - user: no
    expect: { step: done }

  - name: a passing test stays as it is
    conversation:
      - user: CHECK
      - bot: "Hello from the clinic."
      - bot: /birth/
  - name: a clinic start with no conversation gets one
    start: { step: ask-day, vars: { dob: 1985-04-23 } }
    channel: messenger
    expect: { step: ask-day }
`
	dir := suiteDir(t, map[string]string{"u.test.yaml": src})
	path := filepath.Join(dir, "u.test.yaml")
	s := load(t, dir)
	rep := s.Run(context.Background(), Options{Update: true})
	if rep.Failed() != 0 {
		var out bytes.Buffer
		rep.WriteText(&out, TextOptions{})
		t.Fatalf("with --update, tests that differ only in bot lines must count as updated:\n%s", out.String())
	}
	updates, err := s.Update(rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(updates) != 1 || len(updates[0].Tests) != 2 || updates[0].Reformatted {
		t.Fatalf("updates: %+v", updates)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		"# Tests for checkup.\nflow: checkup\n",
		"  # The first test.\n",
		`      - bot: "Hello from the clinic."   # kept as written` + "\n",
		`      - bot: "What is your date of birth?"` + "\n      - user: 04/23/1985\n",
		"      - bot: |-\n          Which day?\n          Reply 1 for Monday or 2 for Tuesday.\n      - user: \"1\"                       # the choice list is missing\n",
		"      - bot: /Tap/\n\n      - open_link:",
		`      - secure: "Thank you. This private part is done; we'll continue by text message."` + "\n      - bot: \"Booked for Monday.\"\n    expect: { step: done }\n",
		"  - name: a passing test stays as it is\n    conversation:\n      - user: CHECK\n      - bot: \"Hello from the clinic.\"\n      - bot: /birth/\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the updated file lacks\n%s\n--- file:\n%s", want, got)
		}
	}
	if strings.Contains(got, "an extra line") || strings.Contains(got, "birthday") {
		t.Errorf("lines the bot did not say are still there:\n%s", got)
	}
	if !strings.Contains(got, "    expect: { step: ask-day }\n    conversation:\n      - bot: { text: \"Which day?\", buttons: [Monday, Tuesday] }\n") {
		t.Errorf("the test without a conversation did not get one:\n%s", got)
	}
	rep = load(t, dir).Run(context.Background(), Options{})
	if rep.Failed() != 0 {
		var out bytes.Buffer
		rep.WriteText(&out, TextOptions{})
		t.Fatalf("the updated file fails:\n%s\n--- file:\n%s", out.String(), got)
	}
}

func TestUpdateKeepsFailuresItCannotFix(t *testing.T) {
	dir := suiteDir(t, map[string]string{"u.test.yaml": start + `      - bot: "wrong"
      - open_link: "04/23/1985"
`})
	s := load(t, dir)
	rep := s.Run(context.Background(), Options{Update: true})
	if rep.Failed() != 1 || !strings.Contains(rep.Files[0].Results[0].Failure.Msg, "no secure link") {
		t.Fatalf("an action that fails must still fail with --update")
	}
}

func TestWaitFiresTimersInOrder(t *testing.T) {
	dir := suiteDir(t, map[string]string{"w.test.yaml": `flow: checkup
tests:
  - name: one long wait
    start: { step: ask-day, vars: { dob: 1985-04-23 } }
    conversation:
      - bot: /Which day/
      - wait: 3h
      - bot: /Still there/
      - bot: "Our desk will call you."
    expect: { handed_off: true }
`})
	rep := load(t, dir).Run(context.Background(), Options{})
	if rep.Failed() != 0 {
		var out bytes.Buffer
		rep.WriteText(&out, TextOptions{})
		t.Fatal(out.String())
	}
}

func TestRunFilter(t *testing.T) {
	s := load(t, "testdata/clinic")
	rep := s.Run(context.Background(), Options{Run: mustRegexp(t, "Messenger")})
	if rep.Total() != 1 || rep.Files[0].Results[0].Test.Name != "Tuesday on Messenger, tapping a quick reply" {
		t.Errorf("--run ran %d tests, want only the Messenger one", rep.Total())
	}
}

func TestCoverageLine(t *testing.T) {
	tests := []struct {
		n, total int
		want     string
	}{
		{14, 16, "88%"}, {20, 24, "83%"}, {0, 5, "0%"}, {5, 5, "100%"}, {199, 200, "99%"}, {0, 0, "100%"},
	}
	for _, tc := range tests {
		if got := percent(tc.n, tc.total); got != tc.want {
			t.Errorf("percent(%d, %d) = %s, want %s", tc.n, tc.total, got, tc.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"15m", 15 * time.Minute, true},
		{"2h", 2 * time.Hour, true},
		{"2d", 48 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"soon", 0, false},
		{"xd", 0, false},
		{"0s", 0, false},
		{"-1h", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{"Ana", "Ana"}, {true, "true"}, {3, "3"}, {101.5, "101.5"}, {102.0, "102"},
		{time.Date(1985, 4, 23, 0, 0, 0, 0, time.UTC), "1985-04-23"}, {nil, ""},
	}
	for _, tc := range tests {
		if got := FormatValue(tc.in); got != tc.want {
			t.Errorf("FormatValue(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func mustRegexp(t *testing.T, s string) *regexp.Regexp {
	t.Helper()
	re, err := regexp.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return re
}

func TestUpdateReencodesWhatItCannotPatch(t *testing.T) {
	src := `# Kept comment.
flow: checkup
tests:
  - name: one line
    conversation: [ { user: CHECK }, { bot: "wrong" } ]
`
	dir := suiteDir(t, map[string]string{"u.test.yaml": src})
	s := load(t, dir)
	rep := s.Run(context.Background(), Options{Update: true})
	updates, err := s.Update(rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(updates) != 1 || !updates[0].Reformatted {
		t.Fatalf("updates: %+v, want the file written out whole", updates)
	}
	b, err := os.ReadFile(filepath.Join(dir, "u.test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "# Kept comment.") {
		t.Errorf("the comment is lost:\n%s", b)
	}
	if rep := load(t, dir).Run(context.Background(), Options{}); rep.Failed() != 0 {
		t.Errorf("the re-encoded file fails:\n%s", b)
	}
}

func TestLiteralOK(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"one line", false},
		{"two\nlines", true},
		{"trailing space \nx", false},
		{" leading\nspace", false},
		{"ends\n", false},
		{"tab\tinside\nok", true},
		{"bell\a\nno", false},
	}
	for _, tc := range tests {
		if got := literalOK(tc.in); got != tc.want {
			t.Errorf("literalOK(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
