package flows

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/safeflow/safeflow/flows/diag"
)

// Limits of the channels a non-sensitive message may travel on.
const (
	MaxSMS        = 1600 // Twilio's limit for one message body
	MaxMessenger  = 2000 // the Send API's limit for a text
	MaxQuickReply = 20   // a quick-reply button title
	MaxQuickCount = 13   // quick replies on one message
)

// CarrierKeywords are handled by safeflow itself, as carriers require; a flow
// may not take them over. HELP is answered by safeflow too, but a flow may
// give its own HELP text.
var CarrierKeywords = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "START", "UNSTOP", "YES"}

// checker runs the static checks over one compiled flow.
type checker struct {
	f     *Flow
	diags *diag.List
	// edges, preds and reach are indexed by Step.Index; the edges are
	// listed once here rather than by every check.
	edges [][]Edge
	preds [][]Edge
	reach []bool
	// afterSens[i] says whether step i can run with a sensitive answer as
	// the last answer; built on first use.
	afterSens []bool
}

func check(f *Flow, diags *diag.List) {
	n := len(f.Steps)
	c := &checker{f: f, diags: diags, edges: make([][]Edge, n), preds: make([][]Edge, n)}
	c.targets()
	for _, s := range f.Steps {
		c.edges[s.Index] = f.Edges(s)
		for _, e := range c.edges[s.Index] {
			c.preds[e.To.Index] = append(c.preds[e.To.Index], e)
		}
	}
	c.routes()
	c.reachable()
	c.loops()
	c.unset()
	c.sensitivity()
	c.choices()
	c.lengths()
	c.keywords()
	c.languages()
}

func (c *checker) stepIDs() []string {
	ids := make([]string, len(c.f.Steps))
	for i, s := range c.f.Steps {
		ids[i] = s.ID
	}
	return ids
}

// target reports a goto that names no step. owner names what holds the
// goto; it is called only when there is something to report.
func (c *checker) target(id string, pos Pos, owner func() string) {
	if id == "" || c.f.byID[id] != nil {
		return
	}
	hint := "Check the spelling, or add a step with this name under `steps:`."
	msg := fmt.Sprintf("%s goes to `%s`, which does not exist", owner(), id)
	if s := suggest(id, c.stepIDs()); s != "" {
		hint = fmt.Sprintf("Write `%s` instead.", s)
		msg += fmt.Sprintf(". Did you mean `%s`?", s)
	}
	c.diags.Add(pos, diag.MissingStep, hint, "%s", msg)
}

func (c *checker) targets() {
	f := c.f
	if f.byID[f.Start] == nil && f.Start != "" {
		c.target(f.Start, f.startPos, func() string { return "`start:`" })
	}
	for _, s := range f.Steps {
		for _, r := range s.Next {
			c.target(r.Goto, r.gotoPos, func() string { return "step `" + s.ID + "`" })
		}
		if a := s.Ask; a != nil {
			c.target(a.OnFail, a.OnFailPos, func() string { return "the `on_fail` of step `" + s.ID + "`" })
			c.target(a.OnTimeout, a.OnTimeoutPos, func() string { return "the `on_timeout` of step `" + s.ID + "`" })
		}
	}
	for _, k := range f.Keywords {
		c.target(k.Goto, k.gotoPos, func() string { return "keyword " + k.Word })
	}
}

// routes finds dead ends, `next` lists without a default, and routes that
// come after the default.
func (c *checker) routes() {
	for _, s := range c.f.Steps {
		if len(s.Next) == 0 {
			if !s.End && s.Handoff == "" {
				c.diags.Add(s.Pos, diag.DeadEnd, "Add `next: <step>` to say where to go, or `end: true` to finish the conversation.",
					"step `%s` has no way on: after it the patient would be stuck", s.ID)
			}
			continue
		}
		for i, r := range s.Next {
			if r.When == nil && i < len(s.Next)-1 {
				c.diags.Add(s.Next[i+1].Pos, diag.Unreachable, "Move the entry without `when:` to the end of the list.",
					"this `next` entry of step `%s` comes after the default route and is never used", s.ID)
				break
			}
		}
		if last := s.Next[len(s.Next)-1]; last.When != nil {
			c.diags.Add(last.Pos, diag.NoDefaultRoute, "Add a last entry without `when:`, for example `- goto: front-desk`.",
				"step `%s` has no default route: when no `when:` matches, the patient would be stuck", s.ID)
		}
	}
}

