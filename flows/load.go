package flows

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/safeflow/safeflow/flows/diag"
)

// MaxFileSize is the largest flow file safeflow reads. A flow larger than
// this is a mistake (or an attack), not a conversation.
const MaxFileSize = 1 << 20

var (
	flowIDRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	keywordRe = regexp.MustCompile(`^[\p{L}\p{N}]+$`)
	yamlLine  = regexp.MustCompile(`line (\d+)`)
)

// reader turns one file's YAML node tree into a Flow, collecting diagnostics.
type reader struct {
	file  string
	src   []byte
	diags diag.List
	// text is src as a string and lines the byte offset where each line
	// starts, built on first use by scalarPos.
	text  string
	lines []int
}

// Parse reads one flow file's bytes into a flow and checks it. The flow is
// returned even when it has errors, so that every problem can be reported;
// callers must not run a flow whose list has errors.
func Parse(file string, src []byte) (*Flow, diag.List) {
	r := &reader{file: file, src: src}
	f := r.read()
	if f != nil {
		c := newCompiler(f, r)
		c.compile()
		check(f, &r.diags)
	}
	return f, r.diags.Sort()
}

func (r *reader) pos(n *yaml.Node) Pos { return Pos{File: r.file, Line: n.Line, Col: n.Column} }

func (r *reader) errorf(n *yaml.Node, code diag.Code, hint, format string, args ...any) {
	p := Pos{File: r.file}
	if n != nil {
		p = r.pos(n)
	}
	r.diags.Add(p, code, hint, format, args...)
}

func (r *reader) read() *Flow {
	if len(r.src) > MaxFileSize {
		r.errorf(nil, diag.FileTooLarge, "Split the flow into smaller flows.",
			"the file is larger than %d KB, the most a flow file may hold", MaxFileSize/1024)
		return nil
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(r.src))
	if err := dec.Decode(&doc); err != nil {
		r.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		r.errorf(&extra, diag.YAMLSyntax, "Put each flow in its own file.", "the file holds more than one YAML document (a line with ---)")
	} else if !errors.Is(err, io.EOF) {
		r.yamlError(err)
	}
	if len(doc.Content) == 0 {
		r.errorf(nil, diag.MissingField, "Start the file with `flow: my-flow-name` and a `steps:` section.", "the file is empty")
		return nil
	}
	root := doc.Content[0]
	if !r.noAliases(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		r.errorf(root, diag.WrongType, "Start the file with `flow: my-flow-name` and a `steps:` section.", "a flow file must be a set of `key: value` lines, not %s", kindName(root))
		return nil
	}
	sum := sha256.Sum256(r.src)
	f := &Flow{File: r.file, Source: r.src, Hash: hex.EncodeToString(sum[:]), Pos: r.pos(root),
		Language: "en", byID: map[string]*Step{}}
	var stepsNode *yaml.Node
	for _, kv := range r.fields(root, "the flow", topKeys) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "flow":
			f.ID = r.str(v)
			if f.ID != "" && !flowIDRe.MatchString(f.ID) {
				r.errorf(v, diag.BadValue, "Use lower-case letters, digits and dashes, for example `new-patient-intake`.", "the flow id %q may only hold lower-case letters, digits and dashes", f.ID)
			}
		case "title":
			f.Title = r.str(v)
		case "description":
			f.Description = r.str(v)
		case "language":
			f.Language = r.str(v)
			if !isLang(f.Language) {
				r.errorf(v, diag.BadValue, "Use a language code such as `en` or `es`.", "%q is not a language code", f.Language)
			}
		case "start":
			f.Start, f.startPos = r.str(v), r.pos(v)
		case "trigger":
			f.Trigger = r.trigger(v)
		case "vars":
			f.Vars = r.vars(v)
		case "secure":
			f.Secure = r.secure(v)
		case "keywords":
			f.Keywords = r.keywords(v)
		case "steps":
			stepsNode = v
		}
	}
	if f.ID == "" {
		r.errorf(root, diag.MissingField, "Add a first line such as `flow: new-patient-intake`.", "the flow has no `flow:` id")
	}
	if stepsNode == nil {
		r.errorf(root, diag.MissingField, "Add a `steps:` section with at least one step.", "the flow has no `steps:`")
		return f
	}
	r.steps(f, stepsNode)
	if f.Start == "" && len(f.Steps) > 0 {
		f.Start, f.startPos = f.Steps[0].ID, f.Steps[0].Pos
	}
	if f.Secure.Return == "" {
		f.Secure.Return = "origin"
	}
	if f.Secure.LinkTTL == 0 {
		f.Secure.LinkTTL = 15 * time.Minute
	}
	return f
}

