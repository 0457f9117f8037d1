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

// RunSeenPruner forgets provider message ids older than retention at start
// and then every interval, a batch at a time so that no transaction is
// long, until ctx ends. It tells report what each round forgot, or the
// error that cut it short; the next round tries again.
func (s *Store) RunSeenPruner(ctx context.Context, retention, interval time.Duration, report func(forgot int64, err error)) {
	const batch = 1000
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var total int64
		var err error
		for {
			var n int64
			n, err = s.PruneInboundSeen(ctx, s.now().Add(-retention), batch)
			total += n
			if err != nil || n < batch {
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
		if (total > 0 || err != nil) && report != nil {
			report(total, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