// reachable finds steps that neither the start nor a keyword leads to.
func (c *checker) reachable() {
	c.reach = make([]bool, len(c.f.Steps))
	var queue []*Step
	visit := func(s *Step) {
		if s != nil && !c.reach[s.Index] {
			c.reach[s.Index] = true
			queue = append(queue, s)
		}
	}
	visit(c.f.StartStep())
	for _, k := range c.f.Keywords {
		visit(c.f.byID[k.Goto])
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, e := range c.edges[s.Index] {
			visit(e.To)
		}
	}
	if c.f.StartStep() == nil {
		return
	}
	for _, s := range c.f.Steps {
		if !c.reach[s.Index] {
			c.diags.Add(s.Pos, diag.Unreachable, "Add a `goto: "+s.ID+"` in an earlier step, or remove this step.",
				"step `%s` can never be reached from the start step `%s`", s.ID, c.f.Start)
		}
	}
}

// loops finds cycles of steps that never stop for the patient: the engine
// would run them forever. Tarjan's algorithm over the non-pausing steps.
func (c *checker) loops() {
	index := map[*Step]int{}
	low := map[*Step]int{}
	onStack := map[*Step]bool{}
	var stack []*Step
	n := 0
	var strong func(s *Step)
	strong = func(s *Step) {
		index[s], low[s] = n, n
		n++
		stack = append(stack, s)
		onStack[s] = true
		self := false
		for _, e := range c.edges[s.Index] {
			t := e.To
			if t.Pauses() || e.Kind != EdgeNext {
				continue
			}
			if t == s {
				self = true
			}
			if _, seen := index[t]; !seen {
				strong(t)
				low[s] = min(low[s], low[t])
			} else if onStack[t] {
				low[s] = min(low[s], index[t])
			}
		}
		if low[s] != index[s] {
			return
		}
		var scc []*Step
		for {
			t := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			onStack[t] = false
			scc = append(scc, t)
			if t == s {
				break
			}
		}
		if self && len(scc) == 1 {
			c.diags.Add(s.Pos, diag.EndlessLoop, "Add a question (`ask:`), a `wait:` or an `end: true` on the way back.",
				"step `%s` can go back to itself without asking anything: the conversation would go round forever", s.ID)
		}
		if len(scc) > 1 {
			slices.SortFunc(scc, func(a, b *Step) int { return a.Index - b.Index })
			names := make([]string, len(scc))
			for i, t := range scc {
				names[i] = "`" + t.ID + "`"
			}
			c.diags.Add(scc[0].Pos, diag.EndlessLoop, "Add a question (`ask:`), a `wait:` or an `end: true` somewhere in the loop.",
				"steps %s form a loop with no question in it: the conversation would go round forever", strings.Join(names, ", "))
		}
	}
	for _, s := range c.f.Steps {
		if _, seen := index[s]; !seen && !s.Pauses() {
			strong(s)
		}
	}
}

// varSet is a set of variable names as a bit set over the flow's variables.
type varSet []uint64

func (v varSet) has(i int) bool { return v[i/64]&(1<<(i%64)) != 0 }
func (v varSet) add(i int)      { v[i/64] |= 1 << (i % 64) }
func (v varSet) clone() varSet  { return slices.Clone(v) }

// intersect keeps in v only what is in w, reporting whether v changed.
func (v varSet) intersect(w varSet) bool {
	changed := false
	for i := range v {
		if n := v[i] & w[i]; n != v[i] {
			v[i], changed = n, true
		}
	}
	return changed
}