// yamlMessages rewords yaml.v3's commonest errors for clinic staff.
var yamlMessages = map[string]string{
	"mapping values are not allowed in this context": "a second `: ` on this line; put text that holds a colon in quotes",
	"did not find expected key":                      "a line in the block that starts here is not indented like the others",
	"did not find expected '-' indicator":            "a line in the list that starts here is not indented like its `-` entries",
	"could not find expected ':'":                    "a line has no `:` after its key",
	"found character that cannot start any token":    "a character that cannot start a value (a tab, or a stray @ or `); indent with spaces and quote such text",
}

// yamlError reports a YAML syntax error at the line yaml.v3 names. yaml.v3
// gives no column: the caret goes under the first character of the line,
// or under the offending colon when the error is a second `: `.
func (r *reader) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := Pos{File: r.file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = strings.TrimSpace(strings.Replace(msg, m[0]+":", "", 1))
		text, ok := r.line(p.Line)
		for !ok && p.Line > 1 {
			// yaml.v3 may name the line after the last one.
			p.Line--
			text, ok = r.line(p.Line)
		}
		p.Col = len(text) - len(strings.TrimLeft(text, " \t")) + 1
		if msg == "mapping values are not allowed in this context" {
			if i := secondColon(text); i >= 0 {
				p.Col = runeCount(text[:i]) + 1
			}
		}
	}
	if friendly, ok := yamlMessages[msg]; ok {
		msg = friendly + " (" + msg + ")"
	}
	r.diags.Add(p, diag.YAMLSyntax, "Check the indentation and that every `key:` is followed by a space; put text with a colon or # in quotes.",
		"the file is not valid YAML: %s", msg)
}

// secondColon returns the byte index of the second mapping colon (a colon
// followed by a space or the end of the line) of a line, or -1.
func secondColon(line string) int {
	seen := 0
	for i := 0; i < len(line); i++ {
		if line[i] == ':' && (i+1 == len(line) || line[i+1] == ' ') {
			if seen++; seen == 2 {
				return i
			}
		}
	}
	return -1
}

