package flows_test

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/safeflow/safeflow/flows"
)

// exportFlow has one of everything a diagram draws: guards with quotes, a
// pipe, <, >, & and a backslash, a guard over two lines, on_fail and
// on_timeout, a sensitive step, a sensitive end step, handoff, wait, a long
// question, keywords with and without a jump, and a step called `end`,
// which is a reserved word in Mermaid.
const exportFlow = `flow: export-test
title: Export "test" <flow>
trigger:
  keywords: [INTAKE]
keywords:
  HELP: { say: "Call us at 555-0100." }
  RESTART: { goto: welcome }
  AGENT: { handoff: front-desk }
steps:
  welcome:
    ask: { prompt: "Are you a new patient?", type: yes_no, save: is_new }
    next:
      - when: is_new
        goto: age
      - goto: existing
  existing:
    handoff: front-desk
  age:
    ask:
      prompt: "How old are you, in whole years please? We need it for the chart."
      type: integer
      save: years
      on_fail: existing
      timeout: 1h
      on_timeout: existing
    next:
      - when: years >= 65 && years < 120
        goto: symptoms
      - when: |
          years > 1 &&
          years < 5
        goto: existing
      - goto: symptoms
  symptoms:
    sensitive: true
    ask: { prompt: "What brings you in today?", type: text, save: reason }
    next:
      - when: 'reason matches "(?i)chest pain|can''t"'
        goto: urgent
      - when: 'reason matches "^\\d+$"'
        goto: urgent
      - goto: pause
  urgent:
    sensitive: true
    say: "Please call 911 now."
    end: true
  pause:
    wait: 2d
    next: snooze
  snooze:
    wait: 90m
    next: end
  end:
    say: "Thanks, see you soon."
    end: true
`

// parseClean parses a flow that must load without errors.
func parseClean(t *testing.T, src string) *flows.Flow {
	t.Helper()
	f, diags := flows.Parse("export.yaml", []byte(src))
	if diags.Errors() > 0 {
		t.Fatalf("the test flow has errors:\n%v", diags.Err())
	}
	return f
}

func TestExportMermaid(t *testing.T) {
	out := parseClean(t, exportFlow).Mermaid()
	tests := []struct {
		name string
		want string
	}{
		{"FlowchartHeader", "flowchart TD"},
		{"TitleComment", `%% Export "test" <flow>`},
		{"EntryNode", `entry(("start"))`},
		{"EntryArrowToStartWithTrigger", `entry -->|"INTAKE"| s0`},
		{"QuestionSummary", `s0["welcome<br/>Are you a new patient?"]`},
		{"LongQuestionTruncated", `s2["age<br/>How old are you, in whole years please?…"]`},
		{"HandoffSummary", `s1["existing<br/>handoff: front-desk"]`},
		{"SensitiveHexagonWithLock", `s3{{"🔒 symptoms<br/>What brings you in today?"}}`},
		{"SensitiveEndIsHexagon", `s4{{"🔒 urgent<br/>end"}}`},
		{"WaitDays", `s5["pause<br/>wait 2d"]`},
		{"WaitHoursMinutes", `s6["snooze<br/>wait 1h30m"]`},
		{"EndStepStadiumUnderReservedName", `s7(["end<br/>end"])`},
		{"GuardLabel", `s0 -->|"is_new"| s2`},
		{"DefaultRouteIsOtherwise", `s0 -->|"otherwise"| s1`},
		{"GuardWithLessGreaterAmp", `s2 -->|"years #gt;= 65 #amp;#amp; years #lt; 120"| s3`},
		{"GuardOverTwoLines", `s2 -->|"years #gt; 1 #amp;#amp;<br/>years #lt; 5"| s1`},
		{"OnFail", `s2 -->|"on fail"| s1`},
		{"OnTimeout", `s2 -->|"on timeout"| s1`},
		{"GuardWithQuotesAndPipe", `s3 -->|"reason matches #quot;(?i)chest pain#124;can't#quot;"| s4`},
		{"GuardWithBackslash", `s3 -->|"reason matches #quot;^\\d+$#quot;"| s4`},
		{"UnguardedNextHasNoLabel", `s5 --> s6`},
		{"KeywordJumpNode", `k1>"keyword RESTART"]`},
		{"KeywordJumpIsDashed", `k1 -.-> s0`},
		{"KeywordWithoutJumpSaysWhatItDoes", `k2>"keyword AGENT<br/>handoff: front-desk"]`},
		{"SensitiveClassHasFill", "classDef sensitive fill:#fde2e2,stroke:#c0392b,stroke-width:3px,color:#000"},
		{"SensitiveClassOnStep", "class s3 sensitive"},
		{"TerminalClassOnEnd", "class s7 terminal"},
		{"KeywordClass", "class k0 keyword"},
	}
	lines := strings.Split(out, "\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !hasLine(lines, tt.want) {
				t.Errorf("no line %q in\n%s", tt.want, out)
			}
		})
	}
	t.Run("SensitiveClassAfterTerminal", func(t *testing.T) {
		// Mermaid applies a node's classes in order; the red must win.
		term, sens := strings.Index(out, "class s4 terminal\n"), strings.Index(out, "class s4 sensitive\n")
		if term < 0 || sens < term {
			t.Errorf("class s4 terminal at %d, class s4 sensitive at %d; want terminal first", term, sens)
		}
	})
	t.Run("NonSensitiveStepsHaveNoLock", func(t *testing.T) {
		if n := strings.Count(out, "🔒"); n != 2 {
			t.Errorf("%d locks, want 2 (symptoms and urgent)", n)
		}
	})
	t.Run("EveryLineIsWellFormed", func(t *testing.T) { checkMermaid(t, out) })
}

