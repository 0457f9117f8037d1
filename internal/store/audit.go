package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/safeflow/safeflow/internal/audit"
)

// appendAudit chains records after the log's head and inserts them. The
// head row is locked, so appenders take turns; it is locked last in each
// transaction to keep that turn short.
func appendAudit(ctx context.Context, s *Store, tx *sqlx.Tx, records []audit.Record) error {
	var head struct {
		Seq  int64  `db:"seq"`
		Hash []byte `db:"hash"`
	}
	if err := tx.GetContext(ctx, &head, `SELECT seq, hash FROM audit_head WHERE id = 1`+s.forUpdate()); err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	prev := &audit.Record{Seq: head.Seq, Hash: head.Hash}
	if head.Seq == 0 {
		prev = nil
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO audit_log (seq, at, actor_type, actor_id, actor_role, source, action, object, conversation_id,
		channel, outcome, reason, request_id, prev_hash, hash) VALUES `)
	args := make([]any, 0, len(records)*15)
	for i := range records {
		r := &records[i]
		audit.Chain(prev, r)
		prev = r
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, r.Seq, r.Time.UnixMicro(), r.Actor.Type, r.Actor.ID, r.Actor.Role, r.Source, r.Action, r.Object,
			r.Conversation, r.Channel, r.Outcome, r.Reason, r.RequestID, r.PrevHash, r.Hash)
	}
	if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`), prev.Seq, prev.Hash); err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	return nil
}

// Audit appends records written outside a conversation (logins, reloads,
// key rotations) in their own transaction.
func (s *Store) Audit(ctx context.Context, records ...audit.Record) error {
	return s.withTx(ctx, func(tx *sqlx.Tx) error {
		for i := range records {
			if records[i].Time.IsZero() {
				records[i].Time = s.now()
			}
		}
		return appendAudit(ctx, s, tx, records)
	})
}

func (s *Store) withTx(ctx context.Context, fn func(*sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

type auditRow struct {
	Seq       int64  `db:"seq"`
	At        int64  `db:"at"`
	ActorType string `db:"actor_type"`
	ActorID   string `db:"actor_id"`
	ActorRole string `db:"actor_role"`
	Source    string `db:"source"`
	Action    string `db:"action"`
	Object    string `db:"object"`
	Conv      string `db:"conversation_id"`
	Channel   string `db:"channel"`
	Outcome   string `db:"outcome"`
	Reason    string `db:"reason"`
	RequestID string `db:"request_id"`
	PrevHash  []byte `db:"prev_hash"`
	Hash      []byte `db:"hash"`
}

// AuditRecords returns the audit records at or after since, in storage
// order (by sequence).
func (s *Store) AuditRecords(ctx context.Context, since time.Time) ([]audit.Record, error) {
	var rows []auditRow
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT seq, at, actor_type, actor_id, actor_role, source, action, object,
		conversation_id, channel, outcome, reason, request_id, prev_hash, hash FROM audit_log WHERE at >= ? ORDER BY seq`), micros(since))
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	out := make([]audit.Record, len(rows))
	for i, r := range rows {
		out[i] = audit.Record{Seq: r.Seq, Time: time.UnixMicro(r.At).UTC(), Actor: audit.Actor{Type: r.ActorType, ID: r.ActorID, Role: r.ActorRole},
			Source: r.Source, Action: r.Action, Object: r.Object, Conversation: r.Conv, Channel: r.Channel, Outcome: r.Outcome,
			Reason: r.Reason, RequestID: r.RequestID, PrevHash: r.PrevHash, Hash: r.Hash}
	}
	return out, nil
}

// VerifyAudit checks the whole audit log against its head: it returns nil
// when the chain is whole, or the first problem, naming the record.
func (s *Store) VerifyAudit(ctx context.Context) (*audit.Problem, error) {
	records, err := s.AuditRecords(ctx, time.Time{})
	if err != nil {
		return nil, err
	}
	var head struct {
		Seq  int64  `db:"seq"`
		Hash []byte `db:"hash"`
	}
	if err := s.db.GetContext(ctx, &head, `SELECT seq, hash FROM audit_head WHERE id = 1`); err != nil {
		return nil, fmt.Errorf("audit head: %w", err)
	}
	return audit.VerifyUpTo(records, head.Seq), nil
}