// noAliases rejects anchors and aliases: they make a flow hard for staff to
// read, and expanding them can blow up in size.
func (r *reader) noAliases(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		r.errorf(n, diag.BadValue, "Write the text out in full instead of using & and *.", "anchors and aliases (& and *) are not supported in flow files")
		return false
	}
	for _, c := range n.Content {
		if !r.noAliases(c) {
			return false
		}
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a set of `key: value` lines"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

var (
	topKeys      = []string{"flow", "title", "description", "language", "start", "trigger", "vars", "secure", "keywords", "steps"}
	triggerKeys  = []string{"keywords", "default"}
	varKeys      = []string{"type", "sensitive"}
	secureKeys   = []string{"link_message", "link_ttl", "verify", "return"}
	verifyKeys   = []string{"prompt", "equals"}
	keywordKeys  = []string{"say", "goto", "handoff", "end"}
	stepKeys     = []string{"say", "ask", "set", "next", "sensitive", "handoff", "wait", "end", "note"}
	askKeys      = []string{"prompt", "type", "save", "choices", "pattern", "min", "max", "retry", "attempts", "on_fail", "timeout", "reminder", "remind_after", "on_timeout"}
	choiceKeys   = []string{"value", "label", "synonyms"}
	routeKeys    = []string{"when", "goto"}
	returnValues = []string{"origin", "stay"}
)

// fields checks that n is a mapping with only known keys and no key twice,
// and returns its key/value pairs. what names the mapping for messages.
func (r *reader) fields(n *yaml.Node, what string, known []string) [][2]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		r.errorf(n, diag.WrongType, fmt.Sprintf("Write %s as `key: value` lines, indented under it.", what), "%s should be a set of `key: value` lines, not %s", what, kindName(n))
		return nil
	}
	out := make([][2]*yaml.Node, 0, len(n.Content)/2)
	// Most mappings have a handful of keys: look back over them instead of
	// building a map for each.
	var seen map[string]bool
	if len(n.Content) > 32 {
		seen = make(map[string]bool, len(n.Content)/2)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		dup := seen[k.Value]
		if seen == nil {
			for j := 0; j < i && !dup; j += 2 {
				dup = n.Content[j].Value == k.Value
			}
		}
		if dup {
			r.errorf(k, diag.DuplicateKey, "Remove one of them, or merge them into one.", "`%s` is written twice in %s", k.Value, what)
			continue
		}
		if seen != nil {
			seen[k.Value] = true
		}
		if known != nil && !contains(known, k.Value) {
			hint := "Remove it, or check the spelling. Keys allowed here: " + strings.Join(known, ", ") + "."
			if s := suggest(k.Value, known); s != "" {
				r.errorf(k, diag.UnknownKey, fmt.Sprintf("Write `%s:` instead.", s), "`%s` is not a key safeflow knows in %s. Did you mean `%s`?", k.Value, what, s)
				continue
			}
			r.errorf(k, diag.UnknownKey, hint, "`%s` is not a key safeflow knows in %s", k.Value, what)
			continue
		}
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r *reader) str(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		r.errorf(n, diag.WrongType, "Write a single piece of text here.", "expected text, found %s", kindName(n))
		return ""
	}
	return n.Value
}

func (r *reader) boolean(n *yaml.Node) bool {
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "true", "yes", "True", "Yes", "TRUE":
			return true
		case "false", "no", "False", "No", "FALSE":
			return false
		}
	}
	r.errorf(n, diag.WrongType, "Write `true` or `false`.", "expected true or false, found %s", kindName(n))
	return false
}

func (r *reader) integer(n *yaml.Node) (int, bool) {
	if n.Kind == yaml.ScalarNode {
		if v, err := strconv.Atoi(n.Value); err == nil {
			return v, true
		}
	}
	r.errorf(n, diag.WrongType, "Write a whole number such as 3.", "expected a whole number, found %s", kindName(n))
	return 0, false
}

func (r *reader) number(n *yaml.Node) *float64 {
	if n.Kind == yaml.ScalarNode {
		if v, err := strconv.ParseFloat(n.Value, 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			return &v
		}
	}
	r.errorf(n, diag.WrongType, "Write a number such as 18 or 2.5.", "expected a number, found %s", kindName(n))
	return nil
}

// duration reads a Go duration, also accepting days ("2d").
func (r *reader) duration(n *yaml.Node) time.Duration {
	s := r.str(n)
	if s == "" {
		return 0
	}
	d, err := parseDuration(s)
	if err != nil || d <= 0 {
		r.errorf(n, diag.BadValue, "Write a length of time such as 30s, 15m, 4h or 2d.", "%q is not a length of time", s)
		return 0
	}
	return d
}

func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// name reads a variable name.
func (r *reader) name(n *yaml.Node) string {
	s := r.str(n)
	if s == "" {
		return ""
	}
	if !isName(s) {
		r.errorf(n, diag.BadValue, "Use letters, digits and underscores, starting with a letter, for example `first_name`.", "%q is not a valid variable name", s)
		return ""
	}
	if reservedNames[s] {
		r.errorf(n, diag.ReservedName, "Choose another name, for example `my_"+s+"`.", "`%s` is a reserved name in expressions and cannot be used for a variable", s)
		return ""
	}
	return s
}

