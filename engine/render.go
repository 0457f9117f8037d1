package engine

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
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
// the flow's language, then to the language-neutral text.
func (r *run) text(m *flows.Message) *flows.Template {
	if t := m.Text[r.lang()]; t != nil {
		return t
	}
	if t := m.Text[""]; t != nil {
		return t
	}
	if r.flow != nil {
		if t := m.Text[r.flow.Language]; t != nil {
			return t
		}
	}
	keys := make([]string, 0, len(m.Text))
	for k := range m.Text {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return m.Text[keys[0]]
}

// send renders a flow message and addresses it. ask, when set, attaches the
// question's choices; input names the answer type the message asks for.
func (r *run) send(step *flows.Step, m *flows.Message, ask *flows.Ask, input string) {
	if m == nil {
		return
	}
	ch := r.outChannel()
	if r.replyCh == Secure && step == nil && r.conv != nil && r.conv.Secure == SecureOpen {
		ch = Secure
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
		opts := r.e.choiceOptions(ask, r.lang())
		if ch == SMS {
			o.Text += "\n" + answer.RenderChoices(opts, r.lang())
		} else {
			o.Choices = make([]OutChoice, len(opts))
			for i, c := range opts {
				o.Choices[i] = OutChoice{Title: c.Label, Payload: c.Value}
			}
		}
	}
	r.emit(o)
}

// emit addresses an outbound message and records it.
func (r *run) emit(o *Outbound) {
	o.ContactID = r.contact.ID
	if o.Channel != Secure {
		o.Address = r.contact.Address
		if r.conv != nil {
			o.Address = r.conv.Address
		}
	}
	if r.conv != nil {
		o.ConversationID = r.conv.ID
		r.lines = append(r.lines, TranscriptLine{At: r.e.now(), Channel: o.Channel, Text: o.Text,
			Step: r.conv.Step, Sensitive: o.Sensitive})
	}
	r.out = append(r.out, o)
	r.eventOn(EventMessageOut, "", o.Channel, "ok", "")
}

// leaks reports whether a message bound for SMS or Messenger would show a
// sensitive value: through a sensitive variable in its template, or because
// a sensitive value's text appears in the body.
func (r *run) leaks(t *flows.Template, body string) bool {
	if r.flow == nil || r.conv == nil {
		return false
	}
	for _, p := range t.Parts {
		if p.Expr == nil {
			continue
		}
		for _, v := range p.Expr.Vars {
			if fv := r.flow.Variables[v]; fv != nil && fv.Sensitive {
				return true
			}
		}
	}
	for name, v := range r.conv.Vars {
		fv := r.flow.Variables[name]
		if fv == nil || !fv.Sensitive {
			continue
		}
		if s := format(v, r.lang()); len(s) >= 4 && strings.Contains(body, s) {
			return true
		}
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
	return r.machine.Run(e.Program, r.envMap())
}

func (r *run) envMap() map[string]any {
	if r.env != nil {
		return r.env
	}
	env := make(map[string]any, len(r.e.helpers)+len(r.flow.Variables)+2)
	for k, v := range r.e.helpers {
		env[k] = v
	}
	for k := range r.flow.Variables {
		env[k] = nil
	}
	for k, v := range r.conv.Vars {
		env[k] = v
	}
	env["input"] = r.input
	env["contact"] = flows.Contact{Channel: string(r.conv.Origin), Language: r.lang()}
	r.env = env
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

// choiceKey caches the answer options of a question per language.
type choiceKey struct {
	ask  *flows.Ask
	lang string
}

var choiceCache sync.Map // choiceKey → []answer.Option

func (e *Engine) choiceOptions(a *flows.Ask, lang string) []answer.Option {
	key := choiceKey{a, lang}
	if v, ok := choiceCache.Load(key); ok {
		return v.([]answer.Option)
	}
	opts := make([]answer.Option, len(a.Choices))
	for i, c := range a.Choices {
		label := c.Value
		if c.Label != nil {
			if t := c.Label.Text[lang]; t != nil {
				label = t.Literal()
			} else if t := c.Label.Text[""]; t != nil {
				label = t.Literal()
			} else {
				for _, t := range c.Label.Text {
					label = t.Literal()
					break
				}
			}
		}
		opts[i] = answer.Option{Value: c.Value, Label: label, Synonyms: c.Synonyms}
	}
	v, _ := choiceCache.LoadOrStore(key, opts)
	return v.([]answer.Option)
}

// options builds the parse options of a question.
func (e *Engine) options(a *flows.Ask, lang string) *answer.Options {
	o := &answer.Options{Now: e.clock(), DateOrder: e.order, Region: e.region, Min: a.Min, Max: a.Max, Pattern: a.Pattern}
	if len(a.Choices) > 0 {
		o.Choices = e.choiceOptions(a, lang)
	}
	return o
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
	r.conv.Secure, r.conv.LinkSentAt = SecurePending, r.e.now()
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
	if r.conv.Secure == SecureOpen || r.e.now().Sub(r.conv.LinkSentAt) < r.e.resend || r.conv.LinkResends >= r.e.maxLinks {
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
