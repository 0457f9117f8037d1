package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/seal"
)

// This file holds what the secure web chat (package securechat) needs
// beyond engine.Tx: redeeming links, counting failed verifications, the
// secure sessions, and reading back the secure part of a transcript. Every
// change that must be audited appends its records in its own transaction.

// SecureLinkByHash returns the secure link whose token hashes to tokenHash,
// whether it has been redeemed and whether it is locked. Whether it has
// expired is for the caller to judge against its clock (link.Expires). It
// returns engine.ErrNotFound for an unknown hash.
func (s *Store) SecureLinkByHash(ctx context.Context, tokenHash []byte) (link engine.SecureLink, redeemed, locked bool, err error) {
	var r struct {
		Conv     string `db:"conversation_id"`
		Contact  string `db:"contact_id"`
		Created  int64  `db:"created"`
		Expires  int64  `db:"expires"`
		Redeemed int64  `db:"redeemed"`
		Locked   bool   `db:"locked"`
	}
	err = s.db.GetContext(ctx, &r, s.q(`SELECT conversation_id, contact_id, created, expires, redeemed, locked
		FROM secure_links WHERE token_hash = ?`), tokenHash)
	if errors.Is(err, errNoRows) {
		return engine.SecureLink{}, false, false, engine.ErrNotFound
	}
	if err != nil {
		return engine.SecureLink{}, false, false, fmt.Errorf("read secure link: %w", err)
	}
	link = engine.SecureLink{TokenHash: tokenHash, ConversationID: r.Conv, ContactID: r.Contact,
		Created: fromMicros(r.Created), Expires: fromMicros(r.Expires)}
	return link, r.Redeemed != 0, r.Locked, nil
}

