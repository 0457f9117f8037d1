package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/safeflow/safeflow/engine/answer"
	"github.com/safeflow/safeflow/flows"
)

// Flows gives the engine the flows it runs.
type Flows interface {
	// Flow returns the current version of a flow, or nil.
	Flow(id string) *flows.Flow
	// Version returns the flow version with the given content hash, or nil
	// when it is not known (the engine then uses the current version).
	Version(id, hash string) *flows.Flow
	// ByKeyword returns the flow a trigger keyword starts, or nil.
	ByKeyword(word string) *flows.Flow
	// Default returns the flow that starts for a new contact, or nil.
	Default() *flows.Flow
}

// LinkIssuer issues one-time secure links. The token's hash is stored
// through tx, in the same transaction as the message that carries it.
type LinkIssuer interface {
	IssueLink(ctx context.Context, tx Tx, conv *Conversation, ttl time.Duration) (url string, err error)
}

// Engine runs conversations.
type Engine struct {
	flows    Flows
	store    Store
	links    LinkIssuer
	now      func() time.Time
	loc      *time.Location
	order    answer.DateOrder
	region   string
	log      *slog.Logger
	resend   time.Duration
	maxLinks int
	helpers  map[string]any
	observe  func(*Conversation, *flows.Step, *flows.Edge)
	guard    bool
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the engine's clock, for tests and timers.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithLocation sets the clinic's time zone, used to read dates.
func WithLocation(loc *time.Location) Option { return func(e *Engine) { e.loc = loc } }

// WithDateOrder sets how numeric dates such as 3/4 are read.
func WithDateOrder(o answer.DateOrder) Option { return func(e *Engine) { e.order = o } }

// WithRegion sets the phone region for numbers given without a country code.
func WithRegion(r string) Option { return func(e *Engine) { e.region = r } }

// WithLinkIssuer sets the issuer of secure links.
func WithLinkIssuer(l LinkIssuer) Option { return func(e *Engine) { e.links = l } }

// WithLogger sets the logger. Log records never hold message text.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithLinkResend sets how often, and how many times per sensitive segment,
// a patient who answers on SMS instead of the secure page gets a fresh link.
func WithLinkResend(every time.Duration, max int) Option {
	return func(e *Engine) { e.resend, e.maxLinks = every, max }
}

// WithIdentityGuard moves a conversation to the secure page when a patient
// writes an SSN or a full date (a likely date of birth) on SMS or Messenger
// where the question does not ask for one (SECURITY.md #6, fail closed).
func WithIdentityGuard(on bool) Option { return func(e *Engine) { e.guard = on } }

// WithObserver sets a function called for every step entered and every edge
// taken, for coverage reports. edge is nil when no edge led to the step.
func WithObserver(fn func(conv *Conversation, step *flows.Step, edge *flows.Edge)) Option {
	return func(e *Engine) { e.observe = fn }
}

// New returns an engine over a set of flows and a store.
func New(fl Flows, store Store, opts ...Option) *Engine {
	e := &Engine{flows: fl, store: store, now: time.Now, loc: time.Local, region: "US",
		log: slog.New(slog.DiscardHandler), resend: 2 * time.Minute, maxLinks: 3}
	for _, o := range opts {
		o(e)
	}
	e.helpers = flows.Helpers(e.clock)
	return e
}

func (e *Engine) clock() time.Time { return e.now().In(e.loc) }

// Result is what handling one message or action produced.
type Result struct {
	// Out lists the messages to send, in order; they are also in the outbox.
	Out []*Outbound
	// Conversation is the conversation after the change, or nil.
	Conversation *Conversation
	// Duplicate is true when the provider message id was seen before and
	// nothing was done.
	Duplicate bool
}

// ErrNoConversation is returned for an action on a conversation that does
// not exist or has ended.
var ErrNoConversation = errors.New("no such open conversation")

// Handle applies one inbound message to its conversation.
func (e *Engine) Handle(ctx context.Context, in Inbound) (*Result, error) {
	res := &Result{}
	var r *run
	err := e.store.Tx(ctx, func(tx Tx) error {
		*res = Result{}
		r.release() // when the store retries the transaction
		r = nil
		var found *foundContact
		if in.ProviderID != "" {
			fresh, f, err := markInbound(ctx, tx, in)
			if err != nil {
				return fmt.Errorf("mark inbound: %w", err)
			}
			if !fresh {
				res.Duplicate = true
				return nil
			}
			found = f
		}
		var err error
		if r, err = e.load(ctx, tx, in, found); err != nil {
			return err
		}
		r.res, r.source, r.requestID = res, in.Source, in.RequestID
		r.actor, r.actorID = "contact", r.contact.ID
		if err := r.inbound(in); err != nil {
			return err
		}
		return r.flush()
	})
	r.release()
	if err != nil {
		return nil, err
	}
	return res, nil
}

// foundContact is the sender's contact as InboundFinder found it: nil when
// there is none yet.
type foundContact struct{ c *Contact }

// markInbound records the message's provider id. When the store can, it
// finds the sender's contact in the same step and returns it.
func markInbound(ctx context.Context, tx Tx, in Inbound) (bool, *foundContact, error) {
	if f, ok := tx.(InboundFinder); ok && in.Channel.IsOrigin() {
		fresh, c, err := f.MarkInboundFind(ctx, in.Channel, in.ProviderID, in.Address)
		return fresh, &foundContact{c}, err
	}
	fresh, err := tx.MarkInbound(ctx, in.Channel, in.ProviderID)
	return fresh, nil, err
}

// load finds or creates the contact and loads (and locks) its conversation.
// found, when not nil, is the contact markInbound already found. The run
// it returns comes from the pool: the caller releases it.
func (e *Engine) load(ctx context.Context, tx Tx, in Inbound, found *foundContact) (*run, error) {
	if in.Channel == Secure {
		conv, err := tx.Conversation(ctx, in.ConversationID)
		if err != nil {
			return nil, fmt.Errorf("load conversation: %w", err)
		}
		contact, err := tx.Contact(ctx, conv.ContactID)
		if err != nil {
			return nil, fmt.Errorf("load contact: %w", err)
		}
		return e.runOn(ctx, tx, contact, conv)
	}
	if !in.Channel.IsOrigin() {
		return nil, fmt.Errorf("unknown channel %q", in.Channel)
	}
	var contact *Contact
	var err error
	switch {
	case found == nil:
		contact, err = tx.ContactByAddress(ctx, in.Channel, in.Address)
	case found.c == nil:
		err = ErrNotFound
	default:
		contact = found.c
	}
	switch {
	case errors.Is(err, ErrNotFound):
		contact = &Contact{Channel: in.Channel, Address: in.Address}
		if err := tx.SaveContact(ctx, contact); err != nil {
			return nil, fmt.Errorf("save contact: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("load contact: %w", err)
	}
	conv, err := tx.OpenConversation(ctx, contact.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		conv = nil
	case err != nil:
		return nil, fmt.Errorf("load conversation: %w", err)
	}
	return e.runOn(ctx, tx, contact, conv)
}

// runOn returns a pooled run on a contact and its conversation, if any.
func (e *Engine) runOn(ctx context.Context, tx Tx, contact *Contact, conv *Conversation) (*run, error) {
	r := e.newRun(ctx, tx)
	r.contact = contact
	if conv != nil {
		if err := r.attach(conv); err != nil {
			r.release()
			return nil, err
		}
	}
	return r, nil
}

// Start begins a flow for a contact at the clinic's initiative (for example
// an appointment confirmation), with the flow's declared variables. Any
// open conversation of the contact ends. An empty step starts at the start.
func (e *Engine) Start(ctx context.Context, flowID string, ch Channel, address, step string, vars map[string]any) (*Result, error) {
	f := e.flows.Flow(flowID)
	if f == nil {
		return nil, fmt.Errorf("start: no flow %q", flowID)
	}
	if step == "" {
		step = f.Start
	}
	if f.Step(step) == nil {
		return nil, fmt.Errorf("start: flow %q has no step %q", flowID, step)
	}
	res := &Result{}
	var r *run
	err := e.store.Tx(ctx, func(tx Tx) error {
		*res = Result{}
		r.release() // when the store retries the transaction
		var err error
		if r, err = e.load(ctx, tx, Inbound{Channel: ch, Address: address}, nil); err != nil {
			return err
		}
		r.res = res
		if r.contact.OptedOut {
			return fmt.Errorf("start: the contact has opted out")
		}
		if err := r.begin(f, ch); err != nil {
			return err
		}
		for k, v := range vars {
			if lang, ok := v.(string); ok && k == "language" {
				// The contact's language, whether or not the flow saves it.
				r.conv.Language = lang
				if f.Variables[k] == nil {
					continue
				}
			}
			if f.Variables[k] == nil {
				return fmt.Errorf("start: flow %q has no variable %q", flowID, k)
			}
			r.conv.Vars[k] = v
		}
		r.envOK = false
		r.enter(f.Step(step), nil)
		return r.flush()
	})
	r.release()
	if err != nil {
		return nil, err
	}
	return res, nil
}

// onConversation runs fn on a locked, open conversation in a transaction.
func (e *Engine) onConversation(ctx context.Context, id string, fn func(*run) error) (*Result, error) {
	res := &Result{}
	var r *run
	err := e.store.Tx(ctx, func(tx Tx) error {
		*res = Result{}
		r.release() // when the store retries the transaction
		r = nil
		conv, err := tx.Conversation(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return ErrNoConversation
		}
		if err != nil {
			return fmt.Errorf("load conversation: %w", err)
		}
		if conv.Status == Ended {
			return ErrNoConversation
		}
		contact, err := tx.Contact(ctx, conv.ContactID)
		if err != nil {
			return fmt.Errorf("load contact: %w", err)
		}
		if r, err = e.runOn(ctx, tx, contact, conv); err != nil {
			return err
		}
		r.res = res
		if err := fn(r); err != nil {
			return err
		}
		return r.flush()
	})
	r.release()
	if err != nil {
		return nil, err
	}
	return res, nil
}

// SecureOpened tells the engine that the patient has opened the secure page
// (the link was redeemed and any check passed): the waiting sensitive step
// now asks its question there.
func (e *Engine) SecureOpened(ctx context.Context, conversationID string) (*Result, error) {
	return e.onConversation(ctx, conversationID, func(r *run) error {
		if r.conv.Secure == SecureOpen {
			return nil // already open: the page has what it needs
		}
		if r.conv.Secure != SecurePending {
			// No link is out: nothing waits for the page.
			return ErrSecureClosed
		}
		r.conv.Secure = SecureOpen
		step := r.step()
		if step == nil || r.conv.Status != Active {
			return nil
		}
		switch {
		case !r.conv.PromptSent:
			// The step waited for the page: run it here, and go on from it
			// when it asks nothing (a sensitive `say` with a `next`).
			if next, edge := r.body(step); next != nil {
				r.enter(next, edge)
			}
		case step.Ask != nil:
			// An agent moved the chat here mid-question: ask it again on
			// the page, where the answer is now expected.
			r.prompt(step)
		}
		return nil
	})
}

// SecureClosed tells the engine that the secure session ended (the patient
// pressed "end chat" or it timed out). A sensitive question still waiting
// will need a new link.
func (e *Engine) SecureClosed(ctx context.Context, conversationID string) (*Result, error) {
	return e.onConversation(ctx, conversationID, func(r *run) error {
		if r.conv.Secure == SecureOpen {
			r.conv.Secure = SecurePending
			r.conv.PromptSent = false
			// The link was used up: the patient's next SMS gets a fresh one
			// at once, not a pointer to the spent link.
			r.conv.LinkSentAt = time.Time{}
		}
		return nil
	})
}

// ForceSecure moves a conversation to the secure channel now, at an agent's
// request: a link goes out on the origin channel, and the conversation stays
// on the secure page until it ends.
func (e *Engine) ForceSecure(ctx context.Context, conversationID, agent string) (*Result, error) {
	return e.onConversation(ctx, conversationID, func(r *run) error {
		r.actor, r.actorID = "agent", agent
		r.event(EventSwitchSecure, "", "ok", "")
		r.conv.StaySecure = true
		if r.conv.Secure == SecureOpen {
			return nil
		}
		r.sendLink(false)
		return nil
	})
}

// HandOff gives a conversation to the clinic's staff now, in queue: the bot
// stays quiet until an agent hands it back. actor names who asked ("system"
// or an agent's id).
func (e *Engine) HandOff(ctx context.Context, conversationID, queue, actor string) (*Result, error) {
	return e.onConversation(ctx, conversationID, func(r *run) error {
		r.actor, r.actorID = "system", actor
		if r.conv.Status == HandedOff {
			return nil
		}
		r.handoff(queue)
		return nil
	})
}

// HandBack returns a handed-off conversation to the bot, which moves on from
// the handoff step.
func (e *Engine) HandBack(ctx context.Context, conversationID, agent string) (*Result, error) {
	return e.onConversation(ctx, conversationID, func(r *run) error {
		r.actor, r.actorID = "agent", agent
		if r.conv.Status != HandedOff {
			return fmt.Errorf("hand back: the conversation is not handed off")
		}
		r.conv.Status = Active
		r.event(EventHandBack, "", "ok", "")
		step := r.step()
		if step == nil || step.Handoff == "" {
			// Handed off by a keyword or a failed question: ask again.
			if step != nil && step.Ask != nil {
				r.conv.Attempts = 0
				r.body(step)
				return nil
			}
			r.end("handed back")
			return nil
		}
		r.leave(step)
		return nil
	})
}

// Tick fires the timers due at the engine's clock: reminders, question
// timeouts and the end of waits. It returns what they produced.
func (e *Engine) Tick(ctx context.Context) ([]*Result, error) {
	var out []*Result
	for {
		var timers []Timer
		err := e.store.Tx(ctx, func(tx Tx) error {
			var err error
			timers, err = tx.DueTimers(ctx, e.now(), 100)
			return err
		})
		if err != nil {
			return out, fmt.Errorf("due timers: %w", err)
		}
		if len(timers) == 0 {
			return out, nil
		}
		for _, t := range timers {
			res, err := e.fire(ctx, t)
			if err != nil {
				return out, err
			}
			if res != nil {
				out = append(out, res)
			}
		}
	}
}

func (e *Engine) fire(ctx context.Context, t Timer) (*Result, error) {
	res, err := e.onConversation(ctx, t.ConversationID, func(r *run) error {
		if err := r.tx.DeleteTimer(ctx, t.ID); err != nil {
			return fmt.Errorf("delete timer: %w", err)
		}
		r.fire(t)
		return nil
	})
	if errors.Is(err, ErrNoConversation) {
		err = e.store.Tx(ctx, func(tx Tx) error { return tx.DeleteTimer(ctx, t.ID) })
		return nil, err
	}
	return res, err
}

// CheckIdentity runs the flow's knowledge check (secure.verify) on an
// answer typed on the secure page, before any content is shown. It reports
// whether the answer matches; a flow without a check always passes.
func (e *Engine) CheckIdentity(ctx context.Context, conversationID, text string) (bool, error) {
	ok := false
	_, err := e.onConversation(ctx, conversationID, func(r *run) error {
		v := r.flow.Secure.Verify
		if v == nil {
			ok = true
			return nil
		}
		typ := v.Type
		if typ == "" {
			typ = flows.TypeText
		}
		got, err := answer.Parse(typ, text, &answer.Options{Now: e.clock(), DateOrder: e.order, Region: e.region})
		if err != nil {
			return nil
		}
		want, err := r.eval(v.Equals)
		if err != nil {
			r.event(EventExprError, "verify", "failed", safeErr(err))
			return nil
		}
		ok = sameAnswer(got, want)
		return nil
	})
	return ok, err
}

// sameAnswer compares a parsed answer with the expected value: dates by
// calendar day, text without regard to case or surrounding space.
func sameAnswer(got, want any) bool {
	switch w := want.(type) {
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Year() == w.Year() && g.YearDay() == w.YearDay()
	case string:
		g, ok := got.(string)
		return ok && strings.EqualFold(strings.TrimSpace(g), strings.TrimSpace(w))
	case int:
		switch g := got.(type) {
		case int:
			return g == w
		case float64:
			return g == float64(w)
		}
	case float64:
		switch g := got.(type) {
		case int:
			return float64(g) == w
		case float64:
			return g == w
		}
	}
	return false
}