func (r *reader) trigger(n *yaml.Node) Trigger {
	t := Trigger{Pos: r.pos(n)}
	for _, kv := range r.fields(n, "trigger", triggerKeys) {
		switch kv[0].Value {
		case "keywords":
			t.Keywords, t.wordPos = r.words(kv[1])
		case "default":
			t.Default = r.boolean(kv[1])
		}
	}
	return t
}

// words reads a list of keywords, upper-cased.
func (r *reader) words(n *yaml.Node) ([]string, []Pos) {
	if n.Kind != yaml.SequenceNode {
		r.errorf(n, diag.WrongType, "Write the keywords as a list, for example `[INTAKE, NEW]`.", "expected a list of keywords, found %s", kindName(n))
		return nil, nil
	}
	var out []string
	var pos []Pos
	for _, c := range n.Content {
		w := r.keyword(c)
		if w != "" {
			out = append(out, w)
			pos = append(pos, r.pos(c))
		}
	}
	return out, pos
}

func (r *reader) keyword(n *yaml.Node) string {
	w := strings.ToUpper(strings.TrimSpace(r.str(n)))
	if w == "" {
		return ""
	}
	if !keywordRe.MatchString(w) {
		r.errorf(n, diag.BadValue, "A keyword is one word of letters or digits, such as INTAKE.", "%q is not a single word", w)
		return ""
	}
	return w
}

func (r *reader) vars(n *yaml.Node) []*VarDecl {
	var out []*VarDecl
	for _, kv := range r.fields(n, "vars", nil) {
		d := &VarDecl{Name: r.name(kv[0]), Pos: r.pos(kv[0])}
		if d.Name == "" {
			continue
		}
		v := kv[1]
		if v.Kind == yaml.ScalarNode {
			d.Type = r.inputType(v)
		} else {
			for _, f := range r.fields(v, "variable `"+d.Name+"`", varKeys) {
				switch f[0].Value {
				case "type":
					d.Type = r.inputType(f[1])
				case "sensitive":
					d.Sensitive = r.boolean(f[1])
				}
			}
			if d.Type == "" {
				r.errorf(v, diag.MissingField, "Add `type: text` (or date, number...).", "variable `%s` has no type", d.Name)
			}
		}
		out = append(out, d)
	}
	return out
}

func (r *reader) inputType(n *yaml.Node) string {
	t := r.str(n)
	if t == "" {
		return ""
	}
	if _, ok := inputTypes[t]; !ok {
		known := InputTypes()
		if s := suggest(t, known); s != "" {
			r.errorf(n, diag.BadValue, fmt.Sprintf("Write `%s` instead.", s), "%q is not an answer type. Did you mean `%s`?", t, s)
		} else {
			r.errorf(n, diag.BadValue, "Use one of: "+strings.Join(known, ", ")+".", "%q is not an answer type", t)
		}
		return ""
	}
	return t
}

func (r *reader) secure(n *yaml.Node) Secure {
	s := Secure{Pos: r.pos(n)}
	for _, kv := range r.fields(n, "secure", secureKeys) {
		switch kv[0].Value {
		case "link_message":
			s.LinkMessage = r.message(kv[1])
		case "link_ttl":
			s.LinkTTL = r.duration(kv[1])
		case "verify":
			s.Verify = &Verify{Pos: r.pos(kv[1])}
			for _, f := range r.fields(kv[1], "verify", verifyKeys) {
				switch f[0].Value {
				case "prompt":
					s.Verify.Prompt = r.message(f[1])
				case "equals":
					s.Verify.Equals = r.expr(f[1])
				}
			}
			if s.Verify.Prompt == nil || s.Verify.Equals == nil {
				r.errorf(kv[1], diag.MissingField, "Give both `prompt:` (the question) and `equals:` (the variable the answer must match).", "verify needs both `prompt` and `equals`")
			}
		case "return":
			s.Return = r.str(kv[1])
			if s.Return != "" && !contains(returnValues, s.Return) {
				r.errorf(kv[1], diag.BadValue, "Write `origin` (back to SMS or Messenger) or `stay` (stay on the secure page).", "%q is not a valid return", s.Return)
			}
		}
	}
	return s
}

