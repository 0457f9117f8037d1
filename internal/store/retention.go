package store

import (
	"context"
	"fmt"
	"time"
)

// SeenRetention is how long a provider message id is remembered after it
// was first seen. Providers retry a webhook for hours at most; a replay
// older than this is handled as a new message.
const SeenRetention = 30 * 24 * time.Hour

// PruneInboundSeen forgets up to limit provider message ids first seen
// before cutoff, oldest first, and returns how many it forgot. Without it
// the de-duplication table grows by one row per message for ever.
func (s *Store) PruneInboundSeen(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	var n int64
	err := s.write(ctx, func(q statements) error {
		// SQLite appends rows in rowid order, which is time order; on
		// PostgreSQL a BRIN index on seen finds them.
		query := `DELETE FROM inbound_seen WHERE rowid IN (SELECT rowid FROM inbound_seen WHERE seen < ? ORDER BY rowid LIMIT ?)`
		if s.pg {
			query = `DELETE FROM inbound_seen WHERE ctid IN (SELECT ctid FROM inbound_seen WHERE seen < $1 LIMIT $2)`
		}
		res, err := q.ExecContext(ctx, query, micros(cutoff), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("forget old provider message ids: %w", err)
	}
	return n, nil
}

// OutboxRetention is how long a reply is kept once it is finished: sent,
// delivered or undelivered. Providers report delivery within hours; the
// text stays in the transcript. A dead letter, which no one has dealt with,
// is kept.
const OutboxRetention = 30 * 24 * time.Hour

// PruneOutbox removes up to limit finished replies last updated before
// cutoff, oldest first, and returns how many it removed. Without it every
// reply ever sent stays in the outbox, its text and the patient's address
// sealed but kept for ever: a copy the transcript makes needless.
func (s *Store) PruneOutbox(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	var n int64
	err := s.write(ctx, func(q statements) error {
		below, err := s.outboxWrittenBefore(ctx, q, micros(cutoff))
		if err != nil || below == 0 {
			return err
		}
		res, err := q.ExecContext(ctx, s.q(`DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox
			WHERE seq < ? AND status IN ('sent', 'delivered', 'undelivered') AND updated < ? ORDER BY seq LIMIT ?)`),
			below, micros(cutoff), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("remove old finished replies: %w", err)
	}
	return n, nil
}

// outboxWrittenBefore returns a sequence number below which the outbox's
// rows were written before cutoff (microseconds), or 0 when none was. Rows
// are numbered in the order they are written, so a binary search over the
// primary key finds it in a few lookups, where a filter on the time would
// read the whole table, with SQLite's one writer waiting. (On PostgreSQL
// concurrent writers may number rows a moment out of time order: a row
// near the bound is left for the next round.)
func (s *Store) outboxWrittenBefore(ctx context.Context, q statements, cutoff int64) (int64, error) {
	// first returns the first row at or after seq: its number and when it
	// was written; ok is false past the last row.
	first := func(seq int64) (at, created int64, ok bool, err error) {
		ok, err = scanOne(ctx, q, s.q(`SELECT seq, created FROM outbox WHERE seq >= ? ORDER BY seq LIMIT 1`), []any{seq}, &at, &created)
		return at, created, ok, err
	}
	lo, created, ok, err := first(0)
	if err != nil || !ok || created >= cutoff {
		return 0, err
	}
	// Invariant: row lo was written before cutoff; every row at or past hi
	// was written after it, or there is none.
	var last int64
	if _, err := scanOne(ctx, q, `SELECT MAX(seq) FROM outbox`, nil, &last); err != nil {
		return 0, err
	}
	hi := last + 1
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		at, created, ok, err := first(mid)
		switch {
		case err != nil:
			return 0, err
		case !ok || created >= cutoff:
			hi = mid
		default:
			lo = at
			if at >= hi { // numbered out of time order (PostgreSQL): stop here
				hi = at + 1
			}
		}
	}
	return hi, nil
}

// scanOne runs a query through q and scans its first row into dest; ok is
// false when it returns none.
func scanOne(ctx context.Context, q statements, query string, args []any, dest ...any) (ok bool, err error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	return true, rows.Scan(dest...)
}

// Pruned is what one round of the pruner removed.
type Pruned struct {
	// Seen is how many provider message ids older than SeenRetention were
	// forgotten; Outbox, how many replies finished before OutboxRetention.
	Seen, Outbox int64
}

// RunPruner removes, at start and then every interval, a batch at a time
// so that no transaction is long, provider message ids older than
// SeenRetention and finished replies older than OutboxRetention, until ctx
// ends. It tells report what each round removed, when it removed anything,
// or the error that cut it short; the next round tries again.
func (s *Store) RunPruner(ctx context.Context, interval time.Duration, report func(Pruned, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var round Pruned
		err := pruneAll(&round.Seen, func(limit int) (int64, error) {
			return s.PruneInboundSeen(ctx, s.now().Add(-SeenRetention), limit)
		})
		if err == nil {
			err = pruneAll(&round.Outbox, func(limit int) (int64, error) {
				return s.PruneOutbox(ctx, s.now().Add(-OutboxRetention), limit)
			})
		}
		if ctx.Err() != nil {
			return
		}
		if (round != Pruned{} || err != nil) && report != nil {
			report(round, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneAll calls prune a batch at a time until a batch comes back short,
// adding what it removed to total.
func pruneAll(total *int64, prune func(limit int) (int64, error)) error {
	const batch = 1000
	for {
		n, err := prune(batch)
		*total += n
		if err != nil || n < batch {
			return err
		}
	}
}
