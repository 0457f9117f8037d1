package flows_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/flows/diag"
)

// parseOK parses a flow that must load without errors.
func parseOK(t *testing.T, src string) *flows.Flow {
	t.Helper()
	f, d := flows.Parse("test.yaml", []byte(src))
	if d.Errors() > 0 || f == nil {
		var b strings.Builder
		diag.WriteText(&b, d, func(string) []byte { return []byte(src) }, 0)
		t.Fatalf("flow did not load:\n%s", b.String())
	}
	return f
}

const typesFlow = `
flow: types
vars:
  clinic: text
  visit_at: { type: date }
  diagnosis: { type: text, sensitive: true }
steps:
  a:
    ask: { prompt: "Name?", save: name }
    next: b
  b:
    ask: { prompt: "Weight?", type: number, save: weight }
    next: c
  c:
    ask: { prompt: "Children?", type: integer, save: kids }
    next: d
  d:
    ask: { prompt: "Smoker?", type: yes_no, save: smokes }
    next: e
  e:
    ask: { prompt: "Born?", type: date, save: born }
    set:
      label: 'name + " (" + clinic + ")"'
      heavy: weight > 100
      doubled: kids * 2
      ratio: weight / 2
      older: age(born)
    next: f
  f:
    ask: { prompt: "Day?", type: choice, choices: [Mon, Tue], save: day }
    next: g
  g:
    ask:
      prompt: "Code?"
      type: pattern
      pattern: "[0-9]{4}"
      save: code
    next: h
  h:
    ask: { prompt: "Phone?", type: phone, save: phone }
    end: true
`

func TestVariableTypes(t *testing.T) {
	f := parseOK(t, typesFlow)
	tests := []struct {
		name, typ string
		goType    reflect.Type
	}{
		{"clinic", "text", reflect.TypeFor[string]()},
		{"visit_at", "date", reflect.TypeFor[time.Time]()},
		{"diagnosis", "text", reflect.TypeFor[string]()},
		{"name", "text", reflect.TypeFor[string]()},
		{"weight", "number", reflect.TypeFor[float64]()},
		{"kids", "integer", reflect.TypeFor[int]()},
		{"smokes", "yes_no", reflect.TypeFor[bool]()},
		{"born", "date", reflect.TypeFor[time.Time]()},
		{"day", "choice", reflect.TypeFor[string]()},
		{"code", "pattern", reflect.TypeFor[string]()},
		{"phone", "phone", reflect.TypeFor[string]()},
		{"label", "value", reflect.TypeFor[string]()},
		{"heavy", "value", reflect.TypeFor[bool]()},
		{"doubled", "value", reflect.TypeFor[int]()},
		{"ratio", "value", reflect.TypeFor[float64]()},
		{"older", "value", reflect.TypeFor[int]()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := f.Variables[tt.name]
			if v == nil {
				t.Fatalf("variable %s is missing", tt.name)
			}
			if v.Type != tt.typ || v.GoType != tt.goType {
				t.Errorf("got type %s (%v), want %s (%v)", v.Type, v.GoType, tt.typ, tt.goType)
			}
			if v.Pos.Line == 0 {
				t.Errorf("variable has no position")
			}
		})
	}
	if len(f.Variables) != len(tests) {
		t.Errorf("got %d variables, want %d", len(f.Variables), len(tests))
	}
}

