package engine

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/safeflow/safeflow/engine/answer"
	"github.com/safeflow/safeflow/flows"
)

// maxHops bounds the steps one message may run through. The static checks
// reject loops without a question; this is the run-time backstop.
const maxHops = 100

// ErrSecureClosed is returned for a message on the secure channel of a
// conversation whose secure session is not open.
var ErrSecureClosed = errors.New("the secure session is not open")

// Words that opt a contact out and back in, as carriers handle them.
var (
	optOutWords = map[string]bool{"STOP": true, "STOPALL": true, "UNSUBSCRIBE": true, "CANCEL": true, "END": true, "QUIT": true}
	optInWords  = map[string]bool{"START": true, "UNSTOP": true}
)

// run is the work of one transaction on one conversation.
type run struct {
	e       *Engine
	ctx     context.Context
	tx      Tx
	contact *Contact
	conv    *Conversation
	flow    *flows.Flow
	res     *Result

	source, requestID string
	actor, actorID    string
	replyCh           Channel
	input             string
	// inputSensitive is true when input was typed on the secure page or in
	// a sensitive step: then no SMS or Messenger message may show it.
	inputSensitive bool
	// env is the expression environment, filled on first use (envOK).
	env     map[string]any
	envOK   bool
	machine vm.VM
	opts    answer.Options
	// at is the engine's time for the whole run: every record of one
	// transaction carries the same instant.
	at time.Time
	// fi is the info of fiFlow, kept while the run stays on that flow.
	fi     *flowInfo
	fiFlow *flows.Flow

	lines        []TranscriptLine
	out          []*Outbound
	events       []Event
	timers       []Timer
	timersDirty  bool
	contactDirty bool
}

// runPool recycles runs with the slices, environment map and VM they have
// grown, so that handling a message allocates little.
var runPool = sync.Pool{New: func() any { return new(run) }}

// newRun returns a run from the pool. Give it back with release once the
// transaction is over, not before: a store may keep the slices it was given
// until it commits.
func (e *Engine) newRun(ctx context.Context, tx Tx) *run {
	r := runPool.Get().(*run)
	r.e, r.ctx, r.tx = e, ctx, tx
	return r
}

// release returns r to the pool, dropping every reference it holds to the
// conversation so that nothing of it lingers in pooled memory.
//
// release on a nil run does nothing, so that callers need not check.
func (r *run) release() {
	if r == nil {
		return
	}
	clear(r.env)
	clear(r.lines)
	clear(r.out)
	clear(r.events)
	env, machine := r.env, r.machine
	lines, out, events := r.lines[:0], r.out[:0], r.events[:0]
	*r = run{env: env, machine: machine, lines: lines, out: out, events: events}
	runPool.Put(r)
}

// now returns the engine's time for this run.
func (r *run) now() time.Time {
	if r.at.IsZero() {
		r.at = r.e.now()
	}
	return r.at
}

// info returns the flowInfo of the run's flow.
func (r *run) info() *flowInfo {
	if r.fiFlow != r.flow || r.fi == nil {
		r.fi, r.fiFlow = infoOf(r.flow), r.flow
	}
	return r.fi
}

// attach sets the conversation and finds its flow version.
func (r *run) attach(conv *Conversation) error {
	r.conv = conv
	if conv.Vars == nil {
		conv.Vars = map[string]any{}
	}
	r.flow = r.e.flows.Version(conv.FlowID, conv.FlowHash)
	if r.flow == nil {
		r.flow = r.e.flows.Flow(conv.FlowID)
	}
	if r.flow == nil {
		// The flow was removed while the conversation was open.
		r.end("the flow no longer exists")
	}
	return nil
}

func (r *run) step() *flows.Step {
	if r.flow == nil || r.conv == nil {
		return nil
	}
	return r.flow.Step(r.conv.Step)
}

