package store_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/safeflow/safeflow/internal/store"
)

// The outbox claim and counts read the partial indexes of undelivered and
// dead rows, not the table: the sent history grows without bound.
func TestSQLiteOutboxQueriesUseIndexes(t *testing.T) {
	s, _ := openSQLite(t, newRing(t))
	for _, c := range []struct{ query, want string }{
		{`SELECT min(p.seq) FROM outbox p WHERE p.status IN ('pending', 'sending') GROUP BY p.contact_id`, "outbox_contact_undelivered"},
		{`SELECT COUNT(*) FROM outbox WHERE status = 'dead'`, "outbox_dead"},
	} {
		var plan []struct {
			ID     int    `db:"id"`
			Parent int    `db:"parent"`
			NotUse int    `db:"notused"`
			Detail string `db:"detail"`
		}
		if err := s.DB().Select(&plan, "EXPLAIN QUERY PLAN "+c.query); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, p := range plan {
			lines = append(lines, p.Detail)
		}
		if text := strings.Join(lines, "\n"); !strings.Contains(text, c.want) {
			t.Errorf("%s\nplan:\n%s\nwant it to use %s", c.query, text, c.want)
		}
	}
}

// On PostgreSQL the claims take their plans from a young outbox whose
// statistics are empty, as in the first minutes of a new database, and
// whose undelivered-rows index is full of entries for delivered rows: a
// claim by sequence number must look rows up by primary key and check the
// contact by its index, not walk an index from its start.
func TestPostgresClaimPlans(t *testing.T) {
	s, _ := openPostgres(t, newRing(t))
	execSQL(t, s, `INSERT INTO outbox (id, conversation_id, contact_id, channel, address_sealed, body_sealed, status, next_attempt, created, updated)
		SELECT 'o' || g, 'v' || (g % 500), 'c' || (g % 500), 'sms', '', '', 'pending', 0, 0, 0 FROM generate_series(1, 20000) g`)
	execSQL(t, s, `UPDATE outbox SET status = 'sent' WHERE seq % 100 <> 0`)
	search, rows := store.ClaimQueries(s)
	explain := func(query string, args ...any) string {
		t.Helper()
		var lines []string
		if err := s.DB().Select(&lines, "EXPLAIN "+query, args...); err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	plan := explain(rows, 1, 1, 1, 1, pq.Array([]int64{19900, 20000}))
	for _, want := range []string{"outbox_pkey", "Index Cond: (seq = ANY", "Index Cond: (contact_id = o.contact_id)"} {
		if !strings.Contains(plan, want) {
			t.Errorf("claim by rows: the plan lacks %q:\n%s", want, plan)
		}
	}
	plan = explain(search, 1, 1, 1, 1, 64)
	if !strings.Contains(plan, "outbox_undelivered_by_contact") {
		t.Errorf("search: the plan does not read the index of undelivered rows:\n%s", plan)
	}
}

// The queue tables are vacuumed after a thousand dead rows, not PostgreSQL's
// default of a fifth of the table (migration 12).
func TestPostgresQueuesVacuumOften(t *testing.T) {
	s, _ := openPostgres(t, newRing(t))
	for _, table := range []string{"outbox", "audit_pending"} {
		var opts []string
		if err := s.DB().Select(&opts, `SELECT unnest(reloptions) FROM pg_class WHERE relname = $1`, table); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(opts, "autovacuum_vacuum_threshold=1000") {
			t.Errorf("%s has storage options %q, want autovacuum_vacuum_threshold=1000", table, opts)
		}
	}
}