// mermaidLine matches the forms of line Mermaid() writes. Labels are quoted
// and may hold no raw quote, and edge labels no raw pipe: either would end
// the label early.
var mermaidLine = regexp.MustCompile(`^(flowchart TD|    %% .*|` +
	`    (entry|[sk]\d+)(\(\(|\[|\{\{|\(\[|>)"[^"]*"(\)\)|\]|\}\}|\]\))|` +
	`    (entry|[sk]\d+) (-->|-\.->)(\|"[^"|]*"\|)? [sk]\d+|` +
	`    classDef \w+ [^ ;]+( \d+,[^ ;]+)?|` +
	`    class [sk]\d+ \w+)$`)

func checkMermaid(t *testing.T, out string) {
	t.Helper()
	if !strings.HasSuffix(out, "\n") {
		t.Error("the output does not end with a newline")
	}
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !mermaidLine.MatchString(l) {
			t.Errorf("line %d is not well-formed Mermaid: %q", i+1, l)
		}
	}
}

func TestExportDOT(t *testing.T) {
	out := parseClean(t, exportFlow).DOT()
	tests := []struct {
		name string
		want string
	}{
		{"DigraphNamedAfterFlow", `digraph "export-test" {`},
		{"TitleEscaped", `graph [label="Export \"test\" <flow>"`},
		{"EntryPoint", `"(start)" [label="start", shape=circle`},
		{"EntryArrowToStartWithTrigger", `"(start)" -> "welcome" [label="INTAKE"];`},
		{"QuestionSummary", `"welcome" [label="welcome\nAre you a new patient?"];`},
		{"LongQuestionTruncated", `"age" [label="age\nHow old are you, in whole years please?…"];`},
		{"SensitiveFilledHexagonWithLock", `"symptoms" [label="🔒 symptoms\nWhat brings you in today?", shape=hexagon, style="filled,bold", fillcolor="#fde2e2", color="#c0392b", penwidth=2];`},
		{"SensitiveEndKeepsRedAndDoubleBorder", `"urgent" [label="🔒 urgent\nend", shape=hexagon, style="filled,bold", fillcolor="#fde2e2", color="#c0392b", penwidth=2, peripheries=2];`},
		{"EndStepDoubleBorder", `"end" [label="end\nend", fillcolor="#e6e6e6", color="#555555", peripheries=2];`},
		{"WaitDays", `"pause" [label="pause\nwait 2d"];`},
		{"GuardLabel", `"welcome" -> "age" [label="is_new"];`},
		{"DefaultRouteIsOtherwise", `"welcome" -> "existing" [label="otherwise"];`},
		{"GuardWithLessGreater", `"age" -> "symptoms" [label="years >= 65 && years < 120"];`},
		{"GuardOverTwoLines", `"age" -> "existing" [label="years > 1 &&\nyears < 5"];`},
		{"OnFail", `"age" -> "existing" [label="on fail"];`},
		{"OnTimeout", `"age" -> "existing" [label="on timeout"];`},
		{"GuardWithQuotesAndPipe", `"symptoms" -> "urgent" [label="reason matches \"(?i)chest pain|can't\""];`},
		{"GuardBackslashDoubled", `"symptoms" -> "urgent" [label="reason matches \"^\\\\d+$\""];`},
		{"UnguardedNextHasNoLabel", `"pause" -> "snooze";`},
		{"KeywordNode", `"(keyword RESTART)" [label="keyword RESTART", shape=cds`},
		{"KeywordJumpIsDashed", `"(keyword RESTART)" -> "welcome" [style=dashed`},
		{"KeywordWithoutJumpSaysWhatItDoes", `"(keyword HELP)" [label="keyword HELP\nsay"`},
	}
	lines := strings.Split(out, "\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !hasPrefixLine(lines, tt.want) {
				t.Errorf("no line starting %q in\n%s", tt.want, out)
			}
		})
	}
	t.Run("EveryLineIsWellFormed", func(t *testing.T) { checkDOT(t, out) })
}

