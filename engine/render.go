package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/safeflow/safeflow/engine/answer"
	"github.com/safeflow/safeflow/flows"
)

// outChannel is where the conversation's messages go now.
func (r *run) outChannel() Channel {
	if r.conv != nil && r.conv.Secure == SecureOpen {
		return Secure
	}
	if r.conv != nil {
		return r.conv.Origin
	}
	return r.contact.Channel
}

func (r *run) lang() string {
	if r.conv != nil && r.conv.Language != "" {
		return r.conv.Language
	}
	if r.contact != nil && r.contact.Language != "" {
		return r.contact.Language
	}
	if r.flow != nil {
		return r.flow.Language
	}
	return "en"
}

// text picks the message's text in the contact's language, falling back to
// the language-neutral text, then to the flow's language.
func (r *run) text(m *flows.Message) *flows.Template {
	flowLang := ""
	if r.flow != nil {
		flowLang = r.flow.Language
	}
	return pickText(m, r.lang(), flowLang)
}

// pickText returns m's text in lang, else its language-neutral text, else
// the text in flowLang, else the first by language code, so that the
// choice never depends on map order.
func pickText(m *flows.Message, lang, flowLang string) *flows.Template {
	if t := m.Text[lang]; t != nil {
		return t
	}
	if t := m.Text[""]; t != nil {
		return t
	}
	if t := m.Text[flowLang]; t != nil {
		return t
	}
	first := ""
	for k := range m.Text {
		if first == "" || k < first {
			first = k
		}
	}
	return m.Text[first]
}

// send renders a flow message and addresses it. ask, when set, attaches the
// question's choices; input names the answer type the message asks for.
func (r *run) send(step *flows.Step, m *flows.Message, ask *flows.Ask, input string) {
	if m == nil {
		return
	}
	ch := r.outChannel()
	// Keyword answers go back where the keyword was written: carriers
	// require HELP to be answered on SMS even while the secure page is open.
	if step == nil && r.replyCh != "" && (r.replyCh != Secure || r.conv != nil && r.conv.Secure == SecureOpen) {
		ch = r.replyCh
	}
	t := r.text(m)
	body := r.render(t, step)
	sensitive := step != nil && step.Sensitive
	if ch != Secure && (sensitive || r.leaks(t, body)) {
		// Defence in depth: the static check forbids this, but a flow that
		// bypassed it must still not put a sensitive value on SMS.
		r.event(EventRefused, r.stepID(), "denied", "a sensitive value was kept off "+string(ch))
		r.e.log.Warn("refused to send a sensitive value on an insecure channel",
			"conversation", r.conv.ID, "step", r.stepID(), "channel", string(ch))
		return
	}
	o := &Outbound{Channel: ch, Text: body, Input: input, Sensitive: sensitive || ch == Secure}
	if ask != nil && len(ask.Choices) > 0 {
		cl := r.info().choiceList(ask, r.lang())
		if ch == SMS {
			o.Text += "\n" + cl.sms
		} else {
			o.Choices = slices.Clone(cl.out) // the caller may change its copy
		}
	}
	r.emit(o)
}

// emit addresses an outbound message and records it.
func (r *run) emit(o *Outbound) {
	if r.contact.OptedOut && o.Channel.IsOrigin() {
		// Nothing goes to an opted-out contact on SMS or Messenger, whatever
		// produced it (a timer, an agent's hand-back), until START.
		r.eventOn(EventRefused, r.stepID(), o.Channel, "denied", "the contact has opted out")
		return
	}
	o.ContactID = r.contact.ID
	if o.Channel != Secure {
		o.Address = r.contact.Address
		if r.conv != nil {
			o.Address = r.conv.Address
		}
	}
	if r.conv != nil {
		o.ConversationID = r.conv.ID
		r.lines = append(r.lines, TranscriptLine{At: r.now(), Channel: o.Channel, Text: o.Text,
			Step: r.conv.Step, Sensitive: o.Sensitive})
	}
	r.out = append(r.out, o)
	r.eventOn(EventMessageOut, "", o.Channel, "ok", "")
}

// leaks reports whether a message bound for SMS or Messenger would show a
// sensitive value: through a sensitive variable in its template, or because
// a sensitive value's text appears in the body.
//
// Which variables are sensitive is worked out again from the flow's steps
// (flowInfo.sensitive), so that a flaw in the static check, or a model
// changed after it ran, still cannot put a sensitive value on SMS.
func (r *run) leaks(t *flows.Template, body string) bool {
	if r.flow == nil || r.conv == nil {
		return false
	}
	sensitive := r.info().sensitive
	for _, p := range t.Parts {
		if p.Expr == nil {
			continue
		}
		if p.Expr.UsesInput && r.inputSensitive {
			return true
		}
		for _, v := range p.Expr.Vars {
			if sensitive[v] {
				return true
			}
		}
	}
	for name := range sensitive {
		v, ok := r.conv.Vars[name]
		if !ok {
			continue
		}
		if s := format(v, r.lang()); len(s) >= 4 && strings.Contains(body, s) {
			return true
		}
	}
	if r.inputSensitive && len(r.input) >= 4 && strings.Contains(body, r.input) {
		return true
	}
	return false
}