// unset finds variables read where some path from the start has not saved
// them: a forward "definitely saved" analysis over the step graph.
func (c *checker) unset() {
	names := make([]string, 0, len(c.f.Variables))
	for n := range c.f.Variables {
		names = append(names, n)
	}
	slices.Sort(names)
	idx := make(map[string]int, len(names))
	for i, n := range names {
		idx[n] = i
	}
	words := (len(names) + 63) / 64
	full := make(varSet, words)
	for i := range names {
		full.add(i)
	}
	declared := make(varSet, words)
	for _, d := range c.f.Vars {
		declared.add(idx[d.Name])
	}
	// One backing array for every step's set keeps this to two allocations.
	in := make([]varSet, len(c.f.Steps))
	backing := make(varSet, words*len(c.f.Steps))
	for i := range in {
		in[i] = backing[i*words : (i+1)*words : (i+1)*words]
		copy(in[i], full)
	}
	// Steps that keywords jump to may be entered with only the declared
	// variables known.
	entries := []*Step{c.f.StartStep()}
	for _, k := range c.f.Keywords {
		entries = append(entries, c.f.byID[k.Goto])
	}
	for _, s := range entries {
		if s != nil {
			in[s.Index].intersect(declared)
		}
	}
	// A worklist: a step is visited again only when what is known on entry
	// to it shrank, so a long chain written in reverse order costs one pass,
	// not one pass per step.
	queue := make([]*Step, 0, len(c.f.Steps))
	queued := make([]bool, len(c.f.Steps))
	for _, s := range c.f.Steps {
		if c.reach[s.Index] {
			queue = append(queue, s)
			queued[s.Index] = true
		}
	}
	saved := make(varSet, words)
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		queued[s.Index] = false
		copy(saved, in[s.Index])
		if s.Ask != nil && s.Ask.Save != "" {
			saved.add(idx[s.Ask.Save])
		}
		for _, a := range s.Set {
			saved.add(idx[a.Var])
		}
		for _, e := range c.edges[s.Index] {
			// A failed or timed-out question saves nothing and runs no set.
			o := saved
			if e.Kind != EdgeNext {
				o = in[s.Index]
			}
			if in[e.To.Index].intersect(o) && !queued[e.To.Index] {
				queued[e.To.Index] = true
				queue = append(queue, e.To)
			}
		}
	}
	// where describes the moment a variable is read; it is formatted only
	// when there is something to report.
	use := func(e *Expr, known varSet, where func() string) {
		if e == nil {
			return
		}
		for _, v := range e.Vars {
			if i, ok := idx[v]; ok && !known.has(i) {
				c.diags.Add(e.Pos, diag.MaybeUnset, "Ask for it on every path before this point, or give it a first value with `set:` in an earlier step.",
					"`%s` may not be saved yet when %s: on some path from the start no step saves it first", v, where())
			}
		}
	}
	after := make(varSet, words)
	for _, s := range c.f.Steps {
		if !c.reach[s.Index] {
			continue
		}
		known := in[s.Index]
		runs := func() string { return fmt.Sprintf("step `%s` runs", s.ID) }
		c.messageExprs(s, func(e *Expr) { use(e, known, runs) })
		copy(after, known)
		if s.Ask != nil && s.Ask.Save != "" {
			after.add(idx[s.Ask.Save])
		}
		for _, a := range s.Set {
			use(a.Expr, after, runs)
			after.add(idx[a.Var])
		}
		for _, r := range s.Next {
			use(r.When, after, func() string { return fmt.Sprintf("step `%s` chooses where to go", s.ID) })
		}
	}
	if v := c.f.Secure.Verify; v != nil {
		// The check runs when a secure segment opens: at a sensitive step.
		known := full.clone()
		for _, s := range c.f.Steps {
			if s.Sensitive && c.reach[s.Index] {
				known.intersect(in[s.Index])
			}
		}
		use(v.Equals, known, func() string { return "the secure page checks the patient's identity" })
	}
	for _, k := range c.f.Keywords {
		for _, m := range k.Say {
			m.exprs(func(e *Expr) { use(e, declared, func() string { return "keyword " + k.Word + " answers" }) })
		}
	}
}

// messageExprs calls fn for every expression in the messages a step sends.
func (c *checker) messageExprs(s *Step, fn func(*Expr)) {
	for _, m := range s.Say {
		m.exprs(fn)
	}
	if a := s.Ask; a != nil {
		a.Prompt.exprs(fn)
		a.Retry.exprs(fn)
		a.Reminder.exprs(fn)
		for _, ch := range a.Choices {
			ch.Label.exprs(fn)
		}
	}
}

// exprs calls fn for each expression of each language of the message.
func (m *Message) exprs(fn func(*Expr)) {
	if m == nil {
		return
	}
	for _, t := range m.Text {
		for _, p := range t.Parts {
			if p.Expr != nil {
				fn(p.Expr)
			}
		}
	}
}

// taint records why a variable is sensitive: the sensitive variable it
// comes from, and the step that collected that one.
type taint struct{ origin, step string }

