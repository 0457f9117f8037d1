package store_test

import (
	"strings"
	"testing"
)

// The outbox claim and counts read the partial indexes of undelivered and
// dead rows, not the table: the sent history grows without bound.
func TestSQLiteOutboxQueriesUseIndexes(t *testing.T) {
	s, _ := openSQLite(t, newRing(t))
	for _, c := range []struct{ query, want string }{
		{`SELECT o.seq FROM outbox o WHERE o.status IN ('pending', 'sending') AND o.next_attempt <= 1
			AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.contact_id = o.contact_id AND p.seq < o.seq
			AND p.status IN ('pending', 'sending')) ORDER BY o.seq LIMIT 64`, "outbox_undelivered"},
		{`SELECT 1 FROM outbox p WHERE p.contact_id = 'c' AND p.seq < 5 AND p.status IN ('pending', 'sending')`, "outbox_contact_undelivered"},
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