// render fills a template's {{ }} parts. An expression that fails at run
// time is recorded and renders as nothing.
func (r *run) render(t *flows.Template, step *flows.Step) string {
	if len(t.Parts) == 1 && t.Parts[0].Expr == nil {
		return t.Parts[0].Lit
	}
	var b strings.Builder
	b.Grow(len(t.Source) + 32) // room for typical values: one allocation
	for _, p := range t.Parts {
		if p.Expr == nil {
			b.WriteString(p.Lit)
			continue
		}
		v, err := r.eval(p.Expr)
		if err != nil {
			id := ""
			if step != nil {
				id = step.ID
			}
			r.event(EventExprError, id, "failed", "{{ "+p.Expr.Source+" }}: "+safeErr(err))
			continue
		}
		b.WriteString(format(v, r.lang()))
	}
	return b.String()
}

// eval evaluates an expression against the conversation.
func (r *run) eval(e *flows.Expr) (any, error) {
	if e.Ident != "" {
		if e.Ident == "input" {
			return r.input, nil
		}
		return r.conv.Vars[e.Ident], nil
	}
	env := r.envMap()
	if e.UsesInput {
		// Set here rather than in envMap: few expressions read it, and
		// putting a string in the map costs an allocation.
		env["input"] = r.input
	}
	return r.machine.Run(e.Program, env)
}

// envMap returns the expression environment, filling it on first use in
// the run. The map itself is reused from run to run (see runPool). A
// variable not yet saved is simply absent: expr reads a missing key of a
// map[string]any environment as nil, as it would read a nil value.
func (r *run) envMap() map[string]any {
	if r.envOK {
		return r.env
	}
	env := r.env
	if env == nil {
		env = make(map[string]any, len(r.e.helpers)+len(r.conv.Vars)+2)
		r.env = env
	} else {
		clear(env)
	}
	for k, v := range r.e.helpers {
		env[k] = v
	}
	for k, v := range r.conv.Vars {
		env[k] = v
	}
	env["contact"] = r.info().contact(r.conv.Origin, r.lang())
	r.envOK = true
	return env
}

// format writes a value for a patient to read.
func format(v any, lang string) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		if v {
			return systemText("yes", lang)
		}
		return systemText("no", lang)
	case time.Time:
		return flows.FormatDate(v, lang)
	}
	return fmt.Sprint(v)
}

// options fills the run's parse options for a question; they live in the
// run so that parsing an answer allocates none.
func (r *run) options(a *flows.Ask) *answer.Options {
	r.opts = answer.Options{Now: r.e.clock(), DateOrder: r.e.order, Region: r.e.region, Min: a.Min, Max: a.Max, Pattern: a.Pattern}
	if len(a.Choices) > 0 {
		r.opts.Choices = r.info().choiceList(a, r.lang()).opts
	}
	return &r.opts
}

// system sends one of safeflow's own messages on the reply channel.
func (r *run) system(key string) {
	ch := r.replyCh
	if ch == "" {
		ch = r.outChannel()
	}
	r.sendSystem(ch, key)
}

func (r *run) sendSystem(ch Channel, key string) {
	r.emit(&Outbound{Channel: ch, Text: systemText(key, r.lang()), System: true, Sensitive: ch == Secure})
}

// sendLink issues a secure link and sends the flow's link message on the
// origin channel. fresh is true when a sensitive segment starts.
func (r *run) sendLink(fresh bool) {
	if r.e.links == nil {
		r.event(EventLinkIssued, r.stepID(), "failed", "no link issuer configured")
		r.system("unavailable")
		r.handoff("front-desk")
		return
	}
	url, err := r.e.links.IssueLink(r.ctx, r.tx, r.conv, r.flow.Secure.LinkTTL)
	if err != nil {
		r.event(EventLinkIssued, r.stepID(), "failed", "issue link failed")
		r.e.log.Error("issue secure link", "conversation", r.conv.ID, "err", err)
		r.system("unavailable")
		r.handoff("front-desk")
		return
	}
	if fresh {
		r.conv.LinkResends = 0
	}
	r.conv.Secure, r.conv.LinkSentAt = SecurePending, r.now()
	r.event(EventLinkIssued, r.stepID(), "ok", "")
	var body string
	if m := r.flow.Secure.LinkMessage; m != nil {
		t := r.text(m)
		var b strings.Builder
		for _, p := range t.Parts {
			if p.Expr == nil {
				b.WriteString(p.Lit)
			} else {
				b.WriteString(url) // the loader allows only {{ link }} here
			}
		}
		body = b.String()
	} else {
		body = strings.ReplaceAll(systemText("link", r.lang()), "{link}", url)
		body = strings.ReplaceAll(body, "{minutes}", strconv.Itoa(int(r.flow.Secure.LinkTTL.Minutes())))
	}
	r.emit(&Outbound{Channel: r.conv.Origin, Text: body, Link: true})
}

// pointToLink answers a message sent on SMS or Messenger while the chat
// waits on the secure page: a fresh link, at most every few minutes and a
// few times per segment, else a pointer to the link already sent.
func (r *run) pointToLink() {
	if r.conv.Secure == SecureOpen || r.now().Sub(r.conv.LinkSentAt) < r.e.resend || r.conv.LinkResends >= r.e.maxLinks {
		r.sendSystem(r.conv.Origin, "pointer")
		return
	}
	r.conv.LinkResends++
	r.sendLink(false)
}

// closeSecure ends a sensitive segment: the secure page is told the chat
// goes on by SMS or Messenger.
func (r *run) closeSecure() {
	if r.conv.Secure == SecureOpen {
		key := "back_sms"
		if r.conv.Origin == Messenger {
			key = "back_messenger"
		}
		r.sendSystem(Secure, key)
	}
	r.conv.Secure, r.conv.LinkResends = SecureNone, 0
}