// dotString is a double-quoted DOT string: no raw quote or newline inside,
// and a backslash always escapes the next character.
const dotString = `"(?:[^"\\\n]|\\.)*"`

var dotLine = regexp.MustCompile(`^(digraph ` + dotString + ` \{|\}|` +
	`\t(graph|node|edge) \[.*\];|` +
	`\t` + dotString + `( -> ` + dotString + `)?( \[label=` + dotString + `(, \w+=(` + dotString + `|[\w.]+))*\]| \[style=dashed.*\])?;)$`)

func checkDOT(t *testing.T, out string) {
	t.Helper()
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !dotLine.MatchString(l) {
			t.Errorf("line %d is not well-formed DOT: %q", i+1, l)
		}
	}
	// Graphviz is the real judge; the test does not need it installed.
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Log("graphviz `dot` is not installed: skipping the check that it renders the output")
		return
	}
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = strings.NewReader(out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	svg, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("dot -Tsvg: %v\n%s\ninput:\n%s", err, stderr.String(), out)
	}
	// The guard must come out of Graphviz as the text it was.
	if !bytes.Contains(svg, []byte(`reason matches &quot;(?i)chest pain|can&#39;t&quot;`)) {
		t.Errorf("the rendered SVG does not show the guard as written:\n%s", svg)
	}
}

