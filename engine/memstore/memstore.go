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
	inbound  map[inboundKey]bool
	contacts map[string]*engine.Contact
	byAddr   map[addrKey]string
	convs    map[string]*engine.Conversation
	open     map[string]string // contact id → open conversation id
	timers   map[int64]engine.Timer
	// convTimers indexes timers by conversation, so that replacing one
	// conversation's timers does not scan every timer.
	convTimers map[string][]int64
	// The logs are append-only. A transaction appends to them directly
	// and a rollback cuts them back to where it began.
	lines  chunks[engine.TranscriptLine]
	outbox chunks[engine.Outbound]
	events chunks[engine.Event]
	links  []engine.SecureLink
	// tx is reused by every transaction: only one runs at a time, and
	// reusing its maps keeps a transaction from allocating them anew.
	tx tx
}

// inboundKey identifies a provider message on a channel.
type inboundKey struct {
	ch engine.Channel
	id string
}

// addrKey identifies a contact by channel and address.
type addrKey struct {
	ch   engine.Channel
	addr string
}

// New returns an empty store.
func New() *Store {
	s := &Store{inbound: map[inboundKey]bool{}, contacts: map[string]*engine.Contact{}, byAddr: map[addrKey]string{},
		convs: map[string]*engine.Conversation{}, open: map[string]string{}, timers: map[int64]engine.Timer{},
		convTimers: map[string][]int64{}}
	s.tx = tx{s: s, contacts: map[string]*engine.Contact{}, convs: map[string]*engine.Conversation{},
		inbound: map[inboundKey]bool{}, timers: map[string][]engine.Timer{}, deleted: map[int64]bool{}}
	return s
}

// Tx runs fn with the store locked; its writes apply only if fn succeeds.
func (s *Store) Tx(ctx context.Context, fn func(engine.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &s.tx
	t.reset()
	err := fn(t)
	if err == nil {
		t.commit()
	} else {
		s.lines.truncate(t.marks[0])
		s.outbox.truncate(t.marks[1])
		s.events.truncate(t.marks[2])
	}
	// Drop the staged writes either way, so that nothing they point to
	// outlives the transaction.
	t.reset()
	return err
}

// tx stages writes until commit.
type tx struct {
	s        *Store
	seq      int64
	inbound  map[inboundKey]bool
	contacts map[string]*engine.Contact
	convs    map[string]*engine.Conversation
	timers   map[string][]engine.Timer
	deleted  map[int64]bool
	links    []engine.SecureLink
	// marks are the lengths of the logs when the transaction began.
	marks [3]int
}

func (t *tx) reset() {
	t.seq = t.s.seq
	clear(t.inbound)
	clear(t.contacts)
	clear(t.convs)
	clear(t.timers)
	clear(t.deleted)
	t.links = nil
	t.marks = [3]int{t.s.lines.n, t.s.outbox.n, t.s.events.n}
}

func (t *tx) id(prefix string) string {
	t.seq++
	return prefix + strconv.FormatInt(t.seq, 10)
}

func (t *tx) MarkInbound(_ context.Context, ch engine.Channel, providerID string) (bool, error) {
	key := inboundKey{ch, providerID}
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
	id, ok := t.s.byAddr[addrKey{ch, address}]
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

// Append copies the records into the logs: the caller keeps its slices and
// may reuse them. Outbound messages get their ids here, as outbox rows do.
func (t *tx) Append(_ context.Context, lines []engine.TranscriptLine, out []*engine.Outbound, events []engine.Event) error {
	t.s.lines.append(lines...)
	for _, o := range out {
		t.seq++
		o.ID = t.seq
		t.s.outbox.append(*o)
	}
	t.s.events.append(events...)
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
	slices.SortFunc(due, func(a, b engine.Timer) int {
		if c := a.Due.Compare(b.Due); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
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
		if old, ok := s.contacts[id]; ok && (old.Channel != c.Channel || old.Address != c.Address) {
			delete(s.byAddr, addrKey{old.Channel, old.Address})
		}
		s.contacts[id] = c
		s.byAddr[addrKey{c.Channel, c.Address}] = id
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
		if tm, ok := s.timers[id]; ok {
			delete(s.timers, id)
			s.convTimers[tm.ConversationID] = slices.DeleteFunc(s.convTimers[tm.ConversationID],
				func(x int64) bool { return x == id })
		}
	}
	for conv, list := range t.timers {
		for _, id := range s.convTimers[conv] {
			delete(s.timers, id)
		}
		delete(s.convTimers, conv)
		for _, tm := range list {
			s.timers[tm.ID] = tm
			s.convTimers[conv] = append(s.convTimers[conv], tm.ID)
		}
	}
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

// chunkSize is how many records one chunk of a log holds.
const chunkSize = 1024

// chunks is an append-only log kept in fixed-size chunks: appending never
// copies what is already there, as one ever-growing slice would.
type chunks[T any] struct {
	list [][]T
	n    int
}

func (c *chunks[T]) append(items ...T) {
	for len(items) > 0 {
		if k := len(c.list); k == 0 || len(c.list[k-1]) == chunkSize {
			c.list = append(c.list, make([]T, 0, chunkSize))
		}
		last := &c.list[len(c.list)-1]
		n := min(chunkSize-len(*last), len(items))
		*last = append(*last, items[:n]...)
		items = items[n:]
		c.n += n
	}
}

// truncate cuts the log back to its first n records.
func (c *chunks[T]) truncate(n int) {
	var zero T
	for c.n > n {
		last := &c.list[len(c.list)-1]
		k := min(len(*last), c.n-n)
		for i := len(*last) - k; i < len(*last); i++ {
			(*last)[i] = zero // let the garbage collector have what they held
		}
		*last = (*last)[:len(*last)-k]
		c.n -= k
		if len(*last) == 0 {
			c.list = c.list[:len(c.list)-1]
		}
	}
}

// all returns a copy of every record, in order.
func (c *chunks[T]) all() []T {
	out := make([]T, 0, c.n)
	for _, ch := range c.list {
		out = append(out, ch...)
	}
	return out
}

// Transcript returns a conversation's lines in order.
func (s *Store) Transcript(conversationID string) []engine.TranscriptLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []engine.TranscriptLine
	for _, ch := range s.lines.list {
		for _, l := range ch {
			if l.ConversationID == conversationID {
				out = append(out, l)
			}
		}
	}
	return out
}

// Outbox returns every outbound message written, in order.
func (s *Store) Outbox() []*engine.Outbound {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*engine.Outbound, 0, s.outbox.n)
	for _, ch := range s.outbox.list {
		for i := range ch {
			// Copies: a caller may change what it gets, never the store.
			o := ch[i]
			out = append(out, &o)
		}
	}
	return out
}

// Events returns every event written, in order.
func (s *Store) Events() []engine.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events.all()
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

// Contact returns a copy of a contact, or nil.
func (s *Store) Contact(id string) *engine.Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.contacts[id]; ok {
		return copyContact(c)
	}
	return nil
}

// Timers returns the pending timers, earliest first.
func (s *Store) Timers() []engine.Timer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.timers))
	slices.SortFunc(out, func(a, b engine.Timer) int {
		if c := a.Due.Compare(b.Due); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	return out
}
