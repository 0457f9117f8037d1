package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/safeflow/safeflow/internal/audit"
)

// appendAudit chains records after the log's head and inserts them. The
// head row is locked, so appenders take turns; it is locked last in each
// transaction to keep that turn short.
//
// locked, when not nil, is the head as the caller already read and locked
// it in this transaction.
func appendAudit(ctx context.Context, s *Store, tx *sqlx.Tx, records []audit.Record, locked *audit.Record) error {
	if len(records) == 0 {
		return nil
	}
	head := locked
	if head == nil {
		head = &audit.Record{}
		if err := tx.QueryRowxContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`+s.forUpdate()).Scan(&head.Seq, &head.Hash); err != nil {
			return fmt.Errorf("audit head: %w", err)
		}
	}
	prev := head
	if head.Seq == 0 {
		prev = nil
	}
	for i := range records {
		audit.Chain(prev, &records[i])
		prev = &records[i]
	}
	// On PostgreSQL the rows and the new head go in one statement: the head
	// is locked until commit, so every round trip saved here shortens the
	// turn every other message waits for.
	combined := s.pg && len(records) <= maxBatch
	err := batches(len(records), func(from, to int) error {
		args := make([]any, 0, (to-from)*15+2)
		for _, r := range records[from:to] {
			args = append(args, r.Seq, r.Time.UnixMicro(), r.Actor.Type, r.Actor.ID, r.Actor.Role, r.Source, r.Action, r.Object,
				r.Conversation, r.Channel, r.Outcome, r.Reason, r.RequestID, r.PrevHash, r.Hash)
		}
		insert := `INSERT INTO audit_log (seq, at, actor_type, actor_id, actor_role, source, action, object,
			conversation_id, channel, outcome, reason, request_id, prev_hash, hash) VALUES ` + values(to-from, 15)
		if combined {
			insert = `WITH a AS (` + insert + `) UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`
			args = append(args, prev.Seq, prev.Hash)
		}
		_, err := tx.ExecContext(ctx, s.q(insert), args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if combined {
		return nil
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
		return appendAudit(ctx, s, tx, records, nil)
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
	return s.auditRecords(ctx, s.db, since)
}

func (s *Store) auditRecords(ctx context.Context, q sqlx.QueryerContext, since time.Time) ([]audit.Record, error) {
	var rows []auditRow
	err := sqlx.SelectContext(ctx, q, &rows, s.q(`SELECT seq, at, actor_type, actor_id, actor_role, source, action, object,
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
//
// Besides what audit.VerifyUpTo finds, the head lets it see two changes a
// chain alone cannot: the last record rewritten with its hash computed
// again, and records added after the last one that safeflow wrote, since
// every append moves the head in the same transaction.
func (s *Store) VerifyAudit(ctx context.Context) (*audit.Problem, error) {
	var opts *sql.TxOptions
	if s.pg {
		// One snapshot for the head and the records; SQLite's single
		// connection gives that already.
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := s.db.BeginTxx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	defer tx.Rollback()
	var head struct {
		Seq  int64  `db:"seq"`
		Hash []byte `db:"hash"`
	}
	if err := tx.GetContext(ctx, &head, `SELECT seq, hash FROM audit_head WHERE id = 1`); err != nil {
		return nil, fmt.Errorf("audit head: %w", err)
	}
	records, err := s.auditRecords(ctx, tx, time.Time{})
	if err != nil {
		return nil, err
	}
	known := len(records)
	for known > 0 && records[known-1].Seq > head.Seq {
		known--
	}
	if p := audit.VerifyUpTo(records[:known], head.Seq); p != nil {
		return p, nil
	}
	if known > 0 && !bytes.Equal(records[known-1].Hash, head.Hash) {
		return &audit.Problem{Seq: head.Seq, Kind: audit.KindEdited, Index: known - 1,
			Detail: "its hash is not the one recorded at the head of the log, so it was changed and its hash computed again"}, nil
	}
	if known < len(records) {
		return &audit.Problem{Seq: records[known].Seq, Kind: audit.KindInserted, Index: known,
			Detail: fmt.Sprintf("it comes after record %d, the last one safeflow appended", head.Seq)}, nil
	}
	return nil, nil
}