// TestSetTypesInDependencyOrder checks that a set reading a variable made by
// a later set in the file still gets the right type.
func TestSetTypesInDependencyOrder(t *testing.T) {
	f := parseOK(t, `
flow: order
start: second
steps:
  first:
    set:
      label: 'adult ? "adult" : "child"'
    end: true
  second:
    ask: { prompt: "Age?", type: integer, save: years }
    set:
      months: years * 12
    next: third
  third:
    set:
      adult: months >= 216
    next: first
`)
	for name, want := range map[string]reflect.Type{"label": reflect.TypeFor[string](), "adult": reflect.TypeFor[bool](), "months": reflect.TypeFor[int]()} {
		if got := f.Variables[name].GoType; got != want {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
}

func TestExprIdentFastPath(t *testing.T) {
	f := parseOK(t, `
flow: idents
steps:
  a:
    ask: { prompt: "New?", type: yes_no, save: is_new }
    next: b
  b:
    ask: { prompt: "Hi {{ is_new }}, you said {{input}}. Born?", type: date, save: born }
    next:
      - when: is_new
        goto: c
      - when: age(born) >= 18 && is_new
        goto: c
      - goto: c
  c:
    end: true
`)
	b := f.Step("b")
	var parts []*flows.Expr
	for _, p := range b.Ask.Prompt.Text[""].Parts {
		if p.Expr != nil {
			parts = append(parts, p.Expr)
		}
	}
	tests := []struct {
		name      string
		e         *flows.Expr
		ident     string
		program   bool
		vars      []string
		usesInput bool
		typ       reflect.Type
	}{
		{"guard on a lone variable", b.Next[0].When, "is_new", false, []string{"is_new"}, false, reflect.TypeFor[bool]()},
		{"guard with a call", b.Next[1].When, "", true, []string{"born", "is_new"}, false, reflect.TypeFor[bool]()},
		{"template variable", parts[0], "is_new", false, []string{"is_new"}, false, reflect.TypeFor[bool]()},
		{"template input", parts[1], "input", false, nil, true, reflect.TypeFor[string]()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.e
			if e.Ident != tt.ident {
				t.Errorf("Ident = %q, want %q", e.Ident, tt.ident)
			}
			if (e.Program != nil) != tt.program {
				t.Errorf("Program set = %v, want %v", e.Program != nil, tt.program)
			}
			if !slices.Equal(e.Vars, tt.vars) {
				t.Errorf("Vars = %v, want %v", e.Vars, tt.vars)
			}
			if e.UsesInput != tt.usesInput {
				t.Errorf("UsesInput = %v, want %v", e.UsesInput, tt.usesInput)
			}
			if e.Type != tt.typ {
				t.Errorf("Type = %v, want %v", e.Type, tt.typ)
			}
		})
	}
}

func TestExprVars(t *testing.T) {
	tests := []struct {
		name      string
		expr      string
		vars      []string
		usesInput bool
	}{
		{"sorted and without repeats", `weight > 100 and (weight + height > 3 or allergic)`, []string{"allergic", "height", "weight"}, false},
		{"helpers and contact are not variables", `age(born) > 18 and contact.channel == "sms"`, []string{"born"}, false},
		{"input is not a variable", `input matches "(?i)yes" and allergic`, []string{"allergic"}, true},
		{"predicate variables are not flow variables", `any([1, 2], {# > height})`, []string{"height"}, false},
		{"constants only", `1 + 2 > 2`, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := parseOK(t, `
flow: vars
steps:
  a:
    ask: { prompt: "Weight?", type: number, save: weight }
    next: b
  b:
    ask: { prompt: "Height?", type: number, save: height }
    next: c
  c:
    ask: { prompt: "Allergic?", type: yes_no, save: allergic }
    next: d
  d:
    ask: { prompt: "Born?", type: date, save: born }
    next:
      - when: '`+tt.expr+`'
        goto: e
      - goto: e
  e:
    end: true
`)
			e := f.Step("d").Next[0].When
			if !slices.Equal(e.Vars, tt.vars) {
				t.Errorf("Vars = %v, want %v", e.Vars, tt.vars)
			}
			if e.UsesInput != tt.usesInput {
				t.Errorf("UsesInput = %v, want %v", e.UsesInput, tt.usesInput)
			}
			if e.Program == nil {
				t.Errorf("no program compiled")
			}
		})
	}
}

