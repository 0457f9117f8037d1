package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/seal"
)

// Pending is an outbox row claimed for delivery.
type Pending struct {
	*engine.Outbound
	// Key is the row's id, for MarkSent and MarkFailed.
	Key      string
	Attempts int
}

type outboxDB struct {
	Seq      int64  `db:"seq"`
	ID       string `db:"id"`
	Conv     string `db:"conversation_id"`
	Contact  string `db:"contact_id"`
	Channel  string `db:"channel"`
	Address  []byte `db:"address_sealed"`
	Body     []byte `db:"body_sealed"`
	Link     bool   `db:"link"`
	Attempts int    `db:"attempts"`
}

// ClaimOutbox takes up to limit messages due at or before dueBy (which is
// at most now), at most one per contact and only a contact's oldest
// undelivered one, so each contact gets messages in order. A claimed row is
// leased until now+lease: if the worker dies, it comes back when the lease
// ends (delivery is at least once).
//
// It reads every contact's oldest undelivered message from the index of
// undelivered rows. On PostgreSQL that index also holds an entry for every
// row delivered since the last vacuum, which the search has to step over:
// ClaimOutboxRows, which looks rows up by their sequence numbers, is the
// cheap way to claim messages just written.
func (s *Store) ClaimOutbox(ctx context.Context, now, dueBy time.Time, lease time.Duration, limit int) ([]Pending, error) {
	return s.claim(ctx, now, dueBy, lease, s.claimSearch, limit)
}

// ClaimOutboxRows claims what it can of the given outbox rows (their
// Outbound IDs), under the same rules as ClaimOutbox: a row that is not due
// by now, is already claimed or delivered, or waits behind an older
// undelivered message to its contact, is left alone.
func (s *Store) ClaimOutboxRows(ctx context.Context, now time.Time, lease time.Duration, seqs []int64) ([]Pending, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	if len(seqs) > maxBatch {
		seqs = seqs[:maxBatch]
	}
	if s.pg {
		return s.claim(ctx, now, now, lease, s.claimRows, pq.Array(seqs))
	}
	// One statement for any number of rows, so it is prepared once.
	list, err := json.Marshal(seqs)
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	return s.claim(ctx, now, now, lease, s.claimRows, string(list))
}

