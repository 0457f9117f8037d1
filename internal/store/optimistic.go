package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/safeflow/safeflow/engine"
)

// On PostgreSQL every statement is a round trip, and a round trip wakes the
// server and then the service: on a small machine that costs more than most
// statements. A message's transaction under locks takes four (BEGIN, the
// de-duplication with the contact and its locked conversation, the writes,
// COMMIT). So a message is first handled without a transaction: one
// statement reads the contact, its open conversation and the conversation's
// version; the engine runs; and one statement writes everything, the
// provider's message id included, guarded by safeflow_expect(): unless the
// id is new and the conversation still has the version read, the statement
// fails and nothing of it stays. Two round trips.
//
// Anything else (a second conversation, a read the first statement did not
// make, a lost race, any failed write) sends the message through the
// transaction under locks instead, from the start: the engine runs again,
// and no write of the first try remains. A clinic's start, whose first call
// is ContactByAddress, is tried the same way, with no provider id to
// record. Other work (timers, the secure page) begins its database
// transaction at its first call and runs under locks as before.

// errNeedLock is what a transaction without locks answers a call it cannot
// serve; the store then runs the work again under locks, whatever the
// engine did with the error.
var errNeedLock = errors.New("this needs the rows locked")

// optimistic is what a transaction without locks buffers besides what every
// transaction does.
type optimistic struct {
	// begun is set once the transaction's first call was MarkInboundFind,
	// or ContactByAddress (start: a clinic's start, with no provider id to
	// record): until then it is undecided.
	begun, start, needLock bool
	// seen is the provider message id to record; nil until the engine asks.
	seen *seenMark
	// newContact is a contact to create; contactUpdates are changes to
	// contacts read.
	newContact     *contactInsert
	contactUpdates []*engine.Contact
	// timers replaces the pending timers of the conversations named.
	timers     map[string][]engine.Timer
	timerOrder []string
	// links are secure links issued.
	links []engine.SecureLink
}

type seenMark struct {
	ch         engine.Channel
	providerID string
}

// lockNeeded marks the transaction as needing locks and returns
// errNeedLock.
func (t *tx) lockNeeded() error {
	t.opt.needLock = true
	return errNeedLock
}

// unlocked is every call's first step but MarkInboundFind's. In a
// transaction whose first call it is, it begins the database transaction:
// the work is not a message's, and runs under locks as it always did
// (refuse is false). In a message's transaction without locks, it marks
// the transaction for a run under locks (refuse is true, err errNeedLock).
func (t *tx) unlocked(ctx context.Context) (refuse bool, err error) {
	if t.opt == nil {
		return false, nil
	}
	if !t.opt.begun {
		return false, t.begin(ctx)
	}
	return true, t.lockNeeded()
}

// begin begins the database transaction of a transaction that had none.
func (t *tx) begin(ctx context.Context) error {
	t.opt = nil
	sqltx, err := t.s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t.tx = sqltx
	return nil
}

// finishOptimistic ends a message's transaction without locks, after fn
// returned err. done reports whether the work is over: committed, or failed
// for a reason locks would not change. When it is not, nothing was written,
// and the caller runs fn again under locks.
func (s *Store) finishOptimistic(ctx context.Context, t *tx, err error) (done bool, _ error) {
	switch {
	case t.opt.needLock:
		s.fallbacks.Add(1)
		return false, nil
	case err != nil:
		// Nothing was written: the engine's own error stands.
		return true, err
	case t.opt.seen == nil && !t.opt.start:
		if t.empty() {
			return true, nil // a message seen before: nothing to do
		}
		s.fallbacks.Add(1)
		return false, nil
	}
	if err := t.commitOptimistic(ctx); err != nil {
		if ctx.Err() != nil {
			return true, err
		}
		s.fallbacks.Add(1)
		return false, nil
	}
	s.unlocked.Add(1)
	s.afterCommit(ctx, t)
	return true, nil
}

// OptimisticCounts reports how many PostgreSQL transactions committed
// without locks, and how many went on under locks.
func (s *Store) OptimisticCounts() (unlocked, fellBack int64) {
	return s.unlocked.Load(), s.fallbacks.Load()
}

// empty reports whether the transaction wrote nothing.
func (t *tx) empty() bool {
	return len(t.order) == 0 && len(t.lines) == 0 && len(t.out) == 0 && len(t.events) == 0 &&
		t.opt.newContact == nil && len(t.opt.contactUpdates) == 0 && len(t.opt.timerOrder) == 0 && len(t.opt.links) == 0
}