func (r *reader) keywords(n *yaml.Node) []*Keyword {
	var out []*Keyword
	for _, kv := range r.fields(n, "keywords", nil) {
		k := &Keyword{Word: r.keyword(kv[0]), Pos: r.pos(kv[0])}
		if k.Word == "" {
			continue
		}
		v := kv[1]
		if v.Kind == yaml.ScalarNode || isLanguageMap(v) {
			k.Say = []*Message{r.message(v)}
		} else {
			for _, f := range r.fields(v, "keyword "+k.Word, keywordKeys) {
				switch f[0].Value {
				case "say":
					k.Say = r.messages(f[1])
				case "goto":
					k.Goto, k.gotoPos = r.str(f[1]), r.pos(f[1])
				case "handoff":
					k.Handoff = r.str(f[1])
				case "end":
					k.End = r.boolean(f[1])
				}
			}
		}
		if k.Say == nil && k.Goto == "" && k.Handoff == "" && !k.End {
			r.errorf(kv[0], diag.MissingField, "Add `say:`, `goto:`, `handoff:` or `end: true`.", "keyword %s does nothing", k.Word)
		}
		out = append(out, k)
	}
	return out
}

func (r *reader) steps(f *Flow, n *yaml.Node) {
	pairs := r.fields(n, "steps", nil)
	if n.Kind == yaml.MappingNode && len(pairs) == 0 {
		r.errorf(n, diag.MissingField, "Add at least one step under `steps:`.", "the flow has no steps")
	}
	for _, kv := range pairs {
		id := kv[0].Value
		if !isStepName(id) {
			r.errorf(kv[0], diag.BadValue, "Use letters, digits, dashes and underscores, for example `ask-name`.", "%q is not a valid step name", id)
			continue
		}
		s := r.step(id, kv[0], kv[1])
		s.Index = len(f.Steps)
		f.Steps = append(f.Steps, s)
		f.byID[id] = s
	}
}

func (r *reader) step(id string, k, n *yaml.Node) *Step {
	s := &Step{ID: id, Pos: r.pos(k)}
	what := "step `" + id + "`"
	for _, kv := range r.fields(n, what, stepKeys) {
		v := kv[1]
		switch kv[0].Value {
		case "say":
			s.Say = r.messages(v)
		case "ask":
			s.Ask = r.ask(v, what)
		case "set":
			for _, a := range r.fields(v, "set", nil) {
				name := r.name(a[0])
				if name != "" {
					s.Set = append(s.Set, &Assign{Var: name, Expr: r.expr(a[1]), Pos: r.pos(a[0])})
				}
			}
		case "next":
			s.Next = r.routes(v)
		case "sensitive":
			s.Sensitive = r.boolean(v)
		case "handoff":
			s.Handoff = r.str(v)
		case "wait":
			s.Wait = r.duration(v)
		case "end":
			s.End = r.boolean(v)
		case "note":
			r.str(v)
		}
	}
	if s.End && len(s.Next) > 0 {
		r.errorf(k, diag.ConflictingFields, "Remove `next:` or remove `end: true`.", "step `%s` has both `end: true` and `next:`", id)
	}
	if s.Ask != nil && s.Wait > 0 {
		r.errorf(k, diag.ConflictingFields, "Put the wait in a step of its own before the question.", "step `%s` has both `ask:` and `wait:`", id)
	}
	if s.Ask != nil && s.Handoff != "" {
		r.errorf(k, diag.ConflictingFields, "Put the handoff in a step of its own.", "step `%s` has both `ask:` and `handoff:`", id)
	}
	return s
}

