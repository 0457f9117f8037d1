package convtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
	"gopkg.in/yaml.v3"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows/diag"
)

// Pos is a place in a test file.
type Pos = diag.Pos

// DefaultNow is the clock of a test file that sets no `now:`: a Monday
// morning, so that "tomorrow" and weekdays read the same on every run.
var DefaultNow = time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)

// MaxFileSize bounds a test file; conversation tests are small.
const MaxFileSize = 1 << 20

// File is one parsed conversation test file.
type File struct {
	Path string
	Src  []byte
	// Flow is the id of the flow under test.
	Flow    string
	FlowPos Pos
	Tests   []*Test

	doc *yaml.Node
}

// Test is one conversation with its checks.
type Test struct {
	Name string
	Pos  Pos
	// Channel is where the patient writes from: SMS or Messenger.
	Channel  engine.Channel
	Language string
	Now      time.Time
	// Start is set when the clinic starts the flow; nil when the patient
	// starts it with their first message.
	Start  *Start
	Turns  []*Turn
	Expect *Expect

	convNode *yaml.Node // the `conversation:` sequence, for --update
}

// Start is a flow started by the clinic, optionally mid-flow.
type Start struct {
	// Step is "" for the flow's first step.
	Step    string
	StepPos Pos
	// Vars are the values the clinic supplies, as written in the file.
	Vars []*VarValue
	Pos  Pos
}

// VarValue is a variable's value as written in a test file.
type VarValue struct {
	Name  string
	Value string
	// Pos places the value; NamePos the name.
	Pos, NamePos Pos
}

// TurnKind says what a conversation turn does.
type TurnKind int

// The turn kinds.
const (
	// TurnUser is a message from the patient.
	TurnUser TurnKind = iota
	// TurnBot is a message the bot must have sent.
	TurnBot
	// TurnOpenLink opens the secure link.
	TurnOpenLink
	// TurnWait lets time pass.
	TurnWait
	// TurnHandBack has an agent hand the chat back to the bot.
	TurnHandBack
	// TurnExpect checks the conversation's state.
	TurnExpect
)

// Turn is one line of a test's conversation.
type Turn struct {
	Kind TurnKind
	Pos  Pos
	// Key is the turn's key as written: user, bot, sms, open_link...
	Key string
	// Index is the turn's place in the conversation, from 0.
	Index int

	// Text is the patient's message (TurnUser).
	Text string
	// Channel is the patient's channel ("" for automatic) or the channel
	// the bot line must be on.
	Channel engine.Channel
	// Payload is a quick-reply payload the patient tapped.
	Payload string

	// Want is the bot line's text (TurnBot).
	Want *Matcher
	// Buttons are the quick-reply titles the bot line must offer; nil when
	// the test does not check them.
	Buttons []string

	// Answer is typed into the identity check; Pass says whether the
	// check must accept it (TurnOpenLink).
	Answer string
	Pass   bool

	Wait   time.Duration
	Expect *Expect

	node *yaml.Node
}

// Matcher is an expected text: exact, or a /regular expression/.
type Matcher struct {
	Text string
	Re   *regexp.Regexp
}

// Match reports whether s is the expected text.
func (m *Matcher) Match(s string) bool {
	if m.Re != nil {
		return m.Re.MatchString(s)
	}
	return m.Text == s
}

// String returns the matcher as written.
func (m *Matcher) String() string {
	if m.Re != nil {
		return "/" + m.Re.String() + "/"
	}
	return m.Text
}

// Expect lists checks of a conversation's state; nil fields are not checked.
type Expect struct {
	Pos        Pos
	Vars       []*VarExpect
	Step       *string
	Ended      *bool
	HandedOff  *bool
	Queue      *string
	LinkIssued *bool
	Secure     *string
	Language   *string
	OptedOut   *bool

	pos map[string]Pos // where each check is written
}

