package engine

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

// Store keeps contacts, conversations and everything written about them.
// Each inbound message is handled inside one transaction.
type Store interface {
	// Tx runs fn in one transaction and commits when fn returns nil; any
	// error rolls everything back. Transactions that touch one conversation
	// are serialised: on PostgreSQL with row locks (a message is first tried
	// without them, and its writes land only if its conversation did not
	// change since it was read; otherwise it runs again under locks), on
	// SQLite and in memory with a single writer. A store may run fn more
	// than once: only the run that commits counts.
	Tx(ctx context.Context, fn func(Tx) error) error
}

// InboundFinder is a Tx that can record a provider message id and find the
// sender's contact in one step, as the engine does with every inbound
// message: on PostgreSQL, one round trip instead of two. fresh is what
// MarkInbound would return; contact is what ContactByAddress would, nil for
// ErrNotFound. The engine uses it when a Tx offers it.
type InboundFinder interface {
	MarkInboundFind(ctx context.Context, ch Channel, providerID, address string) (fresh bool, contact *Contact, err error)
}

// Tx is the work of one transaction.
type Tx interface {
	// MarkInbound records a provider message id and reports whether it is
	// new. An id seen before returns false: the message was handled.
	MarkInbound(ctx context.Context, ch Channel, providerID string) (bool, error)

	// ContactByAddress finds a contact by channel and address, or returns
	// ErrNotFound.
	ContactByAddress(ctx context.Context, ch Channel, address string) (*Contact, error)
	// Contact returns a contact by id, or ErrNotFound.
	Contact(ctx context.Context, id string) (*Contact, error)
	// SaveContact creates or updates a contact; a new one gets its ID set.
	SaveContact(ctx context.Context, c *Contact) error

	// OpenConversation loads and locks the contact's conversation that has
	// not ended, or returns ErrNotFound.
	OpenConversation(ctx context.Context, contactID string) (*Conversation, error)
	// Conversation loads and locks a conversation by id, or returns
	// ErrNotFound.
	Conversation(ctx context.Context, id string) (*Conversation, error)
	// SaveConversation creates or updates a conversation; a new one gets its
	// ID set.
	SaveConversation(ctx context.Context, c *Conversation) error

	// Append writes transcript lines, outbound messages (to the outbox) and
	// audit events. Stores may buffer them until commit.
	Append(ctx context.Context, lines []TranscriptLine, out []*Outbound, events []Event) error

	// SetTimers replaces the conversation's pending timers.
	SetTimers(ctx context.Context, conversationID string, timers []Timer) error
	// DueTimers returns up to limit timers due at or before now, locking
	// them so that another node skips them; firing removes them.
	DueTimers(ctx context.Context, now time.Time, limit int) ([]Timer, error)
	// DeleteTimer removes one fired timer.
	DeleteTimer(ctx context.Context, id int64) error

	// SaveLink stores an issued secure link (its token hash only).
	SaveLink(ctx context.Context, l SecureLink) error
}
