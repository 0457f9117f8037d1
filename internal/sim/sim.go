// Package sim runs flows with no server: the engine over the in-memory
// store, a clock that moves only when told, and a link issuer that hands
// out readable test links. `safeflow chat` and `safeflow test` use it.
package sim

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/engine/memstore"
)

// Clock is a clock that moves only when told.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Links issues numbered links under a base URL and remembers which
// conversation each belongs to.
type Links struct {
	Base string
	mu   sync.Mutex
	n    int
	// Issued maps each URL to its conversation.
	Issued map[string]string
}

// IssueLink implements engine.LinkIssuer.
func (l *Links) IssueLink(ctx context.Context, tx engine.Tx, conv *engine.Conversation, ttl time.Duration) (string, error) {
	l.mu.Lock()
	l.n++
	url := fmt.Sprintf("%s/s/link-%d", l.Base, l.n)
	if l.Issued == nil {
		l.Issued = map[string]string{}
	}
	l.Issued[url] = conv.ID
	l.mu.Unlock()
	hash := sha256.Sum256([]byte(url))
	err := tx.SaveLink(ctx, engine.SecureLink{TokenHash: hash[:], ConversationID: conv.ID, ContactID: conv.ContactID,
		Created: time.Now(), Expires: time.Now().Add(ttl)})
	return url, err
}

// Count returns how many links were issued.
func (l *Links) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// Sim is one simulated contact talking to the engine.
type Sim struct {
	Engine  *engine.Engine
	Store   *memstore.Store
	Clock   *Clock
	Links   *Links
	Channel engine.Channel
	Address string
	// Conversation is the id of the contact's latest conversation.
	Conversation string
	n            int
}

// New returns a simulator for one contact on a channel.
func New(fl engine.Flows, ch engine.Channel, start time.Time, opts ...engine.Option) *Sim {
	s := &Sim{Store: memstore.New(), Clock: NewClock(start), Links: &Links{Base: "https://secure.clinic.test"},
		Channel: ch, Address: "+15555550100"}
	if ch == engine.Messenger {
		s.Address = "PSID-1000"
	}
	// The same guard as `safeflow serve`, so tests and chats behave as the
	// service does.
	all := append([]engine.Option{engine.WithClock(s.Clock.Now), engine.WithLinkIssuer(s.Links),
		engine.WithLocation(start.Location()), engine.WithIdentityGuard(true)}, opts...)
	s.Engine = engine.New(fl, s.Store, all...)
	return s
}

// Send delivers a message from the contact on a channel (Secure: typed on
// the secure page).
func (s *Sim) Send(ctx context.Context, ch engine.Channel, text string) (*engine.Result, error) {
	s.n++
	in := engine.Inbound{Channel: ch, Text: text, ProviderID: fmt.Sprintf("sim-%d", s.n)}
	if ch == engine.Secure {
		in.ConversationID = s.Conversation
	} else {
		in.Address = s.Address
	}
	res, err := s.Engine.Handle(ctx, in)
	s.track(res)
	return res, err
}

// Start begins a flow at the clinic's initiative, optionally mid-flow.
func (s *Sim) Start(ctx context.Context, flowID, step string, vars map[string]any) (*engine.Result, error) {
	res, err := s.Engine.Start(ctx, flowID, s.Channel, s.Address, step, vars)
	s.track(res)
	return res, err
}

// OpenLink opens the secure page of the current conversation, answering the
// identity check with answer when the flow has one.
func (s *Sim) OpenLink(ctx context.Context, answer string) (*engine.Result, error) {
	ok, err := s.Engine.CheckIdentity(ctx, s.Conversation, answer)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("the identity check failed")
	}
	res, err := s.Engine.SecureOpened(ctx, s.Conversation)
	s.track(res)
	return res, err
}

// Advance moves the clock on and fires the timers that fall due.
func (s *Sim) Advance(ctx context.Context, d time.Duration) ([]*engine.Outbound, error) {
	s.Clock.Advance(d)
	results, err := s.Engine.Tick(ctx)
	var out []*engine.Outbound
	for _, r := range results {
		s.track(r)
		out = append(out, r.Out...)
	}
	return out, err
}

// HandBack returns a handed-off conversation to the bot.
func (s *Sim) HandBack(ctx context.Context) (*engine.Result, error) {
	res, err := s.Engine.HandBack(ctx, s.Conversation, "agent")
	s.track(res)
	return res, err
}

func (s *Sim) track(res *engine.Result) {
	if res != nil && res.Conversation != nil {
		s.Conversation = res.Conversation.ID
	}
}

// Current returns the contact's latest conversation, or nil.
func (s *Sim) Current() *engine.Conversation {
	if s.Conversation == "" {
		return nil
	}
	return s.Store.Conversation(s.Conversation)
}
