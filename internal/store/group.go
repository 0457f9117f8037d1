package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/safeflow/safeflow/engine"
)

// SQLite has one writer, so message transactions take turns anyway. Group
// commit lets the turns share a commit: a committer takes every transaction
// waiting at that moment (up to maxGroup), runs each in a savepoint of one
// database transaction, and commits them together. Each page the batch
// touches (the audit log's tail, its head, the outbox's tail and their
// indexes) goes to the write-ahead log once per batch instead of once per
// message. A transaction whose function fails is rolled back to its
// savepoint alone; the others commit. Tx returns only after the commit, so
// what it promises is unchanged. When one transaction waits, it runs alone,
// with no savepoint, on its caller's goroutine: nothing waits for a batch
// to fill.

// maxGroup bounds how many transactions share one commit, and with it how
// long the last of them waits.
const maxGroup = 64

// groupReq is one transaction waiting for its group.
type groupReq struct {
	ctx  context.Context
	fn   func(engine.Tx) error
	done chan groupResult
}

type groupResult struct {
	err      error
	panicked any  // what fn panicked with, to panic again in its caller
	lead     bool // not a result: the waiter is to commit the next group
}

// ok reports whether the transaction's function and writes succeeded.
func (r groupResult) ok() bool { return r.err == nil && r.panicked == nil }

// committer queues SQLite's engine transactions. There is no goroutine of
// its own: the caller that finds no group being committed commits the
// queue itself, and hands the turn to the first waiter when it is done. A
// lone transaction so runs on its caller's goroutine, as without groups.
type committer struct {
	s       *Store
	mu      sync.Mutex
	queue   []*groupReq
	leading bool
	closed  bool
	active  sync.WaitGroup
	// groups and grouped count commits and the transactions they held.
	groups, grouped atomic.Int64
}

var errClosed = errors.New("the store is closed")

func newCommitter(s *Store) *committer { return &committer{s: s} }

// do runs fn in a group and waits for the group's commit.
func (c *committer) do(ctx context.Context, fn func(engine.Tx) error) error {
	r := &groupReq{ctx: ctx, fn: fn, done: make(chan groupResult, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	c.active.Add(1)
	defer c.active.Done()
	c.queue = append(c.queue, r)
	lead := !c.leading
	c.leading = true
	c.mu.Unlock()
	if lead {
		c.commitNext()
	}
	res := <-r.done
	if res.lead {
		c.commitNext()
		res = <-r.done
	}
	if res.panicked != nil {
		panic(res.panicked)
	}
	return res.err
}

// commitNext commits the group at the head of the queue, then passes the
// turn to the next waiter, if any.
func (c *committer) commitNext() {
	c.mu.Lock()
	n := min(len(c.queue), maxGroup)
	batch := append([]*groupReq(nil), c.queue[:n]...)
	c.queue = append(c.queue[:0], c.queue[n:]...)
	c.mu.Unlock()

	c.s.commitGroup(batch)
	c.groups.Add(1)
	c.grouped.Add(int64(len(batch)))

	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		c.leading = false
		return
	}
	c.queue[0].done <- groupResult{lead: true}
}

// write runs fn with what a write outside the engine should go through. On
// SQLite that is a turn in the group commit, so the outbox bookkeeping of
// the delivery worker shares commits with message transactions instead of
// paying for its own, and its statements are prepared once like the
// message's; on PostgreSQL it is the pool, each statement its own
// transaction.
func (s *Store) write(ctx context.Context, fn func(statements) error) error {
	if s.group == nil {
		return fn(s.db)
	}
	return s.group.do(ctx, func(t engine.Tx) error { return fn(cached{t.(*tx)}) })
}

// statements runs SQL: the pool, or a transaction's prepared statements.
type statements interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// cached runs a transaction's statements through the store's prepared ones.
type cached struct{ t *tx }

func (c cached) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return c.t.exec(ctx, query, args...)
}

func (c cached) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.t.query(ctx, query, args...)
}

// GroupCommits reports how many commits SQLite's engine transactions took,
// and how many transactions those commits held: their ratio is the mean
// group size. Both are zero on PostgreSQL.
func (s *Store) GroupCommits() (commits, transactions int64) {
	if s.group == nil {
		return 0, 0
	}
	return s.group.groups.Load(), s.group.grouped.Load()
}

// close refuses new transactions and waits for those queued to end.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.active.Wait()
}

// commitGroup runs the batch's transactions in one database transaction
// and tells each how it ended.
func (s *Store) commitGroup(batch []*groupReq) {
	results := make([]groupResult, len(batch))
	finish := func(err error) {
		for i, r := range batch {
			if err != nil && results[i].ok() {
				results[i].err = err
			}
			r.done <- results[i]
		}
	}
	// The batch belongs to no one caller: a caller's cancelled context
	// must not roll back the others' work.
	ctx := context.Background()
	sqltx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		finish(fmt.Errorf("begin: %w", err))
		return
	}
	var unprepared []string
	var done []*tx
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i].err = err
			continue
		}
		t := newTx(s, sqltx)
		if len(batch) == 1 {
			results[i] = runGuarded(r.ctx, t, r.fn)
		} else {
			var fatal error
			if results[i], fatal = t.inSavepoint(r.ctx, r.fn); fatal != nil {
				sqltx.Rollback()
				finish(fmt.Errorf("group transaction: %w", fatal))
				return
			}
		}
		if results[i].ok() {
			done = append(done, t)
		}
		unprepared = append(unprepared, t.unprepared...)
	}
	if len(done) == 0 {
		sqltx.Rollback()
		finish(nil)
		return
	}
	if err := sqltx.Commit(); err != nil {
		for i := range results {
			if results[i].ok() {
				results[i].err = fmt.Errorf("commit: %w", err)
			}
		}
		finish(nil)
		return
	}
	s.committed(done...)
	finish(nil)
	if len(unprepared) > 0 {
		s.prepare(ctx, unprepared)
	}
}

// runGuarded runs fn and the buffered writes it leaves, turning a panic
// into a result.
func runGuarded(ctx context.Context, t *tx, fn func(engine.Tx) error) (res groupResult) {
	defer func() {
		if p := recover(); p != nil {
			res = groupResult{panicked: p}
		}
	}()
	if err := fn(t); err != nil {
		return groupResult{err: err}
	}
	return groupResult{err: t.commit(ctx)}
}

// inSavepoint runs one transaction of a group in a savepoint, and rolls
// the savepoint back when fn fails or panics, so the others are untouched.
// An error ending the savepoint leaves the group's transaction in doubt:
// it is returned as fatal, and the whole group is rolled back.
func (t *tx) inSavepoint(ctx context.Context, fn func(engine.Tx) error) (res groupResult, fatal error) {
	// The savepoint must begin and end whatever becomes of ctx.
	bg := context.WithoutCancel(ctx)
	if _, err := t.exec(bg, "SAVEPOINT grp"); err != nil {
		return groupResult{}, err
	}
	res = runGuarded(ctx, t, fn)
	if !res.ok() {
		if _, err := t.exec(bg, "ROLLBACK TO SAVEPOINT grp"); err != nil {
			return res, err
		}
	}
	if _, err := t.exec(bg, "RELEASE SAVEPOINT grp"); err != nil {
		return res, err
	}
	return res, nil
}