// begin starts a new conversation of flow f, ending any open one.
func (r *run) begin(f *flows.Flow, ch Channel) error {
	if old := r.conv; old != nil && old.Status != Ended {
		r.end("replaced by flow " + f.ID)
		if err := r.flushConversation(); err != nil {
			return err
		}
		if r.timersDirty {
			// The timers belong to the old conversation: clear them now,
			// before r.conv names the new one.
			if err := r.tx.SetTimers(r.ctx, old.ID, nil); err != nil {
				return fmt.Errorf("set timers: %w", err)
			}
			r.timers, r.timersDirty = nil, false
		}
	}
	now := r.now()
	// A contact whose language the flow is not written in gets the
	// flow's own language, system messages included, never a mix.
	lang := r.contact.Language
	if lang == "" || !speaks(f, lang) {
		lang = f.Language
	}
	r.conv = &Conversation{ContactID: r.contact.ID, FlowID: f.ID, FlowHash: f.Hash, Status: Active,
		Vars: map[string]any{}, Origin: r.contact.Channel, Address: r.contact.Address, Language: lang,
		Created: now, Updated: now}
	if ch.IsOrigin() {
		r.conv.Origin = ch
	}
	r.flow, r.envOK = f, false
	if err := r.tx.SaveConversation(r.ctx, r.conv); err != nil {
		return fmt.Errorf("save conversation: %w", err)
	}
	return nil
}

// inbound applies one message from the contact.
func (r *run) inbound(in Inbound) error {
	text := strings.TrimSpace(in.Text)
	r.replyCh = in.Channel
	step := r.step()
	inLine := len(r.lines)
	r.lines = append(r.lines, TranscriptLine{At: r.now(), Inbound: true, Channel: in.Channel, Text: in.Text,
		Step: r.stepID(), Sensitive: in.Channel == Secure || step != nil && step.Sensitive})
	r.eventOn(EventMessageIn, "", in.Channel, "ok", "")
	word := strings.ToUpper(strings.Trim(text, " .!"))

	if in.Channel.IsOrigin() {
		switch {
		case optOutWords[word]:
			if !r.contact.OptedOut {
				// The confirmation is the last message the contact gets, so
				// it goes out before the opt-out takes effect.
				r.system("optout")
				r.contact.OptedOut, r.contactDirty = true, true
				r.event(EventOptOut, "", "ok", "")
			}
			return nil
		case optInWords[word]:
			if r.contact.OptedOut {
				r.contact.OptedOut, r.contactDirty = false, true
				r.event(EventOptIn, "", "ok", "")
				r.system("optin")
			}
			return nil
		}
	}
	if r.contact.OptedOut {
		return nil
	}
	if in.Channel == Secure && (r.conv == nil || r.conv.Secure != SecureOpen) {
		return ErrSecureClosed
	}
	if r.conv != nil && r.conv.Status != Ended && r.flow != nil {
		for _, k := range r.flow.Keywords {
			if k.Word == word {
				r.keyword(k)
				return nil
			}
		}
	}
	if word == "HELP" {
		r.system("help")
		return nil
	}
	if in.Channel.IsOrigin() && word != "" {
		if f := r.e.flows.ByKeyword(word); f != nil {
			if err := r.begin(f, in.Channel); err != nil {
				return err
			}
			r.enter(f.StartStep(), nil)
			return nil
		}
	}
	if r.conv == nil || r.conv.Status == Ended || r.flow == nil {
		f := r.e.flows.Default()
		if f == nil || !in.Channel.IsOrigin() {
			r.system("noflow")
			return nil
		}
		if err := r.begin(f, in.Channel); err != nil {
			return err
		}
		r.enter(f.StartStep(), nil)
		return nil
	}
	if r.conv.Status != Active || step == nil {
		return nil // handed off or waiting: the transcript keeps the message
	}
	if in.Channel.IsOrigin() && (step.Sensitive || r.staysSecure() && r.conv.Secure != SecureNone) {
		// Never take an answer to a sensitive question from SMS or Messenger.
		r.pointToLink()
		return nil
	}
	if in.Channel.IsOrigin() && r.e.guard && volunteers(step, text) {
		// Fail closed (SECURITY.md #6): a patient who writes a date of birth
		// or an SSN where none was asked is moved to the secure page; the
		// text is not taken as an answer and the question is asked again there.
		r.lines[inLine].Sensitive = true
		r.event(EventSwitchSecure, step.ID, "ok", "identity data volunteered on "+string(in.Channel))
		r.conv.StaySecure, r.conv.PromptSent = true, false
		r.sendLink(false)
		return nil
	}
	if step.Ask == nil || !r.conv.PromptSent {
		return nil
	}
	r.answer(step, text, in.Payload)
	return nil
}