// RedeemSecureLink redeems a link and opens a secure session for its
// conversation, in one transaction. The redemption is a single UPDATE that
// succeeds only for a link that is unredeemed, unexpired at now and not
// locked, so two concurrent redemptions cannot both win. In the same
// transaction the conversation's other unredeemed links expire, any other
// session of the conversation ends, the new session (only sessionHash, the
// SHA-256 of its id, is stored) starts at the conversation's current
// transcript position and ends at sessionExpires at the latest, and rec (a
// link.redeemed record) is appended to the audit log. It returns the
// conversation id, or engine.ErrNotFound when the link cannot be redeemed,
// in which case nothing changes.
func (s *Store) RedeemSecureLink(ctx context.Context, tokenHash, sessionHash []byte, now, sessionExpires time.Time, rec audit.Record) (conversationID string, err error) {
	err = s.auditTx(ctx, func(tx *sqlx.Tx) ([]audit.Record, error) {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE secure_links SET redeemed = ?
			WHERE token_hash = ? AND redeemed = 0 AND expires > ? AND NOT locked`), micros(now), tokenHash, micros(now))
		if err != nil {
			return nil, fmt.Errorf("redeem secure link: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return nil, engine.ErrNotFound
		}
		if err := tx.GetContext(ctx, &conversationID, s.q(`SELECT conversation_id FROM secure_links WHERE token_hash = ?`), tokenHash); err != nil {
			return nil, fmt.Errorf("redeem secure link: %w", err)
		}
		// One link per sensitive segment: links sent earlier (resends) die
		// with this redemption, so a second copy cannot open a second page.
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE secure_links SET expires = ?
			WHERE conversation_id = ? AND redeemed = 0 AND expires > ?`), micros(now), conversationID, micros(now)); err != nil {
			return nil, fmt.Errorf("retire other secure links: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM secure_sessions WHERE conversation_id = ?`), conversationID); err != nil {
			return nil, fmt.Errorf("end other secure sessions: %w", err)
		}
		var firstLine int64
		err = tx.GetContext(ctx, &firstLine, s.q(`SELECT lines FROM conversations WHERE id = ?`), conversationID)
		if errors.Is(err, errNoRows) {
			return nil, engine.ErrNotFound // the conversation is gone
		}
		if err != nil {
			return nil, fmt.Errorf("create secure session: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO secure_sessions (id_hash, conversation_id, first_line, created, last_seen, expires)
			VALUES (?, ?, ?, ?, ?, ?)`), sessionHash, conversationID, firstLine, micros(now), micros(now), micros(sessionExpires)); err != nil {
			return nil, fmt.Errorf("create secure session: %w", err)
		}
		rec.Conversation = conversationID
		return []audit.Record{rec}, nil
	})
	if err != nil {
		return "", err
	}
	return conversationID, nil
}

// FailSecureLink records one failed verification on a link. The link locks
// when its failures reach maxFailures. In the same transaction it appends
// rec (a link.failed record) and, when the link has just locked, a
// link.locked record made from rec. It returns the failures so far and
// whether the link is now locked, or engine.ErrNotFound for a link that is
// unknown, redeemed or already locked.
func (s *Store) FailSecureLink(ctx context.Context, tokenHash []byte, maxFailures int, rec audit.Record) (failures int, locked bool, err error) {
	err = s.auditTx(ctx, func(tx *sqlx.Tx) ([]audit.Record, error) {
		var r struct {
			Conv     string `db:"conversation_id"`
			Failures int    `db:"failures"`
			Locked   bool   `db:"locked"`
		}
		err := tx.GetContext(ctx, &r, s.q(`UPDATE secure_links SET failures = failures + 1, locked = (failures + 1 >= ?)
			WHERE token_hash = ? AND redeemed = 0 AND NOT locked RETURNING conversation_id, failures, locked`), maxFailures, tokenHash)
		if errors.Is(err, errNoRows) {
			return nil, engine.ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("record failed verification: %w", err)
		}
		failures, locked = r.Failures, r.Locked
		rec.Conversation = r.Conv
		records := []audit.Record{rec}
		if locked {
			lock := rec
			lock.Action, lock.Outcome = audit.LinkLocked, audit.OutcomeDenied
			lock.Reason = strconv.Itoa(failures) + " failed verifications"
			records = append(records, lock)
		}
		return records, nil
	})
	return failures, locked, err
}

// TouchSecureSession finds the live secure session whose id hashes to
// idHash and records activity on it at now. A session is live while it has
// seen activity within idle and its absolute limit has not passed. It
// returns the session's conversation and the transcript position the
// session started at, or engine.ErrNotFound for an unknown or timed-out
// session.
func (s *Store) TouchSecureSession(ctx context.Context, idHash []byte, now time.Time, idle time.Duration) (conversationID string, firstLine int64, err error) {
	var r sessionRow
	err = s.db.GetContext(ctx, &r, s.q(`UPDATE secure_sessions SET last_seen = ?
		WHERE id_hash = ? AND last_seen > ? AND expires > ? RETURNING conversation_id, first_line`),
		micros(now), idHash, micros(now.Add(-idle)), micros(now))
	return r.result(err)
}

// SecureSession is TouchSecureSession without recording activity: an open
// stream of updates does not keep a session alive.
func (s *Store) SecureSession(ctx context.Context, idHash []byte, now time.Time, idle time.Duration) (conversationID string, firstLine int64, err error) {
	var r sessionRow
	err = s.db.GetContext(ctx, &r, s.q(`SELECT conversation_id, first_line FROM secure_sessions
		WHERE id_hash = ? AND last_seen > ? AND expires > ?`), idHash, micros(now.Add(-idle)), micros(now))
	return r.result(err)
}

type sessionRow struct {
	Conv      string `db:"conversation_id"`
	FirstLine int64  `db:"first_line"`
}

func (r sessionRow) result(err error) (string, int64, error) {
	if errors.Is(err, errNoRows) {
		return "", 0, engine.ErrNotFound
	}
	if err != nil {
		return "", 0, fmt.Errorf("read secure session: %w", err)
	}
	return r.Conv, r.FirstLine, nil
}

// EndSecureSession removes a secure session, live or timed out, and appends
// rec to the audit log in the same transaction. It returns the session's
// conversation, or engine.ErrNotFound when there is no such session.
func (s *Store) EndSecureSession(ctx context.Context, idHash []byte, rec audit.Record) (conversationID string, err error) {
	err = s.auditTx(ctx, func(tx *sqlx.Tx) ([]audit.Record, error) {
		err := tx.GetContext(ctx, &conversationID, s.q(`DELETE FROM secure_sessions WHERE id_hash = ? RETURNING conversation_id`), idHash)
		if errors.Is(err, errNoRows) {
			return nil, engine.ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("end secure session: %w", err)
		}
		rec.Conversation = conversationID
		return []audit.Record{rec}, nil
	})
	return conversationID, err
}

// ExpireSecureSessions removes the sessions that are idle for idle or past
// their absolute limit at now, appending for each a copy of rec with the
// conversation and the reason ("idle timeout" or "time limit") filled in. It
// returns the conversations left with no session, which the engine must be
// told have closed their secure page.
func (s *Store) ExpireSecureSessions(ctx context.Context, now time.Time, idle time.Duration, rec audit.Record) ([]string, error) {
	var closed []string
	err := s.auditTx(ctx, func(tx *sqlx.Tx) ([]audit.Record, error) {
		var rows []struct {
			Conv    string `db:"conversation_id"`
			Expires int64  `db:"expires"`
		}
		err := tx.SelectContext(ctx, &rows, s.q(`DELETE FROM secure_sessions WHERE last_seen <= ? OR expires <= ?
			RETURNING conversation_id, expires`), micros(now.Add(-idle)), micros(now))
		if err != nil {
			return nil, fmt.Errorf("expire secure sessions: %w", err)
		}
		records := make([]audit.Record, 0, len(rows))
		seen := map[string]bool{}
		for _, r := range rows {
			e := rec
			e.Conversation, e.Reason = r.Conv, "idle timeout"
			if r.Expires <= micros(now) {
				e.Reason = "time limit"
			}
			records = append(records, e)
			if seen[r.Conv] {
				continue
			}
			seen[r.Conv] = true
			var left int
			if err := tx.GetContext(ctx, &left, s.q(`SELECT COUNT(*) FROM secure_sessions WHERE conversation_id = ?`), r.Conv); err != nil {
				return nil, fmt.Errorf("expire secure sessions: %w", err)
			}
			if left == 0 {
				closed = append(closed, r.Conv)
			}
		}
		return records, nil
	})
	if err != nil {
		return nil, err
	}
	return closed, nil
}

// SecureTranscript reads up to limit transcript lines of a conversation that
// were written on the secure channel after position after, in order, and
// calls fn with each line and its position. fn runs after the rows are read,
// so it may use the store.
func (s *Store) SecureTranscript(ctx context.Context, conversationID string, after int64, limit int, fn func(n int64, line engine.TranscriptLine)) error {
	var rows []struct {
		N         int64  `db:"n"`
		At        int64  `db:"at"`
		Inbound   bool   `db:"inbound"`
		Step      string `db:"step"`
		Sensitive bool   `db:"sensitive"`
		Body      []byte `db:"body_sealed"`
	}
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT n, at, inbound, step, sensitive, body_sealed FROM transcript
		WHERE conversation_id = ? AND n > ? AND channel = ? ORDER BY n LIMIT `+strconv.Itoa(limit)),
		conversationID, after, string(engine.Secure))
	if err != nil {
		return fmt.Errorf("read secure transcript: %w", err)
	}
	lines := make([]engine.TranscriptLine, len(rows))
	for i, r := range rows {
		text, err := s.ring.OpenString(r.Body, seal.AD{Table: "transcript", Column: "body", Row: conversationID + "/" + strconv.FormatInt(r.N, 10)})
		if err != nil {
			return fmt.Errorf("open transcript line %d of %s: %w", r.N, conversationID, err)
		}
		lines[i] = engine.TranscriptLine{ConversationID: conversationID, At: fromMicros(r.At), Inbound: r.Inbound,
			Channel: engine.Secure, Text: text, Step: r.Step, Sensitive: r.Sensitive}
	}
	for i := range lines {
		fn(rows[i].N, lines[i])
	}
	return nil
}

// LatestSecureOutbound returns the last message written to the outbox for
// the conversation's secure page, with its choices and input type (which
// the transcript does not keep), or engine.ErrNotFound when there is none.
func (s *Store) LatestSecureOutbound(ctx context.Context, conversationID string) (*engine.Outbound, error) {
	var r outboxDB
	err := s.db.GetContext(ctx, &r, s.q(`SELECT seq, id, conversation_id, contact_id, channel, address_sealed, body_sealed, link, attempts
		FROM outbox WHERE conversation_id = ? AND channel = ? ORDER BY seq DESC LIMIT 1`), conversationID, string(engine.Secure))
	if errors.Is(err, errNoRows) {
		return nil, engine.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read secure outbox: %w", err)
	}
	raw, err := s.ring.Open(r.Body, seal.AD{Table: "outbox", Column: "body", Row: r.ID})
	if err != nil {
		return nil, fmt.Errorf("open outbox %s: %w", r.ID, err)
	}
	var p outboundPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("outbox %s: %w", r.ID, err)
	}
	return &engine.Outbound{ID: r.Seq, ConversationID: r.Conv, ContactID: r.Contact, Channel: engine.Secure, Text: p.Text,
		Choices: p.Choices, Input: p.Input, Link: r.Link, Sensitive: p.Sensitive, System: p.System}, nil
}