func (r *reader) ask(n *yaml.Node, what string) *Ask {
	a := &Ask{Pos: r.pos(n), Attempts: DefaultAttempts}
	var pattern, choices, maxNode *yaml.Node
	for _, kv := range r.fields(n, "the `ask` of "+what, askKeys) {
		v := kv[1]
		switch kv[0].Value {
		case "prompt":
			a.Prompt = r.message(v)
		case "type":
			a.Type = r.inputType(v)
		case "save":
			a.Save, a.savePos = r.name(v), r.pos(v)
		case "choices":
			a.Choices, choices = r.choices(v), v
		case "pattern":
			pattern = v
			src := r.str(v)
			// Check the pattern alone first: a stray `)` would otherwise
			// close the group wrapped around it and defeat the anchors (as
			// `a)|(b` does), and the error quotes only what the author wrote.
			_, err := syntax.Parse(src, syntax.Perl)
			if err == nil {
				a.Pattern, err = regexp.Compile(`^(?:` + src + `)$`)
			}
			if err != nil {
				r.errorf(v, diag.BadValue, "Check the brackets and backslashes of the pattern.", "the pattern cannot be read: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			}
		case "min":
			a.Min = r.number(v)
		case "max":
			a.Max, maxNode = r.number(v), v
		case "retry":
			a.Retry = r.message(v)
		case "attempts":
			var ok bool
			if a.Attempts, ok = r.integer(v); ok && (a.Attempts < 1 || a.Attempts > 10) {
				r.errorf(v, diag.BadValue, "Use a number from 1 to 10.", "attempts must be from 1 to 10, not %d", a.Attempts)
			}
		case "on_fail":
			a.OnFail, a.OnFailPos = r.str(v), r.pos(v)
		case "timeout":
			a.Timeout = r.duration(v)
		case "reminder":
			a.Reminder = r.message(v)
		case "remind_after":
			a.RemindAfter = r.duration(v)
		case "on_timeout":
			a.OnTimeout, a.OnTimeoutPos = r.str(v), r.pos(v)
		}
	}
	if n.Kind != yaml.MappingNode {
		return a
	}
	if a.Prompt == nil {
		r.errorf(n, diag.MissingField, "Add `prompt:` with the question to ask.", "the `ask` of %s has no `prompt`", what)
	}
	if a.Type == "" {
		a.Type = TypeText
	}
	switch {
	case a.Type == TypeChoice && len(a.Choices) == 0:
		r.errorf(n, diag.MissingField, "Add `choices:` with the answers to offer, for example `[Monday, Tuesday]`.", "a choice question needs `choices`")
	case a.Type != TypeChoice && a.Choices != nil:
		r.errorf(choices, diag.ConflictingFields, "Write `type: choice`, or remove `choices:`.", "`choices` only work with `type: choice`, but the type is %s", a.Type)
	case a.Type == TypePattern && pattern == nil:
		r.errorf(n, diag.MissingField, "Add `pattern:` with the form the answer must have.", "a pattern question needs `pattern`")
	case a.Type != TypePattern && pattern != nil:
		r.errorf(pattern, diag.ConflictingFields, "Write `type: pattern`, or remove `pattern:`.", "`pattern` only works with `type: pattern`, but the type is %s", a.Type)
	}
	if (a.Min != nil || a.Max != nil) && a.Type != TypeNumber && a.Type != TypeInteger && a.Type != TypeText {
		r.errorf(n, diag.ConflictingFields, "Remove `min:` and `max:`; they only apply to number, integer and text answers.", "`min` and `max` do not apply to %s answers", a.Type)
	}
	if a.Min != nil && a.Max != nil && *a.Min > *a.Max {
		r.errorf(maxNode, diag.BadValue, "Swap the two numbers.", "min (%v) is larger than max (%v)", *a.Min, *a.Max)
	}
	if a.Timeout == 0 && (a.Reminder != nil || a.OnTimeout != "" || a.RemindAfter != 0) {
		r.errorf(n, diag.MissingField, "Add `timeout:`, for example `timeout: 24h`.", "`reminder`, `remind_after` and `on_timeout` need a `timeout`")
	}
	if a.Timeout > 0 && a.RemindAfter == 0 {
		a.RemindAfter = a.Timeout / 2
	}
	if a.Timeout > 0 && a.RemindAfter >= a.Timeout {
		r.errorf(n, diag.BadValue, "Make `remind_after` shorter than `timeout`.", "the reminder would come after the question has timed out")
	}
	return a
}

func (r *reader) choices(n *yaml.Node) []*Choice {
	if n.Kind != yaml.SequenceNode {
		r.errorf(n, diag.WrongType, "Write the choices as a list, for example `[Monday, Tuesday]`.", "expected a list of choices, found %s", kindName(n))
		return nil
	}
	out := []*Choice{}
	for _, c := range n.Content {
		ch := &Choice{Pos: r.pos(c)}
		if c.Kind == yaml.ScalarNode {
			ch.Value = r.str(c)
		} else {
			for _, kv := range r.fields(c, "a choice", choiceKeys) {
				switch kv[0].Value {
				case "value":
					ch.Value = r.str(kv[1])
				case "label":
					ch.Label = r.message(kv[1])
				case "synonyms":
					if kv[1].Kind != yaml.SequenceNode {
						r.errorf(kv[1], diag.WrongType, "Write synonyms as a list, for example `[weds, wed]`.", "expected a list of synonyms, found %s", kindName(kv[1]))
						continue
					}
					for _, s := range kv[1].Content {
						ch.Synonyms = append(ch.Synonyms, r.str(s))
					}
				}
			}
			if ch.Value == "" && c.Kind == yaml.MappingNode {
				r.errorf(c, diag.MissingField, "Add `value:` (what is saved).", "a choice has no `value`")
			}
		}
		if ch.Label == nil && ch.Value != "" {
			ch.Label = &Message{Pos: ch.Pos, Text: map[string]*Template{"": {Source: ch.Value, Parts: []Part{{Lit: ch.Value}}, Pos: ch.Pos}}}
		}
		out = append(out, ch)
	}
	return out
}

func (r *reader) routes(n *yaml.Node) []*Route {
	if n.Kind == yaml.ScalarNode {
		return []*Route{{Goto: r.str(n), Pos: r.pos(n), gotoPos: r.pos(n)}}
	}
	if n.Kind != yaml.SequenceNode {
		r.errorf(n, diag.WrongType, "Write a step name, or a list of `- when: ...` / `goto: ...` entries.", "`next` should be a step name or a list, not %s", kindName(n))
		return nil
	}
	var out []*Route
	for _, c := range n.Content {
		rt := &Route{Pos: r.pos(c)}
		for _, kv := range r.fields(c, "a `next` entry", routeKeys) {
			switch kv[0].Value {
			case "when":
				rt.When = r.expr(kv[1])
			case "goto":
				rt.Goto, rt.gotoPos = r.str(kv[1]), r.pos(kv[1])
			}
		}
		if c.Kind == yaml.MappingNode && rt.Goto == "" {
			r.errorf(c, diag.MissingField, "Add `goto:` with the step to go to.", "a `next` entry has no `goto`")
		}
		out = append(out, rt)
	}
	return out
}

// messages reads one message or a list of them.
func (r *reader) messages(n *yaml.Node) []*Message {
	if n.Kind == yaml.SequenceNode {
		out := make([]*Message, 0, len(n.Content))
		for _, c := range n.Content {
			if m := r.message(c); m != nil {
				out = append(out, m)
			}
		}
		return out
	}
	if m := r.message(n); m != nil {
		return []*Message{m}
	}
	return nil
}

// message reads a text, or a map from language code to text. Texts in a
// single language are stored under the empty language "".
func (r *reader) message(n *yaml.Node) *Message {
	m := &Message{Pos: r.pos(n), Text: map[string]*Template{}}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			r.errorf(n, diag.WrongType, "Write the text after the colon.", "the message is empty")
			return nil
		}
		m.Text[""] = r.template(n)
	case yaml.MappingNode:
		for _, kv := range r.fields(n, "a message", nil) {
			lang := kv[0].Value
			if !isLang(lang) {
				r.errorf(kv[0], diag.BadValue, "A message is either one text, or one text per language such as `en:` and `es:`.", "`%s` is not a language code", lang)
				continue
			}
			if kv[1].Kind != yaml.ScalarNode || kv[1].Tag == "!!null" {
				r.errorf(kv[1], diag.WrongType, "Write the text after the colon.", "the `%s` text should be text, found %s", lang, kindName(kv[1]))
				continue
			}
			m.Text[lang] = r.template(kv[1])
		}
		if len(m.Text) == 0 {
			return nil
		}
	default:
		r.errorf(n, diag.WrongType, "Write the message as text, or as `en:` / `es:` lines.", "expected a message, found %s", kindName(n))
		return nil
	}
	return m
}