// staysSecure reports whether the conversation keeps to the secure page
// once there: an agent moved it, or the flow says `return: stay`.
func (r *run) staysSecure() bool {
	return r.conv.StaySecure || r.flow != nil && r.flow.Secure.Return == "stay"
}

func (r *run) stepID() string {
	if r.conv == nil {
		return ""
	}
	return r.conv.Step
}

// keyword carries out a flow keyword.
func (r *run) keyword(k *flows.Keyword) {
	r.event("keyword", k.Word, "ok", "")
	for _, m := range k.Say {
		r.send(nil, m, nil, "")
	}
	switch {
	case k.Handoff != "":
		r.handoff(k.Handoff)
	case k.Goto != "":
		r.conv.Status = Active
		r.enter(r.flow.Step(k.Goto), nil)
	case k.End:
		r.end("keyword " + k.Word)
	}
}

// answer applies an answer to the current question.
func (r *run) answer(step *flows.Step, text, payload string) {
	a := step.Ask
	r.input, r.inputSensitive = text, step.Sensitive || r.replyCh == Secure
	raw := text
	if payload != "" && a.Type == flows.TypeChoice {
		raw = payload
	}
	v, err := answer.Parse(a.Type, raw, r.options(a))
	if err != nil {
		r.conv.Attempts++
		if r.conv.Attempts >= a.Attempts {
			r.event(EventGaveUp, step.ID, "failed", "")
			if t := r.flow.Step(a.OnFail); t != nil {
				r.enter(t, &flows.Edge{From: step, To: t, Kind: flows.EdgeFail})
				return
			}
			r.system("gaveup")
			r.handoff("front-desk")
			return
		}
		if a.Retry != nil {
			r.send(step, a.Retry, a, "")
		} else {
			r.system("retry")
			r.prompt(step)
		}
		return
	}
	if a.Save != "" {
		r.setVar(a.Save, v)
		if a.Save == "language" {
			if lang, ok := v.(string); ok && r.speaks(lang) {
				r.conv.Language, r.contact.Language, r.contactDirty = lang, lang, true
				r.envOK = false // `contact.language` has changed
			}
		}
	}
	r.conv.Attempts = 0
	r.leave(step)
}

func (r *run) speaks(lang string) bool { return speaks(r.flow, lang) }

func (r *run) setVar(name string, v any) {
	r.conv.Vars[name] = v
	if r.envOK {
		r.env[name] = v
	}
}

// leave finishes a step that has had its answer (or its wait, or its
// handoff): it applies `set` and follows `next`.
func (r *run) leave(step *flows.Step) {
	r.applySet(step)
	if step.End {
		r.end("")
		return
	}
	next, edge := r.route(step)
	if next == nil {
		r.end("no route")
		return
	}
	r.enter(next, edge)
}

// enter moves the conversation into step and runs steps until one pauses.
func (r *run) enter(step *flows.Step, edge *flows.Edge) {
	for hops := 0; step != nil; hops++ {
		if hops == maxHops {
			r.event(EventExprError, step.ID, "failed", "too many steps without a question")
			r.handoff("front-desk")
			return
		}
		r.conv.Step, r.conv.PromptSent, r.conv.Attempts = step.ID, false, 0
		if !r.conv.TimerDue.IsZero() || r.timers != nil {
			r.timers, r.timersDirty, r.conv.TimerDue = nil, true, time.Time{}
		}
		r.event(EventStepChange, step.ID, "ok", "")
		if r.e.observe != nil {
			r.e.observe(r.conv, step, edge)
		}
		if step.Sensitive && r.conv.Secure != SecureOpen {
			r.sendLink(true)
			return
		}
		if !step.Sensitive && r.conv.Secure != SecureNone && !r.conv.StaySecure && r.flow.Secure.Return != "stay" {
			r.closeSecure()
		}
		step, edge = r.body(step)
	}
}