// ConversationState returns a conversation without locking it and without
// its sealed fields: Vars and Address are left empty, so that a caller that
// only needs to know where the conversation stands never opens them. It
// returns engine.ErrNotFound for an unknown id.
func (s *Store) ConversationState(ctx context.Context, id string) (*engine.Conversation, error) {
	var r convDB
	err := s.db.GetContext(ctx, &r, s.q(`SELECT id, contact_id, flow_id, flow_hash, step, status, origin, language, attempts,
		secure, stay_secure, prompt_sent, link_sent_at, link_resends, queue, timer_due, created, updated
		FROM conversations WHERE id = ?`), id)
	if errors.Is(err, errNoRows) {
		return nil, engine.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read conversation: %w", err)
	}
	return &engine.Conversation{ID: r.ID, ContactID: r.ContactID, FlowID: r.FlowID, FlowHash: r.FlowHash, Step: r.Step,
		Status: engine.Status(r.Status), Origin: engine.Channel(r.Origin), Language: r.Language, Attempts: r.Attempts,
		Secure: engine.SecureState(r.Secure), StaySecure: r.StaySecure, PromptSent: r.PromptSent,
		LinkSentAt: fromMicros(r.LinkSentAt), LinkResends: r.LinkResends, Queue: r.Queue, TimerDue: fromMicros(r.TimerDue),
		Created: fromMicros(r.Created), Updated: fromMicros(r.Updated)}, nil
}

// Notify sends payload on a PostgreSQL notification channel, to every node
// that listens on it. On SQLite there is only one node, and Notify does
// nothing.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if !s.pg {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("notify %s: %w", channel, err)
	}
	return nil
}

// auditTx runs fn in one transaction and appends the audit records it
// returns in that same transaction, so a change and its record commit or
// roll back together. Records without a time get the store's clock.
func (s *Store) auditTx(ctx context.Context, fn func(tx *sqlx.Tx) ([]audit.Record, error)) error {
	return s.withTx(ctx, func(tx *sqlx.Tx) error {
		records, err := fn(tx)
		if err != nil || len(records) == 0 {
			return err
		}
		for i := range records {
			if records[i].Time.IsZero() {
				records[i].Time = s.now()
			}
		}
		return appendAudit(ctx, s, tx, records)
	})
}