// VarExpect is the expected value of a variable.
type VarExpect struct {
	Name string
	// Want is nil when the variable must not be set.
	Want *Matcher
	Pos  Pos
}

// Problem is a mistake in a test file, which stops the tests from running.
type Problem struct {
	Pos Pos
	Msg string
}

// Problems is a list of mistakes in test files.
type Problems []Problem

// Error lists the problems, one per line.
func (p Problems) Error() string {
	lines := make([]string, len(p))
	for i, pr := range p {
		lines[i] = pr.Pos.String() + ": " + pr.Msg
	}
	return strings.Join(lines, "\n")
}

var (
	fileKeys   = []string{"flow", "now", "channel", "language", "start", "vars", "tests"}
	testKeys   = []string{"name", "channel", "language", "now", "start", "vars", "conversation", "expect"}
	startKeys  = []string{"step", "vars"}
	turnKeys   = []string{"user", "bot", "sms", "messenger", "secure", "open_link", "wait", "handback", "expect"}
	userKeys   = []string{"text", "channel", "payload"}
	botKeys    = []string{"text", "buttons"}
	openKeys   = []string{"answer", "pass"}
	expectKeys = []string{"vars", "step", "ended", "handed_off", "queue", "link_issued", "secure", "language", "opted_out"}
)

// parser reads one test file, collecting problems.
type parser struct {
	file     string
	problems Problems
}

func (p *parser) pos(n *yaml.Node) Pos { return Pos{File: p.file, Line: n.Line, Col: n.Column} }

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.problems = append(p.problems, Problem{Pos: p.pos(n), Msg: fmt.Sprintf(format, args...)})
}

// defaults are the settings at the top of a file, which every test takes
// unless it sets its own.
type defaults struct {
	channel  engine.Channel
	language string
	now      time.Time
	start    *Start
	startSet bool
	vars     []*VarValue
}

// ParseFile reads a conversation test file. Mistakes are returned as
// Problems, each with its line and column.
func ParseFile(path string, src []byte) (*File, error) {
	p := &parser{file: path}
	f := p.parse(src)
	if len(p.problems) > 0 {
		return nil, p.problems
	}
	return f, nil
}

func (p *parser) parse(src []byte) *File {
	f := &File{Path: p.file, Src: src}
	if len(src) > MaxFileSize {
		p.problems = append(p.problems, Problem{Pos: Pos{File: p.file}, Msg: fmt.Sprintf(
			"the file is larger than %d KB; split it into several test files", MaxFileSize>>10)})
		return f
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		p.problems = append(p.problems, Problem{Pos: Pos{File: p.file, Line: 1, Col: 1},
			Msg: "the file is empty; it needs `flow:` and `tests:`"})
		return f
	} else if err != nil {
		p.problems = append(p.problems, yamlProblem(p.file, err))
		return f
	}
	f.doc = &doc
	if len(doc.Content) == 0 {
		p.problems = append(p.problems, Problem{Pos: Pos{File: p.file, Line: 1, Col: 1},
			Msg: "the file is empty; it needs `flow:` and `tests:`"})
		return f
	}
	root := doc.Content[0]
	if !p.noAliases(root) {
		return f
	}
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "a test file is a mapping with `flow:` and `tests:`, not %s", kindName(root))
		return f
	}
	d := defaults{channel: engine.SMS, now: DefaultNow}
	var tests *yaml.Node
	for _, kv := range p.fields(root, "the test file", fileKeys) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "flow":
			f.Flow, f.FlowPos = p.str(v), p.pos(v)
		case "now":
			d.now = p.clock(v)
		case "channel":
			d.channel = p.channel(v)
		case "language":
			d.language = p.str(v)
		case "start":
			d.start, d.startSet = p.start(v), true
		case "vars":
			d.vars = p.vars(v)
		case "tests":
			tests = v
		}
	}
	if f.Flow == "" && !p.has(root, "flow") {
		p.errorf(root, "the file needs `flow:`, the id of the flow these tests run (for example `flow: new-patient-intake`)")
	}
	if tests == nil {
		p.errorf(root, "the file needs `tests:`, a list of conversations")
		return f
	}
	if tests.Kind != yaml.SequenceNode {
		p.errorf(tests, "`tests:` is a list of conversations, each starting with `- name:`")
		return f
	}
	if len(tests.Content) == 0 {
		p.errorf(tests, "`tests:` is empty; add at least one conversation")
	}
	names := map[string]Pos{}
	for _, n := range tests.Content {
		t := p.test(n, d)
		if t == nil {
			continue
		}
		if prev, ok := names[t.Name]; ok && t.Name != "" {
			p.errorf(n, "two tests are named %q (the other is on line %d); give each test its own name", t.Name, prev.Line)
		}
		names[t.Name] = t.Pos
		f.Tests = append(f.Tests, t)
	}
	return f
}