// body runs a step's own work; it returns the step to move to, or nil when
// the conversation pauses here or ends.
func (r *run) body(step *flows.Step) (*flows.Step, *flows.Edge) {
	for _, m := range step.Say {
		r.send(step, m, nil, "")
	}
	now := r.now()
	switch {
	case step.Ask != nil:
		r.prompt(step)
		if a := step.Ask; a.Timeout > 0 {
			if a.Reminder != nil {
				r.addTimer(TimerReminder, now.Add(a.RemindAfter))
			}
			r.addTimer(TimerTimeout, now.Add(a.Timeout))
		}
		return nil, nil
	case step.Wait > 0:
		r.conv.Status = Waiting
		r.addTimer(TimerWait, now.Add(step.Wait))
		return nil, nil
	case step.Handoff != "":
		r.handoff(step.Handoff)
		return nil, nil
	}
	r.applySet(step)
	if step.End {
		r.end("")
		return nil, nil
	}
	next, edge := r.route(step)
	if next == nil {
		r.end("no route")
	}
	return next, edge
}

func (r *run) addTimer(kind TimerKind, due time.Time) {
	r.timers = append(r.timers, Timer{ConversationID: r.conv.ID, Kind: kind, Step: r.conv.Step, Due: due})
	r.timersDirty = true
	if r.conv.TimerDue.IsZero() || due.Before(r.conv.TimerDue) {
		r.conv.TimerDue = due
	}
}

// prompt asks the step's question, with its choices.
func (r *run) prompt(step *flows.Step) {
	r.send(step, step.Ask.Prompt, step.Ask, step.Ask.Type)
	r.conv.PromptSent = true
}

func (r *run) applySet(step *flows.Step) {
	for _, a := range step.Set {
		v, err := r.eval(a.Expr)
		if err != nil {
			r.event(EventExprError, step.ID, "failed", "set "+a.Var+": "+safeErr(err))
			continue
		}
		r.setVar(a.Var, v)
	}
}

// route picks the first `next` entry whose guard holds. A guard that fails
// at run time is recorded and counts as false.
func (r *run) route(step *flows.Step) (*flows.Step, *flows.Edge) {
	for _, rt := range step.Next {
		if rt.When != nil {
			v, err := r.eval(rt.When)
			if err != nil {
				r.event(EventExprError, step.ID, "failed", "when: "+safeErr(err))
				continue
			}
			if ok, _ := v.(bool); !ok {
				continue
			}
		}
		t := r.flow.Step(rt.Goto)
		if r.e.observe == nil {
			return t, nil // only an observer needs to know the edge
		}
		return t, &flows.Edge{From: step, To: t, Kind: flows.EdgeNext, Route: rt}
	}
	return nil, nil
}

