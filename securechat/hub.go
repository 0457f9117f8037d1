package securechat

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/lib/pq"

	"github.com/safeflow/safeflow/engine"
)

// NotifyChannel is the PostgreSQL channel on which nodes tell each other
// that a conversation has new secure messages. The payload is the
// conversation id and nothing else; each node reads the messages from the
// store.
const NotifyChannel = "safeflow_secure"

// Hub pushes secure messages to the pages that show them. It implements
// engine.Sender for the Secure channel, so the outbox worker delivers
// secure messages through it. A push only wakes the conversation's open
// pages, which then read what is new from the store: a message is never
// lost when no page is open, and the same wake-up works across nodes.
type Hub struct {
	notify func(ctx context.Context, channel, payload string) error
	log    *slog.Logger

	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

var _ engine.Sender = (*Hub)(nil)

// NewHub returns a hub. notify, when not nil, tells the other nodes (the
// store's Notify: pg_notify on PostgreSQL, nothing on SQLite).
func NewHub(notify func(ctx context.Context, channel, payload string) error, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{notify: notify, log: log, subs: map[string]map[chan struct{}]struct{}{}}
}

// Send implements engine.Sender: it wakes the pages of the message's
// conversation, on this node and, through the store, on the others. The
// message itself is already in the transcript. It returns an id made from
// the outbox position, and fails permanently for another channel.
func (h *Hub) Send(ctx context.Context, m *engine.Outbound) (string, error) {
	if m.Channel != engine.Secure {
		return "", fmt.Errorf("secure chat cannot send on channel %q: %w", m.Channel, engine.ErrPermanent)
	}
	if err := h.Publish(ctx, m.ConversationID); err != nil {
		return "", err
	}
	return "secure-" + strconv.FormatInt(m.ID, 10), nil
}

// Publish wakes the open pages of a conversation on every node.
func (h *Hub) Publish(ctx context.Context, conversationID string) error {
	h.Wake(conversationID)
	if h.notify == nil {
		return nil
	}
	return h.notify(ctx, NotifyChannel, conversationID)
}

// Wake wakes the open pages of a conversation on this node.
func (h *Hub) Wake(conversationID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[conversationID] {
		poke(ch)
	}
}

// wakeAll wakes every open page on this node.
func (h *Hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		for ch := range subs {
			poke(ch)
		}
	}
}

// poke signals ch without blocking: one pending wake-up is enough, since a
// woken page reads everything new.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Subscribe returns a channel that receives a value when the conversation
// may have new messages, and a function that stops the subscription.
func (h *Hub) Subscribe(conversationID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[conversationID] == nil {
		h.subs[conversationID] = map[chan struct{}]struct{}{}
	}
	h.subs[conversationID][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[conversationID], ch)
		if len(h.subs[conversationID]) == 0 {
			delete(h.subs, conversationID)
		}
	}
}

// Listen listens on PostgreSQL at dsn for other nodes' notifications and
// wakes the pages they name, until ctx ends. After a lost connection it
// reconnects and wakes every page, since notifications may have been
// missed meanwhile.
func (h *Hub) Listen(ctx context.Context, dsn string) error {
	l := pq.NewListener(dsn, time.Second, time.Minute, func(ev pq.ListenerEventType, err error) {
		if err != nil {
			h.log.Warn("secure chat: notification listener", "event", int(ev), "err", err.Error())
		}
	})
	defer l.Close()
	if err := l.Listen(NotifyChannel); err != nil {
		return fmt.Errorf("listen on %s: %w", NotifyChannel, err)
	}
	idle := time.NewTicker(time.Minute)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-l.Notify:
			if n == nil {
				h.wakeAll()
				continue
			}
			h.Wake(n.Extra)
		case <-idle.C:
			// A connection that died quietly is only noticed when used.
			go l.Ping()
		}
	}
}