// yamlProblem places a YAML syntax error, whose text reads "yaml: line N: ...".
func yamlProblem(file string, err error) Problem {
	msg := err.Error()
	line := 1
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line, msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return Problem{Pos: Pos{File: file, Line: line, Col: 1}, Msg: "this is not valid YAML: " + msg}
}

func (p *parser) noAliases(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		p.errorf(n, "anchors and aliases (& and *) are not supported in test files; write each value out")
		return false
	}
	for _, c := range n.Content {
		if !p.noAliases(c) {
			return false
		}
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return "a single value"
	}
	return "something else"
}

// fields returns the key/value pairs of a mapping, reporting unknown and
// repeated keys with a suggestion.
func (p *parser) fields(n *yaml.Node, what string, known []string) [][2]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s should be a mapping (key: value lines), not %s", what, kindName(n))
		return nil
	}
	var out [][2]*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(known, k.Value) {
			msg := fmt.Sprintf("%s has an unknown key `%s`", what, k.Value)
			if s := suggest(k.Value, known); s != "" {
				msg += fmt.Sprintf("; did you mean `%s`?", s)
			} else {
				msg += "; the keys allowed here are " + keyList(known)
			}
			p.errorf(k, "%s", msg)
			continue
		}
		if seen[k.Value] {
			p.errorf(k, "`%s` is written twice in %s; keep one", k.Value, what)
			continue
		}
		seen[k.Value] = true
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

func (p *parser) has(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

func keyList(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = "`" + k + "`"
	}
	return strings.Join(q, ", ")
}

// suggest returns the candidate closest to s when it is a likely typo.
func suggest(s string, candidates []string) string {
	best, bestDist := "", 1<<30
	for _, c := range candidates {
		if d := levenshtein.ComputeDistance(strings.ToLower(s), c); d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := 2
	switch {
	case len(s) <= 3:
		limit = 1
	case len(s) > 8:
		limit = 3
	}
	if bestDist <= limit && bestDist < len(s) {
		return best
	}
	return ""
}

// str reads a single value.
func (p *parser) str(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "expected a single value here, not %s", kindName(n))
		return ""
	}
	return n.Value
}

func (p *parser) boolean(n *yaml.Node) bool {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		return n.Value == "true"
	}
	p.errorf(n, "expected true or false here, not %q", n.Value)
	return false
}

func (p *parser) channel(n *yaml.Node) engine.Channel {
	s := p.str(n)
	switch c := engine.Channel(strings.ToLower(s)); c {
	case engine.SMS, engine.Messenger:
		return c
	}
	if s != "" {
		p.errorf(n, "the channel %q is not known; write sms or messenger", s)
	}
	return engine.SMS
}

// clock reads `now:` as a date and time with its zone offset.
func (p *parser) clock(n *yaml.Node) time.Time {
	s := p.str(n)
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	if s != "" {
		p.errorf(n, "`now:` should be a date and time such as 2026-11-30T09:00:00-05:00, not %q", s)
	}
	return DefaultNow
}