// sensitivity marks every value collected in a sensitive step, and every
// value computed from one, and reports each that a message on SMS or
// Messenger would show (SECURITY.md #5).
func (c *checker) sensitivity() {
	tainted := map[string]taint{}
	for _, d := range c.f.Vars {
		if d.Sensitive {
			tainted[d.Name] = taint{d.Name, ""}
		}
	}
	for _, s := range c.f.Steps {
		if s.Sensitive && s.Ask != nil && s.Ask.Save != "" {
			tainted[s.Ask.Save] = taint{s.Ask.Save, s.ID}
		}
	}
	// Spread the taint along `set` with a worklist: each variable is
	// followed once, however the sets are ordered in the file.
	readers := map[string][]*Assign{}
	for _, s := range c.f.Steps {
		for _, a := range s.Set {
			if a.Expr == nil {
				continue
			}
			if _, done := tainted[a.Var]; !done && a.Expr.UsesInput && s.Sensitive {
				tainted[a.Var] = taint{"input", s.ID}
			}
			for _, v := range a.Expr.Vars {
				readers[v] = append(readers[v], a)
			}
		}
	}
	queue := make([]string, 0, len(tainted))
	for _, d := range c.f.Vars {
		if _, ok := tainted[d.Name]; ok {
			queue = append(queue, d.Name)
		}
	}
	for _, s := range c.f.Steps {
		if s.Ask != nil && s.Ask.Save != "" {
			if _, ok := tainted[s.Ask.Save]; ok {
				queue = append(queue, s.Ask.Save)
			}
		}
		for _, a := range s.Set {
			if _, ok := tainted[a.Var]; ok {
				queue = append(queue, a.Var)
			}
		}
	}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, a := range readers[v] {
			if _, done := tainted[a.Var]; !done {
				tainted[a.Var] = tainted[v]
				queue = append(queue, a.Var)
			}
		}
	}
	for name := range tainted {
		if v := c.f.Variables[name]; v != nil {
			v.Sensitive = true
		}
	}
	leak := func(e *Expr, where, fix string) {
		for _, v := range e.Vars {
			t, ok := tainted[v]
			if !ok {
				continue
			}
			src := "it was collected in the sensitive step `" + t.step + "`"
			switch {
			case t.step == "":
				src = "it is declared sensitive"
			case t.origin != v:
				src = fmt.Sprintf("it is computed from `%s`, collected in the sensitive step `%s`", t.origin, t.step)
			}
			c.diags.Add(e.Pos, diag.SensitiveLeak, fix,
				"%s would send `%s` over SMS or Messenger, but %s", where, v, src)
		}
	}
	if len(tainted) == 0 && !c.f.usesInput() {
		return
	}
	for _, s := range c.f.Steps {
		if s.Sensitive {
			continue
		}
		where := "step `" + s.ID + "`"
		fix := "Mark step `" + s.ID + "` as `sensitive: true`, or leave the value out of this message."
		c.messageExprs(s, func(e *Expr) {
			leak(e, where, fix)
			if e.UsesInput && c.afterSensitive(s) {
				c.diags.Add(e.Pos, diag.SensitiveLeak, fix,
					"step `%s` would send `input` over SMS or Messenger, but it can follow a sensitive step, so the last answer may be sensitive", s.ID)
			}
		})
	}
	for _, k := range c.f.Keywords {
		for _, m := range k.Say {
			m.exprs(func(e *Expr) {
				leak(e, "keyword "+k.Word, "Leave the value out of the keyword's answer: keywords answer on SMS and Messenger.")
			})
		}
	}
}

// afterSensitive reports whether the last answer when s runs may have been
// given in a sensitive step: a sensitive step leads to s, directly or
// through steps that ask nothing (and so leave `input` as it was).
func (c *checker) afterSensitive(s *Step) bool {
	if c.afterSens == nil {
		// Walk forward once from every sensitive step, through steps that
		// ask nothing, marking the steps reached.
		c.afterSens = make([]bool, len(c.f.Steps))
		var queue []*Step
		for _, t := range c.f.Steps {
			if t.Sensitive {
				queue = append(queue, t)
			}
		}
		for len(queue) > 0 {
			t := queue[0]
			queue = queue[1:]
			for _, e := range c.edges[t.Index] {
				if !c.afterSens[e.To.Index] {
					c.afterSens[e.To.Index] = true
					if e.To.Ask == nil && !e.To.Sensitive {
						queue = append(queue, e.To)
					}
				}
			}
		}
	}
	return c.afterSens[s.Index]
}

// usesInput reports whether any message of the flow shows `input`.
func (f *Flow) usesInput() bool {
	uses := false
	f.forEachExpr(func(e *Expr, _ exprKind) { uses = uses || e.UsesInput })
	return uses
}

