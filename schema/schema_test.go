package schema_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/flows/diag"
	"github.com/safeflow/safeflow/schema"
)

const schemaURL = "flow.schema.json"

// compile compiles the embedded schema, or the part of it at fragment (a
// JSON pointer such as "/$defs/step"). Compiling also checks the schema
// against the draft 2020-12 meta-schema.
func compile(t *testing.T, fragment string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.FlowJSON))
	if err != nil {
		t.Fatalf("flow.schema.json is not valid JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(schemaURL, doc); err != nil {
		t.Fatalf("add schema: %v", err)
	}
	loc := schemaURL
	if fragment != "" {
		loc += "#" + fragment
	}
	sch, err := c.Compile(loc)
	if err != nil {
		t.Fatalf("compile %s: %v", loc, err)
	}
	return sch
}

// rawSchema returns the schema as plain JSON values, for walking it.
func rawSchema(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(schema.FlowJSON, &m); err != nil {
		t.Fatalf("flow.schema.json is not valid JSON: %v", err)
	}
	return m
}

// yamlToJSON turns YAML into the values encoding/json would produce, which is
// what the validator (and an editor's YAML extension) checks. It walks the
// node tree rather than decoding into any so that map keys are the text the
// loader sees (`5:` is the key "5") and YAML 1.1 timestamps stay text, as
// they do in YAML 1.2 editors.
func yamlToJSON(src []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	return nodeToJSON(&doc)
}