// start reads `start:` as true or false, a step id, or {step, vars}.
func (p *parser) start(n *yaml.Node) *Start {
	s := &Start{Pos: p.pos(n)}
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!bool":
		if n.Value != "true" {
			return nil
		}
		return s
	case n.Kind == yaml.ScalarNode && n.Tag != "!!null":
		s.Step, s.StepPos = n.Value, p.pos(n)
		return s
	case n.Kind == yaml.MappingNode:
		for _, kv := range p.fields(n, "`start:`", startKeys) {
			switch kv[0].Value {
			case "step":
				s.Step, s.StepPos = p.str(kv[1]), p.pos(kv[1])
			case "vars":
				s.Vars = p.vars(kv[1])
			}
		}
		return s
	}
	p.errorf(n, "`start:` is true (the clinic starts the flow), a step id, or { step: ..., vars: {...} }")
	return nil
}

// vars reads a mapping of variable names to values.
func (p *parser) vars(n *yaml.Node) []*VarValue {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "`vars:` should list variables as name: value, not %s", kindName(n))
		return nil
	}
	var out []*VarValue
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			p.errorf(v, "the variable `%s` needs a single value, not %s", k.Value, kindName(v))
			continue
		}
		out = append(out, &VarValue{Name: k.Value, Value: v.Value, Pos: p.pos(v), NamePos: p.pos(k)})
	}
	return out
}

// mergeVars returns base with over's values replacing those of the same name.
func mergeVars(base, over []*VarValue) []*VarValue {
	out := slices.Clone(base)
	for _, v := range over {
		i := slices.IndexFunc(out, func(b *VarValue) bool { return b.Name == v.Name })
		if i >= 0 {
			out[i] = v
		} else {
			out = append(out, v)
		}
	}
	return out
}

func (p *parser) test(n *yaml.Node, d defaults) *Test {
	t := &Test{Pos: p.pos(n), Channel: d.channel, Language: d.language, Now: d.now}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "each test is a mapping that starts with `name:`, not %s", kindName(n))
		return nil
	}
	start, startSet := d.start, d.startSet
	var vars []*VarValue
	var varsPos *yaml.Node
	for _, kv := range p.fields(n, "a test", testKeys) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "name":
			t.Name = strings.TrimSpace(p.str(v))
		case "channel":
			t.Channel = p.channel(v)
		case "language":
			t.Language = p.str(v)
		case "now":
			t.Now = p.clock(v)
		case "start":
			start, startSet = p.start(v), true
		case "vars":
			vars, varsPos = p.vars(v), v
		case "conversation":
			t.convNode = v
			t.Turns = p.turns(v, t)
		case "expect":
			t.Expect = p.expect(v)
		}
	}
	if t.Name == "" {
		p.errorf(n, "this test needs a `name:` that says what it checks")
	}
	// Giving vars means the clinic starts the flow, unless the test says
	// otherwise with `start: false`.
	if start == nil && varsPos != nil {
		if startSet {
			p.errorf(varsPos, "`vars:` are the values the clinic gives when it starts the flow, but this test has `start: false`")
		} else {
			start = &Start{Pos: p.pos(varsPos)}
		}
	}
	if start != nil {
		s := *start
		s.Vars = mergeVars(mergeVars(d.vars, vars), start.Vars)
		t.Start = &s
	}
	if t.convNode == nil && t.Expect == nil {
		p.errorf(n, "this test has neither `conversation:` nor `expect:`; add the messages to check")
	}
	if t.Start == nil && len(t.Turns) > 0 && t.Turns[0].Kind != TurnUser {
		p.errorf(t.Turns[0].node, "the conversation starts with the patient's message (`- user: ...`), "+
			"unless the clinic starts the flow: then add `start: true` or the clinic's `vars:`")
	}
	return t
}