// normChoice folds an answer for comparison the way the engine matches it.
func normChoice(s string) string {
	s = strings.ToLower(s)
	word := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	// Most answers are one plain word already: return them as they are.
	plain := true
	for _, r := range s {
		if !word(r) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	gap := false
	for _, r := range s {
		if !word(r) {
			gap = true
			continue
		}
		if gap && b.Len() > 0 {
			b.WriteByte(' ')
		}
		gap = false
		b.WriteRune(r)
	}
	return b.String()
}

// choices finds two choices of one question that one answer would match.
func (c *checker) choices() {
	for _, s := range c.f.Steps {
		if s.Ask == nil || len(s.Ask.Choices) == 0 {
			continue
		}
		owner := map[string]int{}
		for i := range s.Ask.Choices {
			owner[fmt.Sprint(i+1)] = i
		}
		for i, ch := range s.Ask.Choices {
			var words []string
			words = append(words, ch.Value)
			if ch.Label != nil {
				for _, t := range ch.Label.Text {
					words = append(words, t.Literal())
				}
			}
			words = append(words, ch.Synonyms...)
			for _, w := range words {
				n := normChoice(w)
				if n == "" {
					continue
				}
				j, taken := owner[n]
				if taken && j != i {
					c.diags.Add(ch.Pos, diag.ChoiceCollision, "Give each choice its own words; remove or change one of them.",
						"the answer %q would match choice %d (`%s`) and choice %d (`%s`) of step `%s`", w, j+1, s.Ask.Choices[j].Value, i+1, ch.Value, s.ID)
					continue
				}
				owner[n] = i
			}
		}
	}
}

// lengths checks messages against the limits of SMS and Messenger, counting
// only their fixed text: values put in by {{ }} add to it at run time.
func (c *checker) lengths() {
	check := func(m *Message, extra int) {
		if m == nil {
			return
		}
		for lang, t := range m.Text {
			n := t.literalLen()
			switch {
			case n > MaxMessenger:
				c.diags.Add(t.Pos, diag.TooLongMessenger, "Shorten it, or split it into several `say:` messages.",
					"the message%s is %d characters long; Messenger allows %d and SMS %d", langSuffix(lang), n, MaxMessenger, MaxSMS)
			case n+extra > MaxSMS && extra > 0:
				c.diags.Add(t.Pos, diag.TooLongSMS, "Shorten it, or offer fewer or shorter choices.",
					"the message%s is %d characters long with its choice list; SMS allows %d", langSuffix(lang), n+extra, MaxSMS)
			case n > MaxSMS:
				c.diags.Add(t.Pos, diag.TooLongSMS, "Shorten it, or split it into several `say:` messages.",
					"the message%s is %d characters long; SMS allows %d", langSuffix(lang), n, MaxSMS)
			}
		}
	}
	check(c.f.Secure.LinkMessage, 0)
	for _, k := range c.f.Keywords {
		for _, m := range k.Say {
			check(m, 0)
		}
	}
	for _, s := range c.f.Steps {
		if s.Sensitive {
			continue
		}
		for _, m := range s.Say {
			check(m, 0)
		}
		if a := s.Ask; a != nil {
			extra := 0
			for i, ch := range a.Choices {
				// "Reply 1 for X, " as the engine renders choices on SMS.
				extra += len(strconv.Itoa(i+1)) + len(" for , ") + labelLen(ch)
				if ch.Label == nil {
					continue // a choice without a value, reported by the loader
				}
				for _, t := range ch.Label.Text {
					if n := t.literalLen(); n > MaxQuickReply {
						c.diags.Add(ch.Pos, diag.QuickReplyTooLong, fmt.Sprintf("Give it a `label:` of at most %d characters.", MaxQuickReply),
							"the choice %q is %d characters long; Messenger cuts button titles at %d", t.Literal(), n, MaxQuickReply)
					}
				}
			}
			if len(a.Choices) > 0 {
				extra += len("Reply .")
			}
			if len(a.Choices) > MaxQuickCount {
				c.diags.Add(a.Choices[MaxQuickCount].Pos, diag.TooManyChoices, "Offer fewer choices, or split the question in two.",
					"step `%s` offers %d choices; Messenger shows at most %d buttons, so this one and the rest can only be typed", s.ID, len(a.Choices), MaxQuickCount)
			}
			check(a.Prompt, extra)
			check(a.Retry, 0)
			check(a.Reminder, 0)
		}
	}
}

func labelLen(ch *Choice) int {
	n := 0
	if ch.Label != nil {
		for _, t := range ch.Label.Text {
			n = max(n, t.literalLen())
		}
	}
	return n
}

// keywords finds keywords that clash within the flow or with the words
// safeflow handles itself.
func (c *checker) keywords() {
	seen := map[string]Pos{}
	mark := func(w string, p Pos) {
		if slices.Contains(CarrierKeywords, w) {
			c.diags.Add(p, diag.KeywordCollision, "Choose another word.",
				"the keyword %s is kept by safeflow for opting out and back in, as carriers require", w)
			return
		}
		if prev, dup := seen[w]; dup {
			c.diags.Add(p, diag.KeywordCollision, "Use each keyword once.",
				"the keyword %s is already used at line %d", w, prev.Line)
			return
		}
		seen[w] = p
	}
	for i, w := range c.f.Trigger.Keywords {
		p := c.f.Trigger.Pos
		if i < len(c.f.Trigger.wordPos) {
			p = c.f.Trigger.wordPos[i]
		}
		mark(w, p)
	}
	for _, k := range c.f.Keywords {
		mark(k.Word, k.Pos)
	}
	for _, s := range c.f.Steps {
		if s.Ask == nil {
			continue
		}
		for _, ch := range s.Ask.Choices {
			for _, w := range append([]string{ch.Value}, ch.Synonyms...) {
				if u := strings.ToUpper(normChoice(w)); u != "YES" && slices.Contains(CarrierKeywords, u) {
					c.diags.Add(ch.Pos, diag.KeywordCollision, "Use other words for this choice, for example `Cancel visit`, or a number.",
						"the answer %q of step `%s` is a word carriers treat as opting out or in, so a patient who replies with it would be unsubscribed", w, s.ID)
				}
			}
			if _, ok := seen[strings.ToUpper(normChoice(ch.Value))]; ok {
				c.diags.Add(ch.Pos, diag.KeywordCollision, "Rename the keyword, or give this choice other words.",
					"the choice %q of step `%s` is also a keyword, so answering it would trigger the keyword instead", ch.Value, s.ID)
			}
		}
	}
	if c.f.Secure.LinkMessage != nil {
		for lang, t := range c.f.Secure.LinkMessage.Text {
			has := false
			for _, p := range t.Parts {
				has = has || (p.Expr != nil && p.Expr.Source == "link")
			}
			if !has {
				c.diags.Add(t.Pos, diag.LinkMessage, "Put {{ link }} where the secure link goes.",
					"the secure link message%s has no {{ link }}", langSuffix(lang))
			}
		}
	}
}

func langSuffix(lang string) string {
	if lang == "" {
		return ""
	}
	return " (" + lang + ")"
}

// languages warns about messages that lack a language the flow speaks:
// patients who chose it would get another language's text.
func (c *checker) languages() {
	langs := map[string]bool{}
	var all []*Message
	collect := func(m *Message) {
		if m == nil {
			return
		}
		all = append(all, m)
		for l := range m.Text {
			if l != "" {
				langs[l] = true
			}
		}
	}
	collect(c.f.Secure.LinkMessage)
	if v := c.f.Secure.Verify; v != nil {
		collect(v.Prompt)
	}
	for _, k := range c.f.Keywords {
		for _, m := range k.Say {
			collect(m)
		}
	}
	for _, s := range c.f.Steps {
		for _, m := range s.Say {
			collect(m)
		}
		if a := s.Ask; a != nil {
			collect(a.Prompt)
			collect(a.Retry)
			collect(a.Reminder)
			for _, ch := range a.Choices {
				if ch.Label == nil {
					continue
				}
				if _, plain := ch.Label.Text[""]; !plain {
					collect(ch.Label)
				}
			}
		}
	}
	for l := range langs {
		c.f.Languages = append(c.f.Languages, l)
	}
	slices.Sort(c.f.Languages)
	if len(langs) == 0 {
		return
	}
	for _, m := range all {
		var missing []string
		for _, l := range c.f.Languages {
			if m.Text[l] == nil {
				missing = append(missing, l)
			}
		}
		if len(missing) > 0 {
			c.diags.Add(m.Pos, diag.MissingLanguage, fmt.Sprintf("Add the text in %s, as `%s: ...`.", strings.Join(missing, " and "), missing[0]),
				"this message has no %s text, though the flow speaks %s", strings.Join(missing, " or "), strings.Join(c.f.Languages, " and "))
		}
	}
}
