package loadgen

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// RowsWritten returns how many rows of the user tables of dsn's database
// were inserted, updated or deleted, as PostgreSQL's statistics count them.
// A backend reports its counts at most once a second, and when it exits, so
// the figure is read until two readings 200 ms apart agree (for at most
// five seconds): call it after the writers have closed their connections.
func RowsWritten(ctx context.Context, dsn string) (int64, error) {
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return 0, fmt.Errorf("rows written: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	read := func() (int64, error) {
		var n int64
		err := db.GetContext(ctx, &n, `SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_user_tables`)
		if err != nil {
			return 0, fmt.Errorf("rows written: %w", err)
		}
		return n, nil
	}
	last, err := read()
	if err != nil {
		return 0, err
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		n, err := read()
		if err != nil {
			return 0, err
		}
		if n == last {
			break
		}
		last = n
	}
	return last, nil
}