// safeErr keeps an expression error's message but drops anything that
// could echo a value: expr errors quote source and types, not data.
func safeErr(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

func (r *run) handoff(queue string) {
	r.conv.Status, r.conv.Queue = HandedOff, queue
	r.event(EventHandoff, queue, "ok", "")
}

func (r *run) end(reason string) {
	if r.conv == nil || r.conv.Status == Ended {
		return
	}
	if r.conv.Secure == SecureOpen {
		r.sendSystem(Secure, "ended")
	}
	r.conv.Status, r.conv.Secure = Ended, SecureNone
	if !r.conv.TimerDue.IsZero() || r.timers != nil {
		r.timers, r.timersDirty, r.conv.TimerDue = nil, true, time.Time{}
	}
	r.event(EventEnded, r.conv.Step, "ok", reason)
}

// fire acts on a due timer.
func (r *run) fire(t Timer) {
	step := r.step()
	if step == nil || t.Step != r.conv.Step {
		return // stale: the conversation has moved on
	}
	r.conv.TimerDue = time.Time{}
	switch t.Kind {
	case TimerReminder:
		if step.Ask != nil && step.Ask.Timeout > 0 {
			// The question's timeout is still pending: keep it known, so
			// that leaving the step clears it.
			r.conv.TimerDue = t.Due.Add(step.Ask.Timeout - step.Ask.RemindAfter)
		}
		if r.conv.Status != Active || step.Ask == nil || step.Ask.Reminder == nil {
			return
		}
		if step.Sensitive && r.conv.Secure != SecureOpen {
			r.sendLink(false)
			return
		}
		r.send(step, step.Ask.Reminder, step.Ask, step.Ask.Type)
	case TimerTimeout:
		if r.conv.Status != Active || step.Ask == nil {
			return
		}
		r.event(EventTimeout, step.ID, "ok", "")
		if target := r.flow.Step(step.Ask.OnTimeout); target != nil {
			r.enter(target, &flows.Edge{From: step, To: target, Kind: flows.EdgeTimeout})
			return
		}
		r.end("question timed out")
	case TimerWait:
		if r.conv.Status != Waiting {
			return
		}
		r.conv.Status = Active
		r.leave(step)
	}
}

func (r *run) event(action, object, outcome, reason string) {
	r.eventOn(action, object, "", outcome, reason)
}

func (r *run) eventOn(action, object string, ch Channel, outcome, reason string) {
	id := ""
	if r.conv != nil {
		id = r.conv.ID
		if ch == "" {
			ch = r.conv.Origin
		}
	}
	actor := r.actor
	if actor == "" {
		actor = "system"
	}
	r.events = append(r.events, Event{Actor: actor, ActorID: r.actorID, Action: action, Object: object, ConversationID: id, Channel: ch,
		Outcome: outcome, Reason: reason, Source: r.source, RequestID: r.requestID, At: r.now()})
}

// flushConversation saves the conversation now.
func (r *run) flushConversation() error {
	r.conv.Updated = r.now()
	if err := r.tx.SaveConversation(r.ctx, r.conv); err != nil {
		return fmt.Errorf("save conversation: %w", err)
	}
	return nil
}

// flush writes everything the run produced.
func (r *run) flush() error {
	if r.contactDirty {
		if err := r.tx.SaveContact(r.ctx, r.contact); err != nil {
			return fmt.Errorf("save contact: %w", err)
		}
	}
	if r.conv != nil {
		if err := r.flushConversation(); err != nil {
			return err
		}
		for i := range r.lines {
			if r.lines[i].ConversationID == "" {
				r.lines[i].ConversationID = r.conv.ID
			}
		}
		for i := range r.events {
			if r.events[i].ConversationID == "" {
				r.events[i].ConversationID = r.conv.ID
			}
		}
		if r.timersDirty {
			for i := range r.timers {
				r.timers[i].ConversationID = r.conv.ID
			}
			if err := r.tx.SetTimers(r.ctx, r.conv.ID, r.timers); err != nil {
				return fmt.Errorf("set timers: %w", err)
			}
		}
	} else {
		r.lines = nil // no conversation: nothing to file the lines under
	}
	if err := r.tx.Append(r.ctx, r.lines, r.out, r.events); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	r.res.Out = append(r.res.Out, r.out...)
	r.res.Conversation = r.conv
	return nil
}

// speaks reports whether a flow has text in a language.
func speaks(f *flows.Flow, lang string) bool {
	if lang == f.Language {
		return true
	}
	for _, l := range f.Languages {
		if l == lang {
			return true
		}
	}
	return false
}

// Identity data a patient may volunteer where it was not asked for.
var (
	ssnRe = regexp.MustCompile(`\b\d{3}[- ]\d{2}[- ]\d{4}\b`)
	dobRe = regexp.MustCompile(`\b\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)\d{2}\b|\b(?:19|20)\d{2}-\d{1,2}-\d{1,2}\b`)
)

// volunteers reports whether text holds an SSN or a full date (a likely
// date of birth) that the step's question does not ask for.
func volunteers(step *flows.Step, text string) bool {
	typ := ""
	if step.Ask != nil {
		typ = step.Ask.Type
	}
	if typ == flows.TypePattern {
		return false // the flow asks for a formatted value on purpose
	}
	return ssnRe.MatchString(text) || typ != flows.TypeDate && dobRe.MatchString(text)
}