// template splits a scalar into literal text and {{ expr }} parts.
func (r *reader) template(n *yaml.Node) *Template {
	t := &Template{Source: n.Value, Pos: r.pos(n)}
	// Each {{ }} adds at most two parts: size the slice once.
	t.Parts = make([]Part, 0, 2*strings.Count(n.Value, "{{")+1)
	s := n.Value
	off := 0
	for {
		i := strings.Index(s[off:], "{{")
		if i < 0 {
			if off < len(s) {
				t.Parts = append(t.Parts, Part{Lit: s[off:]})
			}
			return t
		}
		i += off
		j := strings.Index(s[i+2:], "}}")
		if j < 0 {
			r.diags.Add(r.scalarPos(n, i), diag.ExprSyntax, "Close it with `}}`, or remove the `{{`.", "`{{` is never closed")
			return t
		}
		j += i + 2
		if i > off {
			t.Parts = append(t.Parts, Part{Lit: s[off:i]})
		}
		inner := s[i+2 : j]
		lead := len(inner) - len(strings.TrimLeft(inner, " \t"))
		src := strings.TrimSpace(inner)
		if src == "" {
			r.diags.Add(r.scalarPos(n, i), diag.ExprSyntax, "Put a variable name between the braces, for example {{ first_name }}.", "`{{ }}` is empty")
		} else {
			t.Parts = append(t.Parts, Part{Expr: &Expr{Source: src, Pos: r.scalarPos(n, i+2+lead), node: n, off: i + 2 + lead}})
		}
		off = j + 2
	}
}

