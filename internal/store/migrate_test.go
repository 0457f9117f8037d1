package store

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"

	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/seal"
)

// An audit log written before migration 6 rebuilt the SQLite table keeps
// every record, still verifies, and stays append-only afterwards.
func TestSQLiteAuditRebuildKeepsRecords(t *testing.T) {
	ctx := context.Background()
	name, err := sqliteDSN(filepath.Join(t.TempDir(), "old.db"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlx.Open("sqlite", name)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	fsys, err := fs.Sub(migrations, "migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.DB, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	ring, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{db: db, ring: ring, now: time.Now}
	for i := range 3 {
		rec := audit.Record{Actor: audit.Actor{Type: "user", ID: "u1", Role: "admin"}, Action: "keys.rotate",
			Object: "key-" + string(rune('a'+i)), Outcome: "ok"}
		if err := s.Audit(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	before, err := s.AuditRecords(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}

	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrating an old database: %v", err)
	}
	after, err := s.AuditRecords(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || len(after) != 3 {
		t.Fatalf("the audit log had %d records before the rebuild and %d after; want 3 and 3", len(before), len(after))
	}
	for i := range after {
		if after[i].Seq != before[i].Seq || string(after[i].Hash) != string(before[i].Hash) || after[i].Object != before[i].Object {
			t.Errorf("record %d changed in the rebuild: %+v became %+v", i, before[i], after[i])
		}
	}
	if p, err := s.VerifyAudit(ctx); err != nil || p != nil {
		t.Fatalf("verify after the rebuild: problem %v, error %v", p, err)
	}
	// New records chain on after the old ones.
	if err := s.Audit(ctx, audit.Record{Actor: audit.Actor{Type: "system"}, Action: "flows.reload", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.VerifyAudit(ctx); err != nil || p != nil {
		t.Fatalf("verify after a new record: problem %v, error %v", p, err)
	}
	var kind string
	if err := db.Get(&kind, `SELECT type FROM pragma_table_info('audit_log') WHERE name = 'seq'`); err != nil || kind != "INTEGER" {
		t.Errorf("audit_log.seq is %q (%v), want INTEGER: the rowid", kind, err)
	}
	for _, q := range []string{`UPDATE audit_log SET outcome = 'x' WHERE seq = 1`, `DELETE FROM audit_log WHERE seq = 1`} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s after the rebuild: got %v, want the append-only refusal", q, err)
		}
	}
}