func TestExportSummaries(t *testing.T) {
	tests := []struct {
		name string
		flow string
		want string
	}{
		{
			name: "DefaultLanguageTextOfAQuestion",
			flow: `flow: t
language: es
steps:
  a:
    ask: { prompt: { en: "Your name?", es: "¿Su nombre?" }, type: text, save: n }
    next: b
  b:
    say: { en: "Bye", es: "Adiós" }
    end: true
`,
			want: `s0["a<br/>¿Su nombre?"]`,
		},
		{
			name: "QuestionWhitespaceCollapsed",
			flow: "flow: t\nsteps:\n  a:\n    ask:\n      prompt: |\n        Your\n        name?\n      type: text\n      save: n\n    next: b\n  b:\n    end: true\n",
			want: `s0["a<br/>Your name?"]`,
		},
		{
			name: "SayStep",
			flow: "flow: t\nsteps:\n  a:\n    say: Hello\n    next: b\n  b:\n    end: true\n",
			want: `s0["a<br/>say"]`,
		},
		{
			name: "SetStepNamesItsVariables",
			flow: "flow: t\nsteps:\n  a:\n    set: { x: 1, y: 2 }\n    next: b\n  b:\n    end: true\n",
			want: `s0["a<br/>set x, y"]`,
		},
		{
			name: "WaitMinutes",
			flow: "flow: t\nsteps:\n  a:\n    wait: 15m\n    next: b\n  b:\n    end: true\n",
			want: `s0["a<br/>wait 15m"]`,
		},
		{
			name: "StartOtherThanFirstStep",
			flow: "flow: t\nstart: b\nsteps:\n  a:\n    end: true\n  b:\n    say: Hi\n    next: a\n",
			want: "entry --> s1",
		},
		{
			name: "CutAtAWordWhenTheLimitFallsInOne",
			flow: "flow: t\nsteps:\n  a:\n    ask: { prompt: \"Please tell us your preferred pharmacy location\", type: text, save: p }\n    next: b\n  b:\n    end: true\n",
			want: `s0["a<br/>Please tell us your preferred pharmacy…"]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := parseClean(t, tt.flow).Mermaid()
			if !hasLine(strings.Split(out, "\n"), tt.want) {
				t.Errorf("no line %q in\n%s", tt.want, out)
			}
			checkMermaid(t, out)
		})
	}
}

// TestExportBrokenFlow draws a flow that has errors: the CLI refuses to, but
// an editor preview may, and it must not panic or draw arrows to nowhere.
func TestExportBrokenFlow(t *testing.T) {
	src := "flow: t\nkeywords:\n  BACK: { goto: nowhere }\nsteps:\n  a:\n    ask: { prompt: Hi, type: text, save: n, on_fail: gone }\n    next:\n      - when: n == 'x'\n        goto: missing\n      - goto: b\n  b:\n    end: true\n"
	f, diags := flows.Parse("broken.yaml", []byte(src))
	if diags.Errors() == 0 || f == nil {
		t.Fatalf("want a flow with errors, got %d errors", diags.Errors())
	}
	for name, out := range map[string]string{"Mermaid": f.Mermaid(), "DOT": f.DOT()} {
		t.Run(name, func(t *testing.T) {
			for _, absent := range []string{"missing", "gone", "nowhere"} {
				if strings.Contains(out, absent) {
					t.Errorf("the diagram mentions %q, a step that does not exist:\n%s", absent, out)
				}
			}
			if !strings.Contains(out, "otherwise") {
				t.Errorf("the default route next to a broken guard is not labelled otherwise:\n%s", out)
			}
		})
	}
}

func TestExportDeterministic(t *testing.T) {
	a, b := parseClean(t, exportFlow), parseClean(t, exportFlow)
	if a.Mermaid() != b.Mermaid() {
		t.Error("Mermaid output differs between two loads of the same flow")
	}
	if a.DOT() != b.DOT() {
		t.Error("DOT output differs between two loads of the same flow")
	}
	// Nodes come in file order.
	out := a.DOT()
	last := -1
	for _, id := range []string{`"welcome" [`, `"existing" [`, `"age" [`, `"symptoms" [`, `"urgent" [`, `"pause" [`, `"snooze" [`, `"end" [`} {
		i := strings.Index(out, id)
		if i <= last {
			t.Errorf("node %s is not after the step before it in the file", id)
		}
		last = i
	}
}

func hasLine(lines []string, want string) bool {
	for _, l := range lines {
		if strings.TrimSpace(l) == want {
			return true
		}
	}
	return false
}

func hasPrefixLine(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimLeft(l, "\t"), prefix) {
			return true
		}
	}
	return false
}
