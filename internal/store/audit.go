package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/safeflow/safeflow/internal/audit"
)

// appendAudit writes records to audit_pending in the caller's transaction,
// so they commit (or not) with the action they record. ChainAudit moves them
// into the hash-chained audit_log a moment later, in order: no message
// transaction waits for the chain's head.
func appendAudit(ctx context.Context, s *Store, tx *sqlx.Tx, records []audit.Record) error {
	if len(records) == 0 {
		return nil
	}
	err := batches(len(records), func(from, to int) error {
		query, args := pendingStmt(records[from:to], s.now)
		_, err := tx.ExecContext(ctx, s.q(query), args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// pendingStmt is the INSERT of records into audit_pending.
func pendingStmt(records []audit.Record, now func() time.Time) (string, []any) {
	args := make([]any, 0, len(records)*12)
	for _, r := range records {
		at := r.Time
		if at.IsZero() {
			at = now()
		}
		args = append(args, at.UnixMicro(), r.Actor.Type, r.Actor.ID, r.Actor.Role, r.Source, r.Action, r.Object,
			r.Conversation, r.Channel, r.Outcome, r.Reason, r.RequestID)
	}
	return `INSERT INTO audit_pending (at, actor_type, actor_id, actor_role, source, action, object, conversation_id,
		channel, outcome, reason, request_id) VALUES ` + values(len(records), 12), args
}

// ChainAudit moves every committed pending record into the audit log: under
// the head's lock it chains them after the head, in the order they were
// written, inserts them and moves the head. It returns how many it chained.
// Several nodes may run it at once; the head's lock makes them take turns.
func (s *Store) ChainAudit(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.chainBatch(ctx, maxBatch)
		total += n
		if err != nil || n < maxBatch {
			return total, err
		}
	}
}

func (s *Store) chainBatch(ctx context.Context, limit int) (int, error) {
	n := 0
	err := s.withTx(ctx, func(tx *sqlx.Tx) error {
		head := &audit.Record{}
		headQuery := `SELECT seq, hash FROM audit_head WHERE id = 1`
		if s.pg {
			// Locked through a function of the owner's, so the service's
			// role needs no UPDATE on the head (migration 14).
			headQuery = `SELECT seq, hash FROM audit_chain_head()`
		}
		if err := tx.QueryRowxContext(ctx, headQuery).Scan(&head.Seq, &head.Hash); err != nil {
			return fmt.Errorf("audit head: %w", err)
		}
		var rows []struct {
			ID int64 `db:"id"`
			auditRow
		}
		if err := tx.SelectContext(ctx, &rows, s.q(`SELECT id, at, actor_type, actor_id, actor_role, source, action, object,
			conversation_id, channel, outcome, reason, request_id FROM audit_pending ORDER BY id LIMIT `+fmt.Sprint(limit))); err != nil {
			return fmt.Errorf("read pending audit records: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		if err := headBehind(ctx, tx, head.Seq); err != nil {
			return err
		}
		records := make([]audit.Record, len(rows))
		ids := make([]int64, len(rows))
		for i, r := range rows {
			records[i], ids[i] = r.auditRow.record(), r.ID
		}
		prev := chain(head, records)
		if s.pg {
			// The function moves the records and the head together.
			if err := moveChained(ctx, tx, ids, records); err != nil {
				return err
			}
			n = len(rows)
			return nil
		}
		query, args := insertStmt(records)
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
		query, args = clearStmt(ids)
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("clear pending audit records: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, prev.Seq, prev.Hash); err != nil {
			return fmt.Errorf("audit head: %w", err)
		}
		n = len(rows)
		return nil
	})
	if err != nil {
		return 0, chainErr(err)
	}
	return n, nil
}

// ErrHeadBehind is returned (wrapped) when the audit log holds records past
// its head: the log or the head was changed by hand, and a record appended
// after the head would clash with one already there.
var ErrHeadBehind = errors.New("the audit log cannot be continued")

// headBehind returns ErrHeadBehind, saying what to do, when the log holds
// records past headSeq.
func headBehind(ctx context.Context, q sqlx.QueryerContext, headSeq int64) error {
	var last sql.NullInt64
	if err := q.QueryRowxContext(ctx, `SELECT MAX(seq) FROM audit_log`).Scan(&last); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if last.Int64 <= headSeq {
		return nil
	}
	return fmt.Errorf("%w: its head says record %d is the last, but it holds records up to %d, so the log or its head "+
		"was changed by hand. Run `safeflow audit verify` to see what changed, and restore the database from a backup "+
		"taken before it; safeflow appends no record to a log it cannot continue", ErrHeadBehind, headSeq, last.Int64)
}

// RunAuditChainer chains pending audit records every interval, and once
// more when ctx ends, so that none is left unchained at shutdown. Chaining
// in batches costs a few statements per interval instead of a turn on the
// chain's head for every message; a record is unchained for at most about
// one interval.
//
// A failed round is given to report (when not nil) and tried again at the
// next tick: the records wait in audit_pending meanwhile, and a chainer
// that gave up would leave them there for good.
func (s *Store) RunAuditChainer(ctx context.Context, interval time.Duration, report func(error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.ChainAudit(ctx); err != nil && ctx.Err() == nil && report != nil {
			report(err)
		}
		select {
		case <-ctx.Done():
			_, err := s.ChainAudit(context.WithoutCancel(ctx))
			return err
		case <-t.C:
		}
	}
}

// ErrChainPrivileges is returned (wrapped) by ChainAudit when the database
// role may not chain audit records: on PostgreSQL, a service role without
// the grants of docs/operations.md.
var ErrChainPrivileges = errors.New("this database role may not chain audit records: as the owner, run the service-role grants " +
	"in docs/operations.md (\"PostgreSQL roles\") again")

// chainErr names a missing privilege as ErrChainPrivileges.
func chainErr(err error) error {
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege
		return fmt.Errorf("%w (%v)", ErrChainPrivileges, err)
	}
	return err
}

// Audit appends records written outside a conversation (logins, reloads,
// key rotations) in their own transaction.
func (s *Store) Audit(ctx context.Context, records ...audit.Record) error {
	if err := s.withTx(ctx, func(tx *sqlx.Tx) error {
		for i := range records {
			if records[i].Time.IsZero() {
				records[i].Time = s.now()
			}
		}
		return appendAudit(ctx, s, tx, records)
	}); err != nil {
		return err
	}
	// Records written outside a conversation are few: chain them now, so a
	// command that audits and then exports finds its own record.
	_, err := s.ChainAudit(ctx)
	return err
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
//
// Pending records are chained first, so the log read is complete up to now.
func (s *Store) AuditRecords(ctx context.Context, since time.Time) ([]audit.Record, error) {
	var out []audit.Record
	err := s.EachAuditRecord(ctx, since, func(r *audit.Record) error {
		out = append(out, *r)
		return nil
	})
	return out, err
}

// EachAuditRecord calls fn with each audit record at or after since, in
// storage order, reading them as it goes: an export of a log of millions
// of records holds one at a time. An error from fn stops it and is
// returned. Pending records are chained first.
func (s *Store) EachAuditRecord(ctx context.Context, since time.Time, fn func(*audit.Record) error) error {
	if err := s.chainBeforeReading(ctx); err != nil {
		return err
	}
	return s.eachAuditRecord(ctx, s.db, since, fn)
}

func (s *Store) eachAuditRecord(ctx context.Context, q sqlx.QueryerContext, since time.Time, fn func(*audit.Record) error) error {
	rows, err := q.QueryxContext(ctx, s.q(`SELECT seq, at, actor_type, actor_id, actor_role, source, action, object,
		conversation_id, channel, outcome, reason, request_id, prev_hash, hash FROM audit_log WHERE at >= ? ORDER BY seq`), micros(since))
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var row auditRow
		if err := rows.StructScan(&row); err != nil {
			return fmt.Errorf("read audit log: %w", err)
		}
		r := row.record()
		if err := fn(&r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	return nil
}

// chainBeforeReading chains what is pending, so that a read of the log is
// complete up to now. A log that cannot be continued (ErrHeadBehind) is
// still read as it is: that is when verify and export matter most.
func (s *Store) chainBeforeReading(ctx context.Context) error {
	if _, err := s.ChainAudit(ctx); err != nil && !errors.Is(err, ErrHeadBehind) {
		return err
	}
	return nil
}

// auditLinks returns the whole log's links, in storage order: what
// following a broken chain needs, in a fraction of the records' memory.
func (s *Store) auditLinks(ctx context.Context, q sqlx.QueryerContext) ([]audit.Link, error) {
	rows, err := q.QueryxContext(ctx, `SELECT seq, prev_hash, hash FROM audit_log ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var links []audit.Link
	for rows.Next() {
		var l audit.Link
		if err := rows.Scan(&l.Seq, &l.PrevHash, &l.Hash); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		links = append(links, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return links, nil
}

// record turns a row into an audit record.
func (r auditRow) record() audit.Record {
	return audit.Record{Seq: r.Seq, Time: time.UnixMicro(r.At).UTC(), Actor: audit.Actor{Type: r.ActorType, ID: r.ActorID, Role: r.ActorRole},
		Source: r.Source, Action: r.Action, Object: r.Object, Conversation: r.Conv, Channel: r.Channel, Outcome: r.Outcome,
		Reason: r.Reason, RequestID: r.RequestID, PrevHash: r.PrevHash, Hash: r.Hash}
}

// VerifyAudit checks the whole audit log against its head: it returns nil
// when the chain is whole, or the first problem, naming the record.
//
// Besides what audit.VerifyUpTo finds, the head lets it see two changes a
// chain alone cannot: the last record rewritten with its hash computed
// again, and records added after the last one that safeflow wrote, since
// every append moves the head in the same transaction.
//
// The log is read as a stream (audit.Scan): an intact log of millions of
// records is checked in constant memory. Only a damaged one is read a
// second time, as links, to follow its chain and name the problem.
func (s *Store) VerifyAudit(ctx context.Context) (*audit.Problem, error) {
	_, p, err := s.VerifyAuditCounted(ctx)
	return p, err
}

// VerifyAuditCounted is VerifyAudit that also returns how many records it
// read: the log as it was verified, not as it is a moment later.
func (s *Store) VerifyAuditCounted(ctx context.Context) (int, *audit.Problem, error) {
	if err := s.chainBeforeReading(ctx); err != nil {
		return 0, nil, err
	}
	var opts *sql.TxOptions
	if s.pg {
		// One snapshot for the head and the records; SQLite's single
		// connection gives that already.
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := s.db.BeginTxx(ctx, opts)
	if err != nil {
		return 0, nil, fmt.Errorf("verify audit log: %w", err)
	}
	defer tx.Rollback()
	var head struct {
		Seq  int64  `db:"seq"`
		Hash []byte `db:"hash"`
	}
	if err := tx.GetContext(ctx, &head, `SELECT seq, hash FROM audit_head WHERE id = 1`); err != nil {
		return 0, nil, fmt.Errorf("audit head: %w", err)
	}
	var scan audit.Scan
	var problem *audit.Problem
	var atHead []byte // the hash of record head.Seq
	errFound := errors.New("found")
	err = s.eachAuditRecord(ctx, tx, time.Time{}, func(r *audit.Record) error {
		if problem = scan.Add(r); problem != nil {
			return errFound
		}
		if r.Seq == head.Seq {
			atHead = r.Hash
		}
		return nil
	})
	if problem != nil {
		return scan.Len(), problem, nil
	}
	if err != nil {
		return 0, nil, err
	}
	if scan.Whole() {
		// Records 1 to n in order: those up to the head are the first.
		n := int64(scan.Len())
		known := min(n, head.Seq)
		return scan.Len(), againstHead(scan.UpTo(head.Seq), known, n, atHead, known+1, head.Seq, head.Hash), nil
	}
	links, err := s.auditLinks(ctx, tx)
	if err != nil {
		return 0, nil, err
	}
	known := len(links)
	for known > 0 && links[known-1].Seq > head.Seq {
		known--
	}
	var knownHash []byte
	if known > 0 {
		knownHash = links[known-1].Hash
	}
	var beyond int64
	if known < len(links) {
		beyond = links[known].Seq
	}
	return len(links), againstHead(audit.FollowUpTo(links[:known], head.Seq), int64(known), int64(len(links)), knownHash, beyond, head.Seq, head.Hash), nil
}

// againstHead finishes a check of the log against its head: chained is
// what following the records up to the head found; known of the log's n
// records are those up to the head, knownHash is the hash of the last of
// them, and beyondSeq the number of the record after them, if any.
func againstHead(chained *audit.Problem, known, n int64, knownHash []byte, beyondSeq, headSeq int64, headHash []byte) *audit.Problem {
	if chained != nil {
		return chained
	}
	if known > 0 && !bytes.Equal(knownHash, headHash) {
		return &audit.Problem{Seq: headSeq, Kind: audit.KindEdited, Index: int(known - 1),
			Detail: "its hash is not the one recorded at the head of the log, so it was changed and its hash computed again"}
	}
	if known < n {
		return &audit.Problem{Seq: beyondSeq, Kind: audit.KindInserted, Index: int(known),
			Detail: fmt.Sprintf("it comes after record %d, the last one safeflow appended", headSeq)}
	}
	return nil
}

// chain links records after head (seq 0: the log is empty) and returns
// the last of them: the new head.
func chain(head *audit.Record, records []audit.Record) *audit.Record {
	prev := head
	if head.Seq == 0 {
		prev = nil
	}
	for i := range records {
		audit.Chain(prev, &records[i])
		prev = &records[i]
	}
	return prev
}

// insertStmt is the INSERT that appends chained records, a parameter per
// field.
func insertStmt(records []audit.Record) (string, []any) {
	args := make([]any, 0, len(records)*15)
	for _, rec := range records {
		args = append(args, rec.Seq, rec.Time.UnixMicro(), rec.Actor.Type, rec.Actor.ID, rec.Actor.Role, rec.Source, rec.Action,
			rec.Object, rec.Conversation, rec.Channel, rec.Outcome, rec.Reason, rec.RequestID, rec.PrevHash, rec.Hash)
	}
	return `INSERT INTO audit_log (seq, at, actor_type, actor_id, actor_role, source, action, object,
		conversation_id, channel, outcome, reason, request_id, prev_hash, hash) VALUES ` + values(len(records), 15), args
}

// moveChained moves chained records from audit_pending to the log and
// moves the head, through audit_chain (migration 14): a function of the
// owner's, so the service's role can neither change nor delete a pending
// record. Only what chaining added (sequence numbers and hashes) is sent, as
// arrays; the rows' fields go from table to table inside the server. The
// function refuses records that do not continue the chain from the head.
func moveChained(ctx context.Context, tx *sqlx.Tx, ids []int64, records []audit.Record) error {
	seq, prev, hash := make([]int64, len(records)), make([][]byte, len(records)), make([][]byte, len(records))
	for i, r := range records {
		seq[i], prev[i], hash[i] = r.Seq, r.PrevHash, r.Hash
	}
	var moved int
	if err := tx.QueryRowContext(ctx, `SELECT audit_chain($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])`,
		pq.Array(ids), pq.Array(seq), pq.Array(prev), pq.Array(hash)).Scan(&moved); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if moved != len(ids) {
		return fmt.Errorf("append audit: moved %d of %d pending records", moved, len(ids))
	}
	return nil
}

// clearStmt deletes chained records from audit_pending, a parameter per id.
func clearStmt(ids []int64) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return `DELETE FROM audit_pending WHERE id IN ` + values(1, len(ids)), args
}