func TestSensitiveMarking(t *testing.T) {
	f := parseOK(t, `
flow: taint
vars:
  diagnosis: { type: text, sensitive: true }
  clinic: text
secure:
  link_message: "Continue here: {{ link }}"
steps:
  name:
    ask: { prompt: "Name?", save: name }
    next: reason
  reason:
    sensitive: true
    ask: { prompt: "Why are you coming in?", save: reason }
    set:
      urgent: reason matches "(?i)pain"
      raw: input
      greeting: '"Hi " + name'
    next: plan
  plan:
    set:
      priority: 'urgent ? 1 : 2'
      label: '"P" + string(priority)'
      about: diagnosis + "!"
      where: clinic
    end: true
`)
	tests := []struct {
		name      string
		sensitive bool
	}{
		{"name", false},
		{"clinic", false},
		{"greeting", false},
		{"where", false},
		{"reason", true},
		{"diagnosis", true},
		{"urgent", true},
		{"raw", true},
		{"priority", true},
		{"label", true},
		{"about", true},
	}
	for _, tt := range tests {
		if got := f.Variables[tt.name].Sensitive; got != tt.sensitive {
			t.Errorf("Variables[%s].Sensitive = %v, want %v", tt.name, got, tt.sensitive)
		}
	}
}

func TestLanguages(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"single language", `
flow: one
steps:
  a:
    say: "Hello"
    end: true
`, nil},
		{"two languages, sorted", `
flow: two
steps:
  a:
    say: { es: "Hola", en: "Hello" }
    ask:
      prompt: { en: "Day?", es: "¿Día?" }
      type: choice
      choices: [Mon, { value: tue, label: { en: Tuesday, es: Martes } }]
      save: day
    end: true
`, []string{"en", "es"}},
		{"a language only in a keyword", `
flow: kw
keywords:
  HELP: { say: { fr: "Aide", en: "Help" } }
steps:
  a:
    say: { en: "Hello", fr: "Bonjour" }
    end: true
`, []string{"en", "fr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := parseOK(t, tt.src)
			if !slices.Equal(f.Languages, tt.want) {
				t.Errorf("Languages = %v, want %v", f.Languages, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	src := `
flow: defaults
trigger:
  keywords: [intake, Flu]
keywords:
  help: "Call 555-0100"
steps:
  first:
    ask:
      prompt: "Name?"
      save: name
      timeout: 2h
      reminder: "Still there?"
    next: second
  second:
    say: "Thanks {{ name }}"
    end: true
`
	f := parseOK(t, src)
	sum := sha256.Sum256([]byte(src))
	a := f.Step("first").Ask
	checks := []struct {
		what      string
		got, want any
	}{
		{"start is the first step", f.Start, "first"},
		{"StartStep", f.StartStep().ID, "first"},
		{"attempts", a.Attempts, flows.DefaultAttempts},
		{"ask type", a.Type, flows.TypeText},
		{"remind_after is half the timeout", a.RemindAfter, time.Hour},
		{"link_ttl", f.Secure.LinkTTL, 15 * time.Minute},
		{"return", f.Secure.Return, "origin"},
		{"language", f.Language, "en"},
		{"trigger keywords are upper-case", strings.Join(f.Trigger.Keywords, ","), "INTAKE,FLU"},
		{"keyword words are upper-case", f.Keywords[0].Word, "HELP"},
		{"hash is the SHA-256 of the source", f.Hash, hex.EncodeToString(sum[:])},
		{"steps keep file order", f.Steps[1].Index, 1},
		{"unknown step", f.Step("nope") == nil, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestExplicitSettings(t *testing.T) {
	f := parseOK(t, `
flow: explicit
language: es
start: second
secure:
  link_message: "Aquí: {{ link }}"
  link_ttl: 2d
  return: stay
  verify:
    prompt: "¿Fecha de nacimiento?"
    equals: born
vars:
  born: date
steps:
  first:
    ask: { prompt: "¿Cuántos?", type: integer, save: n, attempts: 5, min: 1, max: 9 }
    next: second
  second:
    sensitive: true
    wait: 90s
    next: first
`)
	if f.Start != "second" || f.Secure.LinkTTL != 48*time.Hour || f.Secure.Return != "stay" || f.Language != "es" {
		t.Errorf("got start %s, ttl %v, return %s, language %s", f.Start, f.Secure.LinkTTL, f.Secure.Return, f.Language)
	}
	if f.Secure.Verify.Type != flows.TypeDate {
		t.Errorf("verify type = %q, want date", f.Secure.Verify.Type)
	}
	a := f.Step("first").Ask
	if a.Attempts != 5 || *a.Min != 1 || *a.Max != 9 {
		t.Errorf("attempts %d, min %v, max %v", a.Attempts, *a.Min, *a.Max)
	}
	if s := f.Step("second"); s.Wait != 90*time.Second || !s.Pauses() {
		t.Errorf("wait = %v, pauses = %v", s.Wait, s.Pauses())
	}
}

func TestVerifyType(t *testing.T) {
	tests := []struct{ varType, equals, want string }{
		{"date", "born", flows.TypeDate},
		{"integer", "pin", flows.TypeInteger},
		{"number", "pin", flows.TypeNumber},
		{"zip", "pin", flows.TypeText},
		{"text", "lower(pin)", flows.TypeText},
	}
	for _, tt := range tests {
		t.Run(tt.varType+" "+tt.equals, func(t *testing.T) {
			name := strings.Fields(strings.NewReplacer("(", " ", ")", " ").Replace(tt.equals))
			f := parseOK(t, `
flow: verify
vars:
  `+name[len(name)-1]+`: `+tt.varType+`
secure:
  link_message: "{{ link }}"
  verify: { prompt: "Check", equals: "`+tt.equals+`" }
steps:
  a:
    sensitive: true
    say: "Hi"
    end: true
`)
			if got := f.Secure.Verify.Type; got != tt.want {
				t.Errorf("Verify.Type = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTemplateParts(t *testing.T) {
	f := parseOK(t, `
flow: tpl
steps:
  a:
    ask: { prompt: "Name?", save: name }
    next: b
  b:
    say: "Hi {{name}}, see you {{ 'soon' }}!"
    end: true
`)
	tpl := f.Step("b").Say[0].Text[""]
	if got := tpl.Literal(); got != "Hi , see you !" {
		t.Errorf("Literal() = %q", got)
	}
	var kinds []string
	for _, p := range tpl.Parts {
		if p.Expr != nil {
			kinds = append(kinds, "{"+p.Expr.Source+"}")
		} else {
			kinds = append(kinds, p.Lit)
		}
	}
	if want := []string{"Hi ", "{name}", ", see you ", "{'soon'}", "!"}; !slices.Equal(kinds, want) {
		t.Errorf("parts = %q, want %q", kinds, want)
	}
	if p := tpl.Parts[1].Expr.Pos; p.Line != 8 || p.Col != 16 {
		t.Errorf("{{name}} at %d:%d, want 8:16", p.Line, p.Col)
	}
}

func TestEdges(t *testing.T) {
	f := parseOK(t, `
flow: edges
steps:
  a:
    ask:
      prompt: "Day?"
      type: choice
      choices: [Mon, Tue]
      save: day
      on_fail: desk
      timeout: 1h
      on_timeout: bye
    next:
      - when: day == "Mon"
        goto: mon
      - goto: bye
  mon:
    end: true
  desk:
    handoff: front-desk
  bye:
    end: true
`)
	var got []string
	for _, e := range f.Edges(f.Step("a")) {
		got = append(got, e.From.ID+">"+e.To.ID+":"+e.Label())
	}
	want := []string{`a>mon:day == "Mon"`, "a>bye:", "a>desk:on fail", "a>bye:on timeout"}
	if !slices.Equal(got, want) {
		t.Errorf("edges = %q, want %q", got, want)
	}
	if !f.Step("desk").Pauses() || f.Step("mon").Ask != nil && !f.Step("mon").Pauses() {
		t.Errorf("handoff and end steps must pause")
	}
}

func TestParseKeepsFlowWithErrors(t *testing.T) {
	f, d := flows.Parse("x.yaml", []byte("flow: x\nsteps:\n  a:\n    say: \"{{ nope }}\"\n"))
	if f == nil || f.Step("a") == nil {
		t.Fatal("Parse must return the flow even when it has errors")
	}
	if d.Errors() != 2 || d.Err() == nil {
		t.Errorf("want 2 errors (unknown name, dead end), got %v", d)
	}
	for _, bad := range []string{"", "# only a comment\n", "[1, 2]", "flow: [", "- a\n- b\n"} {
		f, d := flows.Parse("x.yaml", []byte(bad))
		if d.Errors() == 0 {
			t.Errorf("Parse(%q) reported no error", bad)
		}
		if f != nil && bad != "" {
			t.Errorf("Parse(%q) returned a flow", bad)
		}
	}
}

func TestSetLookups(t *testing.T) {
	set := flows.NewSet(map[string][]byte{
		"a.yaml": []byte("flow: a\ntrigger: { keywords: [FLU] }\nsteps:\n  s:\n    end: true\n"),
		"b.yaml": []byte("flow: b\ntrigger: { default: true }\nsteps:\n  s:\n    end: true\n"),
		"c.yaml": []byte("flow: c\nsteps:\n  s:\n    say: oops\n"),
	})
	if len(set.Flows) != 2 || set.Flows["c"] != nil {
		t.Errorf("want flows a and b only, got %v", len(set.Flows))
	}
	if f := set.ByKeyword("flu"); f == nil || f.ID != "a" {
		t.Errorf("ByKeyword(flu) = %v", f)
	}
	if set.ByKeyword("nope") != nil {
		t.Errorf("ByKeyword(nope) found a flow")
	}
	if f := set.Default(); f == nil || f.ID != "b" {
		t.Errorf("Default() = %v", f)
	}
	if string(set.Source("c.yaml")) == "" || set.Source("zz.yaml") != nil {
		t.Errorf("Source does not return the files")
	}
	if set.Diags.Errors() != 1 || set.Diags[0].Code != diag.DeadEnd {
		t.Errorf("want one dead-end error from c.yaml, got %v", set.Diags)
	}
}

func TestFindFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.yaml", "b.yml", "a.test.yaml", "notes.txt", "sub/c.yaml", ".hidden/d.yaml"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("flow: x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := flows.FindFiles([]string{dir, filepath.Join(dir, "notes.txt")}, flows.IsFlowFile)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i], _ = filepath.Rel(dir, got[i])
	}
	if want := []string{"a.yaml", "b.yml", "sub/c.yaml", "notes.txt"}; !slices.Equal(got, want) {
		t.Errorf("FindFiles = %v, want %v", got, want)
	}
	tests, _ := flows.FindFiles([]string{dir}, flows.IsTestFile)
	if len(tests) != 1 || !strings.HasSuffix(tests[0], "a.test.yaml") {
		t.Errorf("test files = %v", tests)
	}
	if _, err := flows.FindFiles([]string{filepath.Join(dir, "missing")}, flows.IsFlowFile); err == nil {
		t.Errorf("a missing path must be an error")
	}
	if _, err := flows.LoadFiles([]string{filepath.Join(dir, "missing.yaml")}); err == nil {
		t.Errorf("LoadFiles of a missing file must be an error")
	}
}

func TestHelpers(t *testing.T) {
	now := time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)
	h := flows.Helpers(func() time.Time { return now })
	age := h["age"].(func(time.Time) int)
	until := h["days_until"].(func(time.Time) int)
	since := h["days_since"].(func(time.Time) int)
	format := h["format_date"].(func(time.Time, ...string) string)
	tests := []struct {
		name      string
		got, want any
	}{
		{"age before the birthday", age(time.Date(2000, 3, 16, 0, 0, 0, 0, time.UTC)), 25},
		{"age on the birthday", age(time.Date(2000, 3, 15, 0, 0, 0, 0, time.UTC)), 26},
		{"days until tomorrow, late in the day", until(time.Date(2026, 3, 16, 23, 0, 0, 0, time.UTC)), 1},
		{"days since last week", since(time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)), 7},
		{"format in English", format(time.Date(2026, 3, 17, 0, 0, 0, 0, time.UTC)), "Tuesday, March 17"},
		{"format in Spanish", format(time.Date(2026, 3, 17, 0, 0, 0, 0, time.UTC), "es"), "martes 17 de marzo"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestInputTypes(t *testing.T) {
	types := flows.InputTypes()
	if !slices.IsSorted(types) || len(types) != 11 {
		t.Errorf("InputTypes() = %v", types)
	}
	for _, typ := range types {
		if flows.GoTypeOf(typ) == nil {
			t.Errorf("GoTypeOf(%s) is nil", typ)
		}
	}
	if flows.GoTypeOf("colour") != nil {
		t.Errorf("GoTypeOf of an unknown type is not nil")
	}
}