// readInbound is MarkInboundFind without locks: it reads whether the id
// was seen, the contact and its open conversation with its version, and
// leaves recording the id to the writing statement.
func (t *tx) readInbound(ctx context.Context, ch engine.Channel, providerID, address string) (bool, *engine.Contact, error) {
	var seen bool
	var id, channel, language *string
	var addr []byte
	var optedOut *bool
	var version *int64
	var v convNull
	dest := append([]any{&seen, &id, &channel, &addr, &language, &optedOut}, v.dest()...)
	dest = append(dest, &version)
	err := t.queryRow(ctx, t.s.readInbound, string(ch), providerID, t.s.ring.Index(string(ch), address)).Scan(dest...)
	if err != nil {
		return false, nil, fmt.Errorf("read inbound and find contact: %w", err)
	}
	t.opt.begun = true
	if seen {
		return false, nil, nil
	}
	t.opt.seen = &seenMark{ch: ch, providerID: providerID}
	if id == nil {
		return true, nil, nil
	}
	c, err := t.foundUnlocked(contactRow{ID: *id, Channel: *channel, Address: addr, Language: *language, OptedOut: *optedOut}, &v, version)
	return err == nil, c, err
}

// readContact is ContactByAddress without locks, as a transaction's first
// call (a clinic's start): it reads the contact and its open conversation
// with its version.
func (t *tx) readContact(ctx context.Context, ch engine.Channel, address string) (*engine.Contact, error) {
	t.opt.begun, t.opt.start = true, true
	var r contactRow
	var v convNull
	var version *int64
	dest := append([]any{&r.ID, &r.Channel, &r.Address, &r.Language, &r.OptedOut}, v.dest()...)
	dest = append(dest, &version)
	err := t.queryRow(ctx, t.s.readContact, t.s.ring.Index(string(ch), address)).Scan(dest...)
	if errors.Is(err, errNoRows) {
		return nil, engine.ErrNotFound
	}
	if err != nil {
		if ctx.Err() == nil {
			// The run under locks reads again, and fails alone if it must.
			return nil, t.lockNeeded()
		}
		return nil, fmt.Errorf("find contact: %w", err)
	}
	return t.foundUnlocked(r, &v, version)
}

// foundUnlocked is foundContact for a row read without locks: it also
// keeps the open conversation's version, which the write checks.
func (t *tx) foundUnlocked(r contactRow, v *convNull, version *int64) (*engine.Contact, error) {
	c, err := t.foundContact(r, v)
	if err != nil {
		return nil, err
	}
	if v.ID != nil {
		t.convs[*v.ID].version = *version
	}
	return c, nil
}

// readContactQuery is the statement behind readContact, and inside
// readInbound's, with the blind index as parameter n: the contact, its open
// conversation and that conversation's version, unlocked.
func readContactQuery(n int) string {
	cols := make([]string, 0, 21)
	for _, c := range strings.Split(convCols, ",") {
		cols = append(cols, "v."+strings.TrimSpace(c))
	}
	return `SELECT c.id, c.channel, c.address_sealed, c.language, c.opted_out, ` + strings.Join(cols, ", ") + `, v.version
		FROM contacts c LEFT JOIN conversations v ON v.contact_id = c.id AND v.status <> 'ended'
		WHERE c.address_index = $` + fmt.Sprint(n)
}

// readInboundQuery is the statement behind readInbound: always one row,
// whether the id was seen, then the contact, its open conversation and that
// conversation's version, NULL when missing.
func readInboundQuery() string {
	return `SELECT EXISTS (SELECT 1 FROM inbound_seen WHERE channel = $1 AND provider_id = $2), x.* FROM (SELECT 1) one
		LEFT JOIN (` + readContactQuery(3) + `) x ON true`
}

// saveContact buffers a new contact or a change to one.
func (o *optimistic) saveContact(t *tx, c *engine.Contact) error {
	if c.ID != "" {
		o.contactUpdates = append(o.contactUpdates, &engine.Contact{ID: c.ID, Language: c.Language, OptedOut: c.OptedOut})
		return nil
	}
	if o.newContact != nil {
		return t.lockNeeded()
	}
	k, err := t.newContactRow(c)
	if err != nil {
		return err
	}
	o.newContact, c.ID = k, k.id
	// A new contact has no conversation to look up.
	if t.prefetched == nil {
		t.prefetched = map[string]bool{}
	}
	t.prefetched[k.id] = true
	return nil
}