func (p *parser) turns(n *yaml.Node, t *Test) []*Turn {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "`conversation:` is a list of turns such as `- user: yes` and `- bot: \"Hi!\"`")
		return nil
	}
	var out []*Turn
	for i, item := range n.Content {
		if item.Kind != yaml.MappingNode || len(item.Content) != 2 {
			if item.Kind == yaml.MappingNode && len(item.Content) > 2 {
				p.errorf(item.Content[2], "each turn has one key; start a new line with `- ` for the next turn")
			} else {
				p.errorf(item, "each turn is one line such as `- user: yes` or `- bot: \"Hi!\"`")
			}
			continue
		}
		k, v := item.Content[0], item.Content[1]
		turn := &Turn{Pos: p.pos(k), Key: k.Value, Index: i, node: item}
		switch k.Value {
		case "user":
			turn.Kind = TurnUser
			p.user(v, turn, t)
		case "bot", "sms", "messenger", "secure":
			turn.Kind = TurnBot
			turn.Channel = t.Channel
			if k.Value != "bot" {
				turn.Channel = engine.Channel(k.Value)
			}
			p.bot(v, turn)
		case "open_link":
			turn.Kind = TurnOpenLink
			p.openLink(v, turn)
		case "wait":
			turn.Kind = TurnWait
			turn.Wait = p.duration(v)
		case "handback":
			turn.Kind = TurnHandBack
			if !p.boolean(v) {
				p.errorf(v, "write `- handback: true`, or leave the line out")
			}
		case "expect":
			turn.Kind = TurnExpect
			turn.Expect = p.expect(v)
		default:
			msg := fmt.Sprintf("unknown turn `%s`", k.Value)
			if s := suggest(k.Value, turnKeys); s != "" {
				msg += fmt.Sprintf("; did you mean `%s`?", s)
			} else {
				msg += "; a turn is one of " + keyList(turnKeys)
			}
			p.errorf(k, "%s", msg)
			continue
		}
		if turn.Kind == TurnBot && turn.Channel == engine.Messenger && t.Channel == engine.SMS ||
			turn.Kind == TurnBot && turn.Channel == engine.SMS && t.Channel == engine.Messenger {
			p.errorf(k, "this test runs on %s, so the bot cannot write on %s; use `bot:` or `secure:`", t.Channel, turn.Channel)
		}
		out = append(out, turn)
	}
	return out
}

func (p *parser) user(v *yaml.Node, turn *Turn, t *Test) {
	if v.Kind == yaml.ScalarNode {
		turn.Text = p.text(v)
		return
	}
	for _, kv := range p.fields(v, "`user:`", userKeys) {
		switch kv[0].Value {
		case "text":
			turn.Text = p.text(kv[1])
		case "payload":
			turn.Payload = p.str(kv[1])
		case "channel":
			s := p.str(kv[1])
			switch c := engine.Channel(strings.ToLower(s)); {
			case c == engine.Secure || c == t.Channel:
				turn.Channel = c
			case c == engine.SMS || c == engine.Messenger:
				p.errorf(kv[1], "this test runs on %s; the patient can write on %s or on the secure page (secure)", t.Channel, t.Channel)
			default:
				p.errorf(kv[1], "the channel %q is not known; write %s or secure", s, t.Channel)
			}
		}
	}
}

// text reads a message; an empty message is allowed (`user: ""`).
func (p *parser) text(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "expected the text of a message here, not %s", kindName(n))
		return ""
	}
	if n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

func (p *parser) bot(v *yaml.Node, turn *Turn) {
	if v.Kind == yaml.ScalarNode {
		turn.Want = p.matcher(v)
		return
	}
	for _, kv := range p.fields(v, "a bot line", botKeys) {
		switch kv[0].Value {
		case "text":
			turn.Want = p.matcher(kv[1])
		case "buttons":
			if kv[1].Kind != yaml.SequenceNode {
				p.errorf(kv[1], "`buttons:` lists the titles of the quick replies, such as [Monday, Tuesday]")
				continue
			}
			turn.Buttons = []string{}
			for _, b := range kv[1].Content {
				turn.Buttons = append(turn.Buttons, p.str(b))
			}
		}
	}
	if turn.Want == nil {
		p.errorf(v, "a bot line with buttons also needs `text:`")
	}
}