// claimQuery is a claim's statement with the condition where; Open keeps
// the two the store runs (claimSearch, claimRows).
func (s *Store) claimQuery(where string) string {
	lock := ""
	if s.pg {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	return s.q(`UPDATE outbox SET status = 'sending', next_attempt = ?, updated = ?
		WHERE status IN ('pending', 'sending') AND next_attempt <= ? AND seq IN (
			SELECT o.seq FROM outbox o
			WHERE o.status IN ('pending', 'sending') AND o.next_attempt <= ? AND ` + where + lock + `)
		RETURNING seq, id, conversation_id, contact_id, channel, address_sealed, body_sealed, link, attempts`)
}

// The conditions of the claims. searchWhere takes each contact's oldest
// undelivered message; olderFirst keeps a row back while an older message
// to its contact is undelivered. Both can only use the index of undelivered
// rows by contact.
const (
	searchWhere = `o.seq IN (SELECT min(p.seq) FROM outbox p WHERE p.status IN ('pending', 'sending')
		GROUP BY p.contact_id) ORDER BY o.seq LIMIT ?`
	olderFirst = `NOT EXISTS (SELECT 1 FROM outbox p WHERE p.contact_id = o.contact_id AND p.seq < o.seq
		AND p.status IN ('pending', 'sending')) `
	pgRowsWhere     = olderFirst + `AND o.seq = ANY(?::bigint[]) ORDER BY o.seq`
	sqliteRowsWhere = olderFirst + `AND o.seq IN (SELECT value FROM json_each(?)) ORDER BY o.seq`
)

// claim leases the undelivered rows due by dueBy that query (a claimQuery)
// selects, and opens them. The outer statement checks again that each row
// is undelivered and due: on PostgreSQL, a row another node claimed while
// this statement waited for it is then left alone.
func (s *Store) claim(ctx context.Context, now, dueBy time.Time, lease time.Duration, query string, whereArgs ...any) ([]Pending, error) {
	if dueBy.After(now) {
		dueBy = now
	}
	args := append([]any{micros(now.Add(lease)), micros(now), micros(dueBy), micros(dueBy)}, whereArgs...)
	var rows []outboxDB
	err := s.write(ctx, func(q statements) error {
		rows = rows[:0]
		res, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer res.Close()
		return sqlx.StructScan(res, &rows)
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	out := make([]Pending, 0, len(rows))
	for _, r := range rows {
		addr, err := s.ring.OpenString(r.Address, seal.AD{Table: "outbox", Column: "address", Row: r.ID})
		if err != nil {
			return nil, fmt.Errorf("open outbox %s: %w", r.ID, err)
		}
		raw, err := s.ring.Open(r.Body, seal.AD{Table: "outbox", Column: "body", Row: r.ID})
		if err != nil {
			return nil, fmt.Errorf("open outbox %s: %w", r.ID, err)
		}
		var p outboundPayload
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("outbox %s: %w", r.ID, err)
		}
		out = append(out, Pending{Key: r.ID, Attempts: r.Attempts, Outbound: &engine.Outbound{ID: r.Seq, ConversationID: r.Conv,
			ContactID: r.Contact, Channel: engine.Channel(r.Channel), Address: addr, Text: p.Text, Choices: p.Choices,
			Input: p.Input, Link: r.Link, Sensitive: p.Sensitive, System: p.System}})
	}
	return out, nil
}

// Sent is a delivered outbox message and the provider's id for it.
type Sent struct{ Key, ProviderID string }

// MarkSent records delivered messages and the providers' ids for them, in
// one statement.
func (s *Store) MarkSent(ctx context.Context, sent ...Sent) error {
	return batches(len(sent), func(from, to int) error {
		args := make([]any, 0, (to-from)*3+1)
		var b strings.Builder
		b.WriteString(`UPDATE outbox SET status = 'sent', attempts = attempts + 1, updated = ?, provider_id = CASE id`)
		args = append(args, micros(s.now()))
		for _, m := range sent[from:to] {
			b.WriteString(` WHEN ? THEN ?`)
			args = append(args, m.Key, m.ProviderID)
		}
		b.WriteString(` END WHERE id IN ` + values(1, to-from))
		for _, m := range sent[from:to] {
			args = append(args, m.Key)
		}
		return s.write(ctx, func(q statements) error {
			_, err := q.ExecContext(ctx, s.q(b.String()), args...)
			return err
		})
	})
}

// ReleaseOutbox hands back claimed messages unsent: due again at once, with
// their attempts unchanged. Rows not claimed are left alone. The delivery
// worker releases the messages it was handed behind a failed one to the
// same contact, so that they wait for it instead of their lease.
func (s *Store) ReleaseOutbox(ctx context.Context, keys ...string) error {
	return batches(len(keys), func(from, to int) error {
		now := micros(s.now())
		args := []any{now, now}
		for _, k := range keys[from:to] {
			args = append(args, k)
		}
		return s.write(ctx, func(q statements) error {
			_, err := q.ExecContext(ctx, s.q(`UPDATE outbox SET status = 'pending', next_attempt = ?, updated = ?
				WHERE status = 'sending' AND id IN `+values(1, to-from)), args...)
			return err
		})
	})
}

// MarkFailed records a failed attempt: the message is tried again at next,
// or, when dead, moved to the dead letters. reason is the provider's error
// code or a short description, never message content.
func (s *Store) MarkFailed(ctx context.Context, key string, next time.Time, dead bool, reason string) error {
	status := "pending"
	if dead {
		status = "dead"
	}
	return s.write(ctx, func(q statements) error {
		_, err := q.ExecContext(ctx, s.q(`UPDATE outbox SET status = ?, attempts = attempts + 1, next_attempt = ?, error = ?, updated = ? WHERE id = ?`),
			status, micros(next), reason, micros(s.now()), key)
		return err
	})
}

// UpdateDelivery records a provider's delivery report for a sent message.
func (s *Store) UpdateDelivery(ctx context.Context, st engine.DeliveryStatus) error {
	status := "sent"
	switch st.Status {
	case "delivered", "read":
		status = "delivered"
	case "undelivered", "failed":
		status = "undelivered"
	}
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE outbox SET status = ?, error = ?, updated = ? WHERE provider_id = ? AND channel = ?
		AND status IN ('sent', 'delivered')`), status, st.ErrorCode, micros(s.now()), st.ProviderID, string(st.Channel))
	return err
}

// OutboxCounts returns how many messages wait for delivery and how many are
// dead letters.
func (s *Store) OutboxCounts(ctx context.Context) (pending, dead int, err error) {
	// Each count reads its partial index, not the whole sent history.
	err = s.db.QueryRowxContext(ctx, `SELECT
		(SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')),
		(SELECT COUNT(*) FROM outbox WHERE status = 'dead')`).Scan(&pending, &dead)
	return pending, dead, err
}
