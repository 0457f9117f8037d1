// Package memstore is an in-memory engine.Store, for tests, `safeflow chat`
// and `safeflow test`. Transactions run one at a time and either apply
// whole or not at all.
package memstore

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/safeflow/safeflow/engine"
)

// Store keeps everything in memory.
type Store struct {
	mu       sync.Mutex
	seq      int64
	inbound  map[string]bool
	contacts map[string]*engine.Contact
	byAddr   map[string]string
	convs    map[string]*engine.Conversation
	open     map[string]string // contact id → open conversation id
	timers   map[int64]engine.Timer
	lines    []engine.TranscriptLine
	outbox   []*engine.Outbound
	events   []engine.Event
	links    []engine.SecureLink
}

// New returns an empty store.
func New() *Store {
	return &Store{inbound: map[string]bool{}, contacts: map[string]*engine.Contact{}, byAddr: map[string]string{},
		convs: map[string]*engine.Conversation{}, open: map[string]string{}, timers: map[int64]engine.Timer{}}
}

// Tx runs fn with the store locked; its writes apply only if fn succeeds.
func (s *Store) Tx(ctx context.Context, fn func(engine.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &tx{s: s, contacts: map[string]*engine.Contact{}, convs: map[string]*engine.Conversation{},
		inbound: map[string]bool{}, timers: map[string][]engine.Timer{}, deleted: map[int64]bool{}, seq: s.seq}
	if err := fn(t); err != nil {
		return err
	}
	t.commit()
	return nil
}

// tx stages writes until commit.
type tx struct {
	s        *Store
	seq      int64
	inbound  map[string]bool
	contacts map[string]*engine.Contact
	convs    map[string]*engine.Conversation
	timers   map[string][]engine.Timer
	deleted  map[int64]bool
	lines    []engine.TranscriptLine
	out      []*engine.Outbound
	events   []engine.Event
	links    []engine.SecureLink
}

func (t *tx) id(prefix string) string {
	t.seq++
	return prefix + strconv.FormatInt(t.seq, 10)
}

func (t *tx) MarkInbound(_ context.Context, ch engine.Channel, providerID string) (bool, error) {
	key := string(ch) + "\x00" + providerID
	if t.s.inbound[key] || t.inbound[key] {
		return false, nil
	}
	t.inbound[key] = true
	return true, nil
}

func (t *tx) ContactByAddress(ctx context.Context, ch engine.Channel, address string) (*engine.Contact, error) {
	for _, c := range t.contacts {
		if c.Channel == ch && c.Address == address {
			return copyContact(c), nil
		}
	}
	id, ok := t.s.byAddr[string(ch)+"\x00"+address]
	if !ok {
		return nil, engine.ErrNotFound
	}
	return t.Contact(ctx, id)
}

func (t *tx) Contact(_ context.Context, id string) (*engine.Contact, error) {
	if c, ok := t.contacts[id]; ok {
		return copyContact(c), nil
	}
	if c, ok := t.s.contacts[id]; ok {
		return copyContact(c), nil
	}
	return nil, engine.ErrNotFound
}

func (t *tx) SaveContact(_ context.Context, c *engine.Contact) error {
	if c.ID == "" {
		c.ID = t.id("ct")
	}
	t.contacts[c.ID] = copyContact(c)
	return nil
}

func (t *tx) OpenConversation(ctx context.Context, contactID string) (*engine.Conversation, error) {
	for _, c := range t.convs {
		if c.ContactID == contactID && c.Status != engine.Ended {
			return copyConv(c), nil
		}
	}
	id, ok := t.s.open[contactID]
	if !ok {
		return nil, engine.ErrNotFound
	}
	if staged, ok := t.convs[id]; ok && staged.Status == engine.Ended {
		return nil, engine.ErrNotFound
	}
	return t.Conversation(ctx, id)
}

func (t *tx) Conversation(_ context.Context, id string) (*engine.Conversation, error) {
	if c, ok := t.convs[id]; ok {
		return copyConv(c), nil
	}
	if c, ok := t.s.convs[id]; ok {
		return copyConv(c), nil
	}
	return nil, engine.ErrNotFound
}

func (t *tx) SaveConversation(_ context.Context, c *engine.Conversation) error {
	if c.ID == "" {
		c.ID = t.id("cv")
	}
	t.convs[c.ID] = copyConv(c)
	return nil
}

func (t *tx) Append(_ context.Context, lines []engine.TranscriptLine, out []*engine.Outbound, events []engine.Event) error {
	t.lines = append(t.lines, lines...)
	for _, o := range out {
		t.seq++
		o.ID = t.seq
		c := *o
		t.out = append(t.out, &c)
	}
	t.events = append(t.events, events...)
	return nil
}

func (t *tx) SetTimers(_ context.Context, conversationID string, timers []engine.Timer) error {
	list := make([]engine.Timer, len(timers))
	for i, tm := range timers {
		t.seq++
		tm.ID = t.seq
		list[i] = tm
	}
	t.timers[conversationID] = list
	return nil
}

func (t *tx) DueTimers(_ context.Context, now time.Time, limit int) ([]engine.Timer, error) {
	var due []engine.Timer
	for _, tm := range t.s.timers {
		if !tm.Due.After(now) && !t.deleted[tm.ID] {
			due = append(due, tm)
		}
	}
	slices.SortFunc(due, func(a, b engine.Timer) int { return a.Due.Compare(b.Due) })
	if len(due) > limit {
		due = due[:limit]
	}
	return due, nil
}

func (t *tx) DeleteTimer(_ context.Context, id int64) error {
	t.deleted[id] = true
	return nil
}

func (t *tx) SaveLink(_ context.Context, l engine.SecureLink) error {
	t.links = append(t.links, l)
	return nil
}

func (t *tx) commit() {
	s := t.s
	s.seq = t.seq
	maps.Copy(s.inbound, t.inbound)
	for id, c := range t.contacts {
		s.contacts[id] = c
		s.byAddr[string(c.Channel)+"\x00"+c.Address] = id
	}
	for id, c := range t.convs {
		s.convs[id] = c
		if c.Status == engine.Ended {
			if s.open[c.ContactID] == id {
				delete(s.open, c.ContactID)
			}
		} else {
			s.open[c.ContactID] = id
		}
	}
	for id := range t.deleted {
		delete(s.timers, id)
	}
	for conv, list := range t.timers {
		for id, tm := range s.timers {
			if tm.ConversationID == conv {
				delete(s.timers, id)
			}
		}
		for _, tm := range list {
			s.timers[tm.ID] = tm
		}
	}
	s.lines = append(s.lines, t.lines...)
	s.outbox = append(s.outbox, t.out...)
	s.events = append(s.events, t.events...)
	s.links = append(s.links, t.links...)
}

func copyContact(c *engine.Contact) *engine.Contact {
	n := *c
	return &n
}

func copyConv(c *engine.Conversation) *engine.Conversation {
	n := *c
	n.Vars = maps.Clone(c.Vars)
	if n.Vars == nil {
		n.Vars = map[string]any{}
	}
	return &n
}

// Transcript returns a conversation's lines in order.
func (s *Store) Transcript(conversationID string) []engine.TranscriptLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []engine.TranscriptLine
	for _, l := range s.lines {
		if l.ConversationID == conversationID {
			out = append(out, l)
		}
	}
	return out
}

// Outbox returns every outbound message written, in order.
func (s *Store) Outbox() []*engine.Outbound {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.outbox)
}

// Events returns every event written, in order.
func (s *Store) Events() []engine.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// Links returns every secure link issued.
func (s *Store) Links() []engine.SecureLink {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.links)
}

// Conversation returns a copy of a conversation, or nil.
func (s *Store) Conversation(id string) *engine.Conversation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.convs[id]; ok {
		return copyConv(c)
	}
	return nil
}

// Timers returns the pending timers, earliest first.
func (s *Store) Timers() []engine.Timer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.timers))
	slices.SortFunc(out, func(a, b engine.Timer) int { return a.Due.Compare(b.Due) })
	return out
}