// setTimers buffers the replacement of a conversation's timers.
func (o *optimistic) setTimers(conversationID string, timers []engine.Timer) {
	if o.timers == nil {
		o.timers = map[string][]engine.Timer{}
	}
	if _, ok := o.timers[conversationID]; !ok {
		o.timerOrder = append(o.timerOrder, conversationID)
	}
	o.timers[conversationID] = append([]engine.Timer(nil), timers...)
}

// commitOptimistic writes everything in one statement that fails unless
// the message id is new, the contact writes land, and the conversation is
// still as read.
func (t *tx) commitOptimistic(ctx context.Context) error {
	o := t.opt
	if len(t.order) > 1 || len(t.lines) > maxBatch || len(t.out) > maxBatch || len(t.events) > maxBatch || len(o.links) > maxBatch {
		return errNeedLock
	}
	var r *convRow
	if len(t.order) == 1 {
		r = t.convs[t.order[0]]
	}
	for _, l := range t.lines {
		if r == nil || l.ConversationID != r.c.ID {
			return errNeedLock
		}
	}
	for _, id := range o.timerOrder {
		if r == nil || id != r.c.ID || len(o.timers[id]) > maxBatch {
			return errNeedLock
		}
	}
	var b strings.Builder
	var args []any
	// The checks read the CTEs in this order, and so take the
	// conversation's row lock before any contact's, as a transaction under
	// locks does: the two cannot deadlock.
	var checks, contactChecks []string
	if o.seen != nil {
		b.WriteString(`WITH seen AS (INSERT INTO inbound_seen (channel, provider_id, seen) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING RETURNING 1)`)
		args = append(args, string(o.seen.ch), o.seen.providerID, micros(t.s.now()))
		checks = append(checks, "(SELECT count(*) FROM seen) = 1")
	} else {
		// A clinic's start has no provider id to record.
		b.WriteString(`WITH seen AS (SELECT 1 WHERE false)`)
	}
	if k := o.newContact; k != nil {
		b.WriteString(`, k AS (` + insertContact + ` RETURNING 1)`)
		args = append(args, k.args()...)
		contactChecks = append(contactChecks, "(SELECT count(*) FROM k) = 1")
	}
	for i, c := range o.contactUpdates {
		name := fmt.Sprintf("u%d", i)
		b.WriteString(`, ` + name + ` AS (UPDATE contacts SET language = ?, opted_out = ? WHERE id = ? RETURNING 1)`)
		args = append(args, c.Language, c.OptedOut, c.ID)
		contactChecks = append(contactChecks, "(SELECT count(*) FROM "+name+") = 1")
	}
	if r != nil {
		q, a, err := t.convStmt(r, int64(len(t.lines)))
		if err != nil {
			return err
		}
		if r.exists {
			q += ` AND version = ?`
			a = append(a, r.version)
		}
		b.WriteString(", c AS (" + q + " RETURNING 1)")
		args = append(args, a...)
		checks = append(checks, "(SELECT count(*) FROM c) = 1")
		for i, id := range o.timerOrder {
			b.WriteString(fmt.Sprintf(", td%d AS (DELETE FROM timers WHERE conversation_id = ? RETURNING 1)", i))
			args = append(args, id)
			if tms := o.timers[id]; len(tms) > 0 {
				b.WriteString(fmt.Sprintf(", ti%d AS (INSERT INTO timers (conversation_id, kind, step, due) VALUES %s RETURNING 1)", i, values(len(tms), 4)))
				for _, tm := range tms {
					args = append(args, id, string(tm.Kind), tm.Step, micros(tm.Due))
				}
			}
		}
	}
	if len(o.links) > 0 {
		b.WriteString(", sl AS (INSERT INTO secure_links (token_hash, conversation_id, contact_id, created, expires) VALUES " +
			values(len(o.links), 5) + " RETURNING 1)")
		for _, l := range o.links {
			args = append(args, l.TokenHash, l.ConversationID, l.ContactID, micros(l.Created), micros(l.Expires))
		}
	}
	args, byKey, err := t.linesOutboxAudit(&b, args)
	if err != nil {
		return err
	}
	checks = append(checks, contactChecks...)
	if len(checks) == 0 {
		checks = []string{"true"}
	}
	b.WriteString(` SELECT safeflow_expect(` + strings.Join(checks, " AND ") + `), ` + outboxNumbers)
	var ok bool
	var seqs pq.Int64Array
	var ids, claimed pq.StringArray
	if err := t.queryRow(ctx, sqlx.Rebind(sqlx.DOLLAR, b.String()), args...).Scan(&ok, &seqs, &ids, &claimed); err != nil {
		return err
	}
	if r != nil {
		t.wroteConv(r)
	}
	t.numberOutbox(byKey, seqs, ids, claimed)
	return nil
}
