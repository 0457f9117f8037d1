package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/store"
	"github.com/safeflow/safeflow/internal/store/storetest"
)

// A backup taken while conversations and audit records are being written
// is one consistent database: it opens with the same key file, passes
// SQLite's integrity check, its audit chain verifies, and every message's
// transcript lines are there whole.
func TestBackupWhileWriting(t *testing.T) {
	dir := t.TempDir()
	ring := newRing(t)
	s, err := store.Open(t.Context(), filepath.Join(dir, "safeflow.db"), ring)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Play(t.Context(), t, s, storetest.Examples(t), storetest.Scripts()[0])

	// The service, writing without a pause, as another process would.
	service, err := store.Open(t.Context(), filepath.Join(dir, "safeflow.db"), ring)
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := service.Audit(context.Background(), audit.Record{Actor: audit.Actor{Type: audit.ActorSystem},
				Action: audit.FlowReload, Object: "intake", Outcome: audit.OutcomeOK}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	to := filepath.Join(dir, "copy.db")
	size, err := s.Backup(t.Context(), to)
	stop()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(to)
	if err != nil || info.Size() != size || size == 0 {
		t.Fatalf("copy: %v, size %d, reported %d", err, info.Size(), size)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("the copy has mode %o, want 600", mode)
	}

	c, err := store.Open(t.Context(), to, ring)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var check string
	if err := c.DB().Get(&check, `PRAGMA integrity_check`); err != nil || check != "ok" {
		t.Errorf("integrity_check on the copy: %q, %v", check, err)
	}
	if p, err := c.VerifyAudit(t.Context()); p != nil || err != nil {
		t.Errorf("VerifyAudit on the copy = %v, %v", p, err)
	}
	var convs []string
	if err := c.DB().Select(&convs, `SELECT id FROM conversations`); err != nil || len(convs) == 0 {
		t.Fatalf("%d conversations in the copy (%v)", len(convs), err)
	}
	for _, id := range convs {
		want, err := s.Transcript(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Transcript(t.Context(), id) // opens with the same key
		if err != nil || len(got) != len(want) {
			t.Fatalf("conversation %s: %d lines in the copy (%v), %d in the database", id, len(got), err, len(want))
		}
	}
}

// A backup never replaces a file, and on PostgreSQL points to pg_dump.
func TestBackupRefuses(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t, newRing(t))
			to := filepath.Join(t.TempDir(), "copy.db")
			if s.Postgres() {
				if _, err := s.Backup(t.Context(), to); err == nil || !strings.Contains(err.Error(), "pg_dump") {
					t.Errorf("Backup on PostgreSQL: %v, want a pointer to pg_dump", err)
				}
				return
			}
			if err := os.WriteFile(to, []byte("keep me"), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Backup(t.Context(), to); !errors.Is(err, store.ErrBackupExists) {
				t.Errorf("Backup over a file: %v, want ErrBackupExists", err)
			}
			if data, _ := os.ReadFile(to); string(data) != "keep me" {
				t.Errorf("the file was changed to %q", data)
			}
		})
	}
}