func nodeToJSON(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return nodeToJSON(n.Content[0])
	case yaml.AliasNode:
		return nodeToJSON(n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a key that is not text", k.Line)
			}
			v, err := nodeToJSON(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := nodeToJSON(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str", "!!timestamp", "!!binary":
			return n.Value, nil
		case "!!null":
			return nil, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// validate checks YAML source against the schema.
func validate(sch *jsonschema.Schema, src []byte) error {
	v, err := yamlToJSON(src)
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// loaderErrors returns the error-severity diagnostics of flows.Parse.
func loaderErrors(name string, src []byte) diag.List {
	_, list := flows.Parse(name, src)
	var errs diag.List
	for _, d := range list {
		if d.Severity == diag.Error {
			errs = append(errs, d)
		}
	}
	return errs
}

// structural are the codes for mistakes in the shape of the file, the kind a
// schema can see. A file without them must pass the schema, even when the
// loader finds a broken goto or a sensitive leak.
var structural = map[diag.Code]bool{
	diag.YAMLSyntax: true, diag.UnknownKey: true, diag.WrongType: true, diag.MissingField: true,
	diag.BadValue: true, diag.DuplicateKey: true, diag.FileTooLarge: true, diag.ReservedName: true,
	diag.ConflictingFields: true,
}

// fullFlow uses every part of the format, so that the schema is tried on all
// of it even while examples/ is empty.
const fullFlow = `# yaml-language-server: $schema=../schema/flow.schema.json
flow: new-patient-intake
title: New patient intake
description: First contact with a new patient.
language: en
start: welcome
trigger:
  keywords: [INTAKE, new, 2024]
  default: yes
vars:
  clinic_phone: phone
  birth: { type: date, sensitive: true }
secure:
  link_message:
    en: "To continue privately, tap {{ link }} (valid for 15 minutes)."
    es: "Para continuar en privado, toque {{ link }}."
  link_ttl: 15m
  verify:
    prompt: "Please enter your date of birth"
    equals: birth
  return: stay
keywords:
  HELP: "Call us at 555-0100. Reply STOP to opt out."
  HOURS: { en: "Open 8 to 6.", es: "Abierto de 8 a 6." }
  AGENT: { handoff: front-desk }
  RESTART: { say: ["Starting over.", { en: "Again", es: "Otra vez" }], goto: welcome }
  BYE: { end: true }
steps:
  welcome:
    note: Greeting; keep it short.
    say: "Hi! This is Sunny Clinic."
    ask:
      prompt: "Are you a new patient?"
      type: yes_no
      save: is_new
      retry: Please answer yes or no.
      attempts: 2
      on_fail: call-us
    next:
      - when: is_new
        goto: name
      - goto: existing
  existing:
    say: Welcome back!
    end: true
  call-us:
    handoff: front-desk
  name:
    ask: { prompt: "What is your first name?", type: text, save: first_name, min: 1, max: 40 }
    next: age_q
  age_q:
    ask:
      prompt: "How old are you?"
      type: integer
      save: years
      min: 0
      max: 120
      timeout: 1d
      reminder: Just checking in.
      remind_after: 1h30m
      on_timeout: existing
    set:
      adult: years >= 18
    next: member
  member:
    sensitive: true
    ask: { prompt: "Your member number?", type: pattern, pattern: "[A-Z]{3}[0-9]{6}", save: member_id }
    next: book
  book:
    ask:
      prompt: "Which day suits you?"
      type: choice
      choices: [Monday, 2, { value: wed, label: { en: Wednesday, es: Miércoles }, synonyms: [weds] }]
      save: day
    next: pause
  pause:
    wait: 2h
    next: done
  done:
    say:
      - "You're booked for {{ day }}. See you then!"
      - { en: Bye!, es: ¡Adiós! }
    end: yes
`

// TestValidFlowsPassSchema checks that the schema never rejects a flow the
// loader accepts: every example, every flow under flows/testdata and the
// full flow above. A file in which the loader finds a mistake of shape is
// skipped: the loader's own tests deal with it.
func TestValidFlowsPassSchema(t *testing.T) {
	sch := compile(t, "")

	if errs := loaderErrors("full.yaml", []byte(fullFlow)); len(errs) > 0 {
		t.Fatalf("the full flow fixture should load cleanly, got:\n%v", errs)
	}
	if err := validate(sch, []byte(fullFlow)); err != nil {
		t.Fatalf("the schema rejects the full flow that the loader accepts:\n%v", err)
	}

	var files []string
	for _, pattern := range []string{"../examples/*.yaml", "../examples/*/*.yaml", "../flows/testdata/*/*.yaml", "../flows/testdata/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	checked := 0
	for _, file := range files {
		if strings.HasSuffix(file, ".test.yaml") {
			continue
		}
		t.Run(file, func(t *testing.T) {
			src := readFile(t, file)
			for _, d := range loaderErrors(file, src) {
				if structural[d.Code] {
					t.Skipf("the loader finds a mistake of shape (%s), so the schema may reject it", d.Code)
				}
			}
			if err := validate(sch, src); err != nil {
				t.Errorf("the loader accepts the shape of %s but the schema rejects it:\n%v", file, err)
			}
			checked++
		})
	}
	t.Logf("checked %d flow files besides the built-in one", checked)
}

// TestSchemaAndLoaderRejectMistakes lists structural mistakes staff make. The
// schema must flag each in the editor, and the loader must refuse each too:
// a schema that is stricter than safeflow would show false alarms.
func TestSchemaAndLoaderRejectMistakes(t *testing.T) {
	sch := compile(t, "")
	tests := []struct {
		name string
		src  string
		want diag.Code // a code the loader must report
	}{
		{"MisspeltSensitive", step("sensitve: true\n    end: true"), diag.UnknownKey},
		{"UnknownAskKey", step("ask: { prompt: 'Hi?', promt: Hi }\n    next: a"), diag.UnknownKey},
		{"UnknownTopLevelKey", "flow: x\ntitel: X\n" + okSteps, diag.UnknownKey},
		{"UnknownVarKey", "flow: x\nvars:\n  dob: { type: date, sensitve: true }\n" + okSteps, diag.UnknownKey},
		{"UnknownChoiceKey", step("ask: { prompt: 'Day?', type: choice, choices: [{ value: mon, synonym: [m] }] }\n    next: a"), diag.UnknownKey},
		{"UnknownRouteKey", step("next:\n      - if: x\n        goto: a"), diag.UnknownKey},
		{"UnknownSecureKey", "flow: x\nsecure:\n  link_time: 15m\n" + okSteps, diag.UnknownKey},
		{"UnknownVerifyKey", "flow: x\nsecure:\n  verify: { prompt: 'DOB?', equals: dob, answer: x }\n" + okSteps, diag.UnknownKey},
		{"UnknownTriggerKey", "flow: x\ntrigger:\n  words: [HI]\n" + okSteps, diag.UnknownKey},
		{"UnknownKeywordKey", "flow: x\nkeywords:\n  HELP: { reply: Call us }\n" + okSteps, diag.UnknownKey},
		{"WrongTypeName", step("ask: { prompt: 'New?', type: yesno }\n    next: a"), diag.BadValue},
		{"WrongVarTypeName", "flow: x\nvars:\n  when_at: datetime\n" + okSteps, diag.BadValue},
		{"NextAsNumber", step("next: 5"), diag.MissingStep},
		{"NextAsMap", step("next: { goto: a }"), diag.WrongType},
		{"ChoicesAsString", step("ask: { prompt: 'Day?', type: choice, choices: \"Monday, Tuesday\" }\n    next: a"), diag.WrongType},
		{"SynonymsAsString", step("ask: { prompt: 'Day?', type: choice, choices: [{ value: wed, synonyms: weds }] }\n    next: a"), diag.WrongType},
		{"ChoiceWithoutValue", step("ask: { prompt: 'Day?', type: choice, choices: [{ label: Monday }] }\n    next: a"), diag.MissingField},
		{"ChoiceTypeWithoutChoices", step("ask: { prompt: 'Day?', type: choice }\n    next: a"), diag.MissingField},
		{"ChoiceTypeWithEmptyChoices", step("ask: { prompt: 'Day?', type: choice, choices: [] }\n    next: a"), diag.MissingField},
		{"ChoicesWithoutChoiceType", step("ask: { prompt: 'Day?', choices: [Monday] }\n    next: a"), diag.ConflictingFields},
		{"PatternTypeWithoutPattern", step("ask: { prompt: 'Id?', type: pattern }\n    next: a"), diag.MissingField},
		{"PatternWithoutPatternType", step("ask: { prompt: 'Id?', type: text, pattern: \"[0-9]+\" }\n    next: a"), diag.ConflictingFields},
		{"MinOnDate", step("ask: { prompt: 'When?', type: date, min: 1 }\n    next: a"), diag.ConflictingFields},
		{"ReminderWithoutTimeout", step("ask: { prompt: 'Hi?', reminder: 'Still there?' }\n    next: a"), diag.MissingField},
		{"OnTimeoutWithoutTimeout", step("ask: { prompt: 'Hi?', on_timeout: a }\n    next: a"), diag.MissingField},
		{"AskWithoutPrompt", step("ask: { type: text, save: x }\n    next: a"), diag.MissingField},
		{"AskAsText", step("ask: What is your name?\n    next: a"), diag.WrongType},
		{"AttemptsZero", step("ask: { prompt: 'Hi?', attempts: 0 }\n    next: a"), diag.BadValue},
		{"AttemptsEleven", step("ask: { prompt: 'Hi?', attempts: 11 }\n    next: a"), diag.BadValue},
		{"AttemptsAsWord", step("ask: { prompt: 'Hi?', attempts: three }\n    next: a"), diag.WrongType},
		{"MinAsWord", step("ask: { prompt: 'Age?', type: number, min: ten }\n    next: a"), diag.WrongType},
		{"SaveWithSpace", step("ask: { prompt: 'Name?', save: first name }\n    next: a"), diag.BadValue},
		{"SaveReservedName", step("ask: { prompt: 'Name?', save: input }\n    next: a"), diag.ReservedName},
		{"SetReservedName", step("set: { now: 1 }\n    next: a"), diag.ReservedName},
		{"SetAsList", step("set: [x]\n    next: a"), diag.WrongType},
		{"MissingSteps", "flow: x\ntitle: X\n", diag.MissingField},
		{"EmptySteps", "flow: x\nsteps: {}\n", diag.MissingField},
		{"StepsAsList", "flow: x\nsteps:\n  - say: Hi\n", diag.WrongType},
		{"StepAsText", "flow: x\nsteps:\n  a: Hello\n", diag.WrongType},
		{"StepNameWithSpace", "flow: x\nsteps:\n  ask name:\n    end: true\n", diag.BadValue},
		{"MissingFlowID", "title: X\n" + okSteps, diag.MissingField},
		{"BadFlowID", "flow: New Intake\n" + okSteps, diag.BadValue},
		{"FlowIDUpperCase", "flow: Intake\n" + okSteps, diag.BadValue},
		{"BadLanguage", "flow: x\nlanguage: english\n" + okSteps, diag.BadValue},
		{"FileIsAList", "- flow: x\n", diag.WrongType},
		{"MessageMapWithNonLanguageKey", step("say: { english: Hi }\n    end: true"), diag.BadValue},
		{"MessageTextAsList", step("say: { en: [Hi] }\n    end: true"), diag.WrongType},
		{"EmptyMessage", step("say:\n    end: true"), diag.WrongType},
		{"SensitiveAsWord", step("sensitive: maybe\n    end: true"), diag.WrongType},
		{"EndAsWord", step("end: done"), diag.WrongType},
		{"EndAndNext", step("end: true\n    next: a"), diag.ConflictingFields},
		{"AskAndWait", step("ask: { prompt: 'Hi?' }\n    wait: 1h\n    next: a"), diag.ConflictingFields},
		{"AskAndHandoff", step("ask: { prompt: 'Hi?' }\n    handoff: desk"), diag.ConflictingFields},
		{"WaitInWords", step("wait: 5 minutes\n    next: a"), diag.BadValue},
		{"WaitWithoutUnit", step("wait: 30\n    next: a"), diag.BadValue},
		{"WaitZero", step("wait: 0s\n    next: a"), diag.BadValue},
		{"WaitFractionalDays", step("wait: 1.5d\n    next: a"), diag.BadValue},
		{"RouteWithoutGoto", step("next:\n      - when: x"), diag.MissingField},
		{"LinkTTLInWords", "flow: x\nsecure:\n  link_ttl: a quarter hour\n" + okSteps, diag.BadValue},
		{"VerifyWithoutEquals", "flow: x\nsecure:\n  verify: { prompt: 'DOB?' }\n" + okSteps, diag.MissingField},
		{"BadReturn", "flow: x\nsecure:\n  return: back\n" + okSteps, diag.BadValue},
		{"TriggerKeywordsAsText", "flow: x\ntrigger:\n  keywords: INTAKE\n" + okSteps, diag.WrongType},
		{"TriggerKeywordTwoWords", "flow: x\ntrigger:\n  keywords: [NEW PATIENT]\n" + okSteps, diag.BadValue},
		{"TriggerDefaultAsWord", "flow: x\ntrigger:\n  default: always\n" + okSteps, diag.WrongType},
		{"KeywordTwoWords", "flow: x\nkeywords:\n  MAKE APPT: Call us\n" + okSteps, diag.BadValue},
		{"KeywordWithEmptyGoto", "flow: x\nkeywords:\n  HELP: { goto: '' }\n" + okSteps, diag.MissingField},
		{"KeywordAsList", "flow: x\nkeywords:\n  HELP: [Call us]\n" + okSteps, diag.WrongType},
		{"KeywordMixesLanguagesAndActions", "flow: x\nkeywords:\n  HELP: { en: Call us, goto: a }\n" + okSteps, diag.UnknownKey},
		{"KeywordEndFalseLooksLikeLanguage", "flow: x\nkeywords:\n  HELP: { end: false }\n" + okSteps, diag.MissingField},
		{"VarNameWithDash", "flow: x\nvars:\n  first-name: text\n" + okSteps, diag.BadValue},
		{"VarWithoutType", "flow: x\nvars:\n  dob: { sensitive: true }\n" + okSteps, diag.MissingField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := validate(sch, []byte(tt.src)); err == nil {
				t.Errorf("the schema accepts this mistake:\n%s", tt.src)
			}
			errs := loaderErrors("mistake.yaml", []byte(tt.src))
			if len(errs) == 0 {
				t.Fatalf("flows.Parse accepts this mistake, so the schema is stricter than safeflow:\n%s", tt.src)
			}
			if !slices.ContainsFunc(errs, func(d diag.Diagnostic) bool { return d.Code == tt.want }) {
				t.Errorf("flows.Parse reports %v, want a %s among them", errs, tt.want)
			}
		})
	}
}

// TestFieldValuesAgree tries edge values for the fields with a form of their
// own (lengths of time, yes/no, codes, names, keywords) and checks that the
// schema accepts exactly the values the loader accepts.
func TestFieldValuesAgree(t *testing.T) {
	sch := compile(t, "")
	tests := []struct {
		field  string
		flow   string // %s is replaced by the value
		values []string
	}{
		{"duration", step("wait: %s\n    next: a"),
			[]string{"30s", "15m", "4h", "1h30m", "1.5h", ".5h", "300ms", "10µs", "2d", "+2d", "+5m",
				"0s", "0d", "0", "-5m", "-2d", "5", "5 minutes", "1.5d", "1h2d", "2D", "d", "h"}},
		{"yes/no", step("sensitive: %s\n    end: true"),
			[]string{"true", "false", "yes", "no", "Yes", "No", "TRUE", "True", "FALSE", "'true'", "'no'",
				"y", "on", "off", "YES", "1", "maybe", "''"}},
		{"language", "flow: x\nlanguage: %s\n" + okSteps,
			[]string{"en", "es", "haw", "pt-BR", "zh-Hant", "en-us", "EN", "english", "e", "en_US", "en-", "pt-BRAZIL", "''"}},
		{"flow id", "flow: %s\n" + okSteps,
			[]string{"intake", "new-patient-intake", "2024", "2024-intake", "a--b", "-x", "New", "a_b", "a b", "''"}},
		{"step name", "flow: x\nsteps:\n  %s:\n    end: true\n",
			[]string{"ask-name", "ask_name", "_x", "-x", "Step2", "1st", "ask name", "ask.name", "Ünï"}},
		{"variable name", step("ask: { prompt: 'Name?', save: %s }\n    next: a"),
			[]string{"first_name", "_x", "X1", "yes", "1x", "first-name", "first name", "input", "now", "link", "nil", "true"}},
		{"trigger keyword", "flow: x\ntrigger:\n  keywords: [%s]\n" + okSteps,
			[]string{"INTAKE", "new", "2024", "é", "Cita", "'two words'", "a-b", "'!'", "1.5", "-1"}},
		{"attempts", step("ask: { prompt: 'Hi?', attempts: %s }\n    next: a"),
			[]string{"1", "3", "10", "0", "11", "-1", "2.5", "three"}},
		{"return", "flow: x\nsecure:\n  return: %s\n" + okSteps,
			[]string{"origin", "stay", "back", "Origin"}},
		{"answer type", step("ask: { prompt: 'Hi?', type: %s }\n    next: a"),
			[]string{"text", "number", "integer", "yes_no", "date", "time", "phone", "email", "zip", "yesno", "Text", "string"}},
	}
	for _, tt := range tests {
		for _, v := range tt.values {
			t.Run(tt.field+"/"+v, func(t *testing.T) {
				src := []byte(fmt.Sprintf(tt.flow, v))
				loaderOK := true
				for _, d := range loaderErrors("value.yaml", src) {
					if structural[d.Code] {
						loaderOK = false
					}
				}
				err := validate(sch, src)
				if schemaOK := err == nil; schemaOK != loaderOK {
					t.Errorf("for %s %s the loader accepts=%v but the schema accepts=%v (%v)", tt.field, v, loaderOK, schemaOK, err)
				}
			})
		}
	}
}

// TestEmptyTextIsFlagged lists places where the loader reads an empty text,
// written as two single quotes, as if the key were not written at all. The
// schema flags them on purpose: an empty wait, type or save is a slip, not a
// choice. When the loader starts to reject one, move it to
// TestSchemaAndLoaderRejectMistakes.
func TestEmptyTextIsFlagged(t *testing.T) {
	sch := compile(t, "")
	tests := []struct{ name, src string }{
		{"Wait", step("wait: ''\n    next: a")},
		{"Save", step("ask: { prompt: 'Name?', save: '' }\n    next: a")},
		{"AskType", step("ask: { prompt: 'Name?', type: '' }\n    next: a")},
		{"OnFail", step("ask: { prompt: 'Name?', on_fail: '' }\n    next: a")},
		{"Timeout", step("ask: { prompt: 'Name?', timeout: '' }\n    next: a")},
		{"Start", "flow: x\nstart: ''\n" + okSteps},
		{"Return", "flow: x\nsecure:\n  return: ''\n" + okSteps},
		{"LinkTTL", "flow: x\nsecure:\n  link_ttl: ''\n" + okSteps},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := validate(sch, []byte(tt.src)); err == nil {
				t.Errorf("the schema accepts an empty text here:\n%s", tt.src)
			}
			if errs := loaderErrors("empty.yaml", []byte(tt.src)); len(errs) > 0 {
				t.Errorf("the loader now rejects this (%v); move the case to TestSchemaAndLoaderRejectMistakes", errs)
			}
		})
	}
}

// okSteps is a steps section that loads cleanly, to follow a top-level mistake.
const okSteps = "steps:\n  a:\n    say: Hi\n    end: true\n"

// step returns a flow whose first step has the given body (indented four
// spaces) and whose second step `a` ends the flow.
func step(body string) string {
	return "flow: x\nsteps:\n  first:\n    " + body + "\n  a:\n    say: Bye\n    end: true\n"
}

// objectDefs maps each place in a flow that takes `key: value` lines to the
// loader's list of keys for it and to a function that builds a flow with one
// such key set to a value.
var objectDefs = []struct {
	pointer   string // JSON pointer of the object schema
	loaderVar string // name of the loader's key list
	place     func(key string, v any) map[string]any
}{
	{"", "topKeys", func(k string, v any) map[string]any {
		f := baseFlow()
		f[k] = v
		return f
	}},
	{"/$defs/trigger", "triggerKeys", func(k string, v any) map[string]any {
		f := baseFlow()
		f["trigger"] = map[string]any{k: v}
		return f
	}},
	{"/$defs/variable/anyOf/1", "varKeys", func(k string, v any) map[string]any {
		f := baseFlow()
		f["vars"] = map[string]any{"x": map[string]any{"type": "text", k: v}}
		return f
	}},
	{"/$defs/secure", "secureKeys", func(k string, v any) map[string]any {
		f := baseFlow()
		f["secure"] = map[string]any{k: v}
		return f
	}},
	{"/$defs/secure/properties/verify", "verifyKeys", func(k string, v any) map[string]any {
		f := baseFlow()
		f["secure"] = map[string]any{"verify": map[string]any{"prompt": "Date of birth?", "equals": "1", k: v}}
		return f
	}},
	{"/$defs/keywordAction", "keywordKeys", func(k string, v any) map[string]any {
		f := baseFlow()
		f["keywords"] = map[string]any{"HELP": map[string]any{k: v}}
		return f
	}},
	{"/$defs/step", "stepKeys", func(k string, v any) map[string]any {
		f := baseFlow()
		stepOf(f)[k] = v
		return f
	}},
	{"/$defs/ask", "askKeys", func(k string, v any) map[string]any {
		f := baseFlow()
		stepOf(f)["ask"] = map[string]any{"prompt": "Hi?", k: v}
		return f
	}},
	{"/$defs/choice", "choiceKeys", func(k string, v any) map[string]any {
		f := baseFlow()
		stepOf(f)["ask"] = map[string]any{"prompt": "Day?", "type": "choice",
			"choices": []any{map[string]any{"value": "mon", k: v}}}
		return f
	}},
	{"/$defs/route", "routeKeys", func(k string, v any) map[string]any {
		f := baseFlow()
		stepOf(f)["next"] = []any{map[string]any{"goto": "welcome", k: v}}
		return f
	}},
}

func baseFlow() map[string]any {
	return map[string]any{"flow": "demo", "steps": map[string]any{"welcome": map[string]any{"say": "Hi"}}}
}

func stepOf(f map[string]any) map[string]any {
	return f["steps"].(map[string]any)["welcome"].(map[string]any)
}

// TestSchemaKeysMatchLoader compares the keys the schema allows in each
// object with the loader's key lists, read from the flows package's source
// so that nothing new has to be exported. A key added to the loader and
// not to the schema (or the other way round) fails here.
func TestSchemaKeysMatchLoader(t *testing.T) {
	raw := rawSchema(t)
	lists := loaderLists(t)
	for _, def := range objectDefs {
		t.Run(def.loaderVar, func(t *testing.T) {
			want, ok := lists[def.loaderVar].([]string)
			if !ok {
				t.Fatalf("no []string %s in flows/*.go; update objectDefs to the loader's new name", def.loaderVar)
			}
			obj := pointer(t, raw, def.pointer)
			if obj["additionalProperties"] != false {
				t.Errorf("the schema at %q allows unknown keys, but the loader rejects them", def.pointer)
			}
			got := keysOf(obj["properties"])
			if !slices.Equal(got, sorted(want)) {
				t.Errorf("the schema at %q allows %v; the loader's %s allows %v", def.pointer, got, def.loaderVar, sorted(want))
			}
		})
	}

	t.Run("inputTypes", func(t *testing.T) {
		got := sorted(strs(pointer(t, raw, "/$defs/inputType")["enum"]))
		if !slices.Equal(got, flows.InputTypes()) {
			t.Errorf("the schema's types are %v; the loader's are %v", got, flows.InputTypes())
		}
	})
	t.Run("returnValues", func(t *testing.T) {
		got := sorted(strs(pointer(t, raw, "/$defs/secure/properties/return")["enum"]))
		want, _ := lists["returnValues"].([]string)
		if !slices.Equal(got, sorted(want)) {
			t.Errorf("the schema allows return %v; the loader allows %v", got, want)
		}
	})
	t.Run("reservedNames", func(t *testing.T) {
		not, _ := pointer(t, raw, "/$defs/variableName")["not"].(map[string]any)
		got := sorted(strs(not["enum"]))
		want, _ := lists["reservedNames"].([]string)
		if len(want) == 0 || !slices.Equal(got, sorted(want)) {
			t.Errorf("the schema reserves %v; the loader reserves %v", got, want)
		}
	})
	// Language codes and variable names are matched by hand-written
	// functions in the loader, not regexps: TestFieldValuesAgree holds the
	// schema's patterns to the loader's answers on the same values.
	for _, p := range []struct{ loaderVar, pointer string }{
		{"flowIDRe", "/properties/flow/anyOf/0"},
	} {
		t.Run(p.loaderVar, func(t *testing.T) {
			want, _ := lists[p.loaderVar].(string)
			if got := pointer(t, raw, p.pointer)["pattern"]; got != want {
				t.Errorf("the schema's pattern at %q is %q; the loader's %s is %q", p.pointer, got, p.loaderVar, want)
			}
		})
	}
}

// TestSchemaKeysAcceptedByLoader builds, for every key the schema allows,
// a flow that uses it with the key's first example value, and checks that
// the loader knows the key and accepts the value there. It also checks that
// the example is valid for the schema itself and that every key has a
// description for the editor to show.
func TestSchemaKeysAcceptedByLoader(t *testing.T) {
	raw := rawSchema(t)
	for _, def := range objectDefs {
		props, _ := pointer(t, raw, def.pointer)["properties"].(map[string]any)
		for _, key := range keysOf(props) {
			t.Run(def.loaderVar+"/"+key, func(t *testing.T) {
				prop := props[key].(map[string]any)
				propPointer := def.pointer + "/properties/" + key
				if description(raw, prop) == "" {
					t.Errorf("%s has no description for editors to show", propPointer)
				}
				example, ok := firstExample(raw, prop)
				if !ok {
					t.Fatalf("%s has no examples", propPointer)
				}
				if err := compile(t, propPointer).Validate(example); err != nil {
					t.Errorf("the example %v of %s does not pass the schema: %v", example, propPointer, err)
				}
				src, err := yaml.Marshal(def.place(key, example))
				if err != nil {
					t.Fatal(err)
				}
				_, list := flows.Parse("key.yaml", src)
				for _, d := range list {
					switch d.Code {
					case diag.YAMLSyntax, diag.UnknownKey, diag.WrongType, diag.BadValue:
						t.Errorf("the loader refuses `%s` with its schema example: %v\n%s", key, d, src)
					}
				}
			})
		}
	}
}

// TestDefinitionsAreDescribed checks that every definition an editor may
// show on hover explains itself.
func TestDefinitionsAreDescribed(t *testing.T) {
	raw := rawSchema(t)
	defs, _ := raw["$defs"].(map[string]any)
	for _, name := range keysOf(defs) {
		if name == "isTrue" {
			continue // only used inside conditions, never shown
		}
		if d, _ := defs[name].(map[string]any)["description"].(string); d == "" {
			t.Errorf("$defs/%s has no description", name)
		}
	}
}

// TestConverterKeepsLoaderView checks the YAML-to-JSON conversion the tests
// rely on: keys stay the text written, dates stay text, numbers stay numbers.
func TestConverterKeepsLoaderView(t *testing.T) {
	got, err := yamlToJSON([]byte("5: a\nyes: b\nwhen: 2024-01-02\nn: 3\nf: 2.5\nok: true\nnone:\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"5": "a", "yes": "b", "when": "2024-01-02", "n": 3, "f": 2.5, "ok": true, "none": nil}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := yamlToJSON([]byte("[a, b]: c\n")); err == nil {
		t.Error("a list used as a key should be refused")
	}
}

// loaderLists reads the flows package's source and returns its top-level
// string lists, string-keyed map literals (as key lists) and
// regexp.MustCompile patterns, by variable name.
func loaderLists(t *testing.T) map[string]any {
	t.Helper()
	files, err := filepath.Glob("../flows/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("cannot find the flows package source: %v", err)
	}
	out := map[string]any{}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", file, err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if v, ok := literalValue(vs.Values[i]); ok {
							out[name.Name] = v
						}
					}
				}
			}
		}
	}
	return out
}