// matcher reads an expected text: /regexp/ or the exact text.
func (p *parser) matcher(n *yaml.Node) *Matcher {
	s := p.text(n)
	if len(s) >= 2 && strings.HasPrefix(s, "/") && strings.HasSuffix(s, "/") {
		re, err := regexp.Compile(s[1 : len(s)-1])
		if err != nil {
			p.errorf(n, "this pattern between / / is not a valid regular expression: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			return &Matcher{Text: s}
		}
		return &Matcher{Re: re}
	}
	return &Matcher{Text: s}
}

func (p *parser) openLink(v *yaml.Node, turn *Turn) {
	turn.Pass = true
	switch {
	case v.Kind == yaml.ScalarNode && v.Tag == "!!bool":
		if v.Value != "true" {
			p.errorf(v, "write `- open_link: true`, or the answer to the identity check")
		}
	case v.Kind == yaml.ScalarNode:
		turn.Answer = p.text(v)
	default:
		for _, kv := range p.fields(v, "`open_link:`", openKeys) {
			switch kv[0].Value {
			case "answer":
				turn.Answer = p.text(kv[1])
			case "pass":
				turn.Pass = p.boolean(kv[1])
			}
		}
	}
}

// duration reads a length of time: 90s, 15m, 2h, 2d, 1d12h.
func (p *parser) duration(n *yaml.Node) time.Duration {
	s := p.str(n)
	d, err := ParseDuration(s)
	if err != nil && s != "" {
		p.errorf(n, "`wait:` needs a length of time such as 30m, 2h or 2d, not %q", s)
	}
	return d
}

// ParseDuration reads a length of time written with s, m, h and d (days).
func ParseDuration(s string) (time.Duration, error) {
	days := time.Duration(0)
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, fmt.Errorf("bad number of days in %q", s)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d+days <= 0 {
		return 0, fmt.Errorf("%q is not a length of time", s)
	}
	return d + days, nil
}

func (p *parser) expect(n *yaml.Node) *Expect {
	e := &Expect{Pos: p.pos(n), pos: map[string]Pos{}}
	for _, kv := range p.fields(n, "`expect:`", expectKeys) {
		k, v := kv[0], kv[1]
		e.pos[k.Value] = p.pos(v)
		switch k.Value {
		case "vars":
			if v.Kind != yaml.MappingNode {
				p.errorf(v, "`vars:` lists variables as name: value")
				continue
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				vk, vv := v.Content[i], v.Content[i+1]
				ve := &VarExpect{Name: vk.Value, Pos: p.pos(vk)}
				switch {
				case vv.Kind == yaml.ScalarNode && vv.Tag == "!!null":
				case vv.Kind == yaml.ScalarNode:
					ve.Want = p.matcher(vv)
				default:
					p.errorf(vv, "the variable `%s` needs a single value (or null: not set), not %s", vk.Value, kindName(vv))
				}
				e.Vars = append(e.Vars, ve)
			}
		case "step":
			s := p.str(v)
			e.Step = &s
		case "queue":
			s := p.str(v)
			e.Queue = &s
		case "language":
			s := p.str(v)
			e.Language = &s
		case "secure":
			s := p.str(v)
			switch s {
			case "none", "pending", "open":
			default:
				p.errorf(v, "`secure:` is none, pending (link sent, page not opened) or open, not %q", s)
			}
			e.Secure = &s
		case "ended":
			b := p.boolean(v)
			e.Ended = &b
		case "handed_off":
			b := p.boolean(v)
			e.HandedOff = &b
		case "link_issued":
			b := p.boolean(v)
			e.LinkIssued = &b
		case "opted_out":
			b := p.boolean(v)
			e.OptedOut = &b
		}
	}
	return e
}