// expr reads a scalar that is an expression.
func (r *reader) expr(n *yaml.Node) *Expr {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		r.errorf(n, diag.WrongType, "Write an expression such as `age >= 18`.", "expected an expression, found %s", kindName(n))
		return nil
	}
	return &Expr{Source: n.Value, Pos: r.scalarPos(n, 0), node: n}
}

func runeCount(s string) int { return utf8.RuneCountInString(s) }

// isName reports whether s is a variable name: an ASCII letter or
// underscore, then letters, digits and underscores. It runs for every
// expression, so it is written out rather than a regexp.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// isStepName reports whether s is a step name: a variable name that may
// also hold dashes.
func isStepName(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '-' && c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// isLang reports whether s is a language code such as en, haw or pt-BR
// (two or three lower-case letters, then optionally a dash and two to four
// letters).
func isLang(s string) bool {
	base, region, dashed := strings.Cut(s, "-")
	if len(base) < 2 || len(base) > 3 || dashed && (len(region) < 2 || len(region) > 4) {
		return false
	}
	for i := 0; i < len(base); i++ {
		if base[i] < 'a' || base[i] > 'z' {
			return false
		}
	}
	for i := 0; i < len(region); i++ {
		if c := region[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// isLanguageMap reports whether a mapping is a message in several
// languages ({en: ..., es: ...}) rather than a set of fields.
func isLanguageMap(n *yaml.Node) bool {
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		return false
	}
	for i := 0; i < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if !isLang(k) || contains(keywordKeys, k) {
			return false
		}
	}
	return true
}