// literalValue returns a []string for a string slice or string-keyed map
// literal, and a string for regexp.MustCompile("...").
func literalValue(e ast.Expr) (any, bool) {
	switch e := e.(type) {
	case *ast.CompositeLit:
		var out []string
		for _, el := range e.Elts {
			if kv, ok := el.(*ast.KeyValueExpr); ok {
				el = kv.Key
			}
			s, ok := stringLit(el)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	case *ast.CallExpr:
		if sel, ok := e.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "MustCompile" && len(e.Args) == 1 {
			return stringLit(e.Args[0])
		}
	}
	return nil, false
}

func stringLit(e ast.Expr) (string, bool) {
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(b.Value)
	return s, err == nil
}

// pointer follows a JSON pointer of plain path segments into the schema.
func pointer(t *testing.T, raw map[string]any, p string) map[string]any {
	t.Helper()
	var cur any = raw
	for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if seg == "" {
			continue
		}
		switch c := cur.(type) {
		case map[string]any:
			cur = c[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i >= len(c) {
				t.Fatalf("no %q in the schema", p)
			}
			cur = c[i]
		}
	}
	m, ok := cur.(map[string]any)
	if !ok {
		t.Fatalf("no object at %q in the schema", p)
	}
	return m
}

// resolve follows a local $ref such as "#/$defs/text".
func resolve(raw, s map[string]any) map[string]any {
	ref, _ := s["$ref"].(string)
	if !strings.HasPrefix(ref, "#/$defs/") {
		return nil
	}
	defs, _ := raw["$defs"].(map[string]any)
	m, _ := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	return m
}

func description(raw, s map[string]any) string {
	if d, _ := s["description"].(string); d != "" {
		return d
	}
	if target := resolve(raw, s); target != nil {
		return description(raw, target)
	}
	return ""
}

func firstExample(raw, s map[string]any) (any, bool) {
	if ex, _ := s["examples"].([]any); len(ex) > 0 {
		return ex[0], true
	}
	if target := resolve(raw, s); target != nil {
		return firstExample(raw, target)
	}
	return nil, false
}

func keysOf(v any) []string {
	m, _ := v.(map[string]any)
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return sorted(out)
}

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
