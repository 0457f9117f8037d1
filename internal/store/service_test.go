package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/safeflow/safeflow/internal/store"
	"github.com/safeflow/safeflow/internal/store/storetest"
)

// On SQLite, a service owns its file: a second service on the same file is
// refused until the first closes, and the one that opens returns to the
// outbox the replies a crashed run left claimed. On PostgreSQL, where other
// nodes may be sending what they claimed, claims are left to their leases.
func TestOpenAsService(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			ring := newRing(t)
			crashed, dsn := b.open(t, ring)
			storetest.WriteOutbound(t, crashed, "+15550100001", "ana 1")
			storetest.WriteOutbound(t, crashed, "+15550100002", "ben 1", "ben 2")
			// A run that crashed: it claimed two messages and sent one.
			claimed, err := crashed.ClaimOutbox(ctx, time.Now(), time.Now(), time.Minute, 10)
			if err != nil || len(claimed) != 2 {
				t.Fatalf("claimed %d, %v; want ana 1 and ben 1", len(claimed), err)
			}
			if err := crashed.MarkSent(ctx, store.Sent{Key: claimed[0].Key, ProviderID: "SM1"}); err != nil {
				t.Fatal(err)
			}

			s, err := store.Open(ctx, dsn, ring, store.AsService())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			stillClaimed := countRows(t, s, "outbox WHERE status = 'sending'")
			if s.Postgres() {
				if s.ReleasedAtStart() != 0 || stillClaimed != 1 {
					t.Errorf("released %d, %d still claimed; want the claim left to its lease", s.ReleasedAtStart(), stillClaimed)
				}
				return
			}
			if s.ReleasedAtStart() != 1 || stillClaimed != 0 {
				t.Errorf("released %d, %d still claimed; want the unsent one released", s.ReleasedAtStart(), stillClaimed)
			}
			got, err := s.ClaimOutbox(ctx, time.Now(), time.Now(), time.Minute, 10)
			if err != nil || len(got) != 1 || got[0].Key != claimed[1].Key {
				t.Errorf("after the start the search claimed %v, %v; want %s at once", texts(got), err, claimed[1].Text)
			}

			if other, err := store.Open(ctx, dsn, ring, store.AsService()); !errors.Is(err, store.ErrFileInUse) ||
				!strings.Contains(err.Error(), strings.TrimPrefix(dsn, "sqlite:")) {
				if other != nil {
					other.Close()
				}
				t.Errorf("a second service on the file: %v; want ErrFileInUse naming the file", err)
			}
			// Commands that do not serve open the file beside the service.
			tool, err := store.Open(ctx, dsn, ring)
			if err != nil {
				t.Errorf("a command could not open the file beside the service: %v", err)
			} else {
				tool.Close()
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			next, err := store.Open(ctx, dsn, ring, store.AsService())
			if err != nil {
				t.Fatalf("once the first service closed, the next could not open: %v", err)
			}
			next.Close()
		})
	}
}

// A service refused because another holds the file does not touch it: no
// migration runs, and a file that did not exist is not created.
func TestRefusedServiceLeavesTheFileAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "safeflow.db")
	held := flock.New(path + store.ServiceLockSuffix)
	if ok, err := held.TryLock(); !ok || err != nil {
		t.Fatalf("lock: %v, %v", ok, err)
	}
	defer held.Unlock()
	if s, err := store.Open(context.Background(), path, newRing(t), store.AsService()); !errors.Is(err, store.ErrFileInUse) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open while the lock is held: %v; want ErrFileInUse", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused service touched the database file: %v", err)
	}
}

// A new SQLite file, and the -wal and -shm files beside it, can be read
// only by their owner: they hold the audit log, flows, steps and times in
// the clear, beside the sealed values. A file that exists keeps its mode.
func TestNewSQLiteFileIsPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "safeflow.db")
	s, err := store.Open(t.Context(), path, newRing(t))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Play(t.Context(), t, s, storetest.Examples(t), storetest.Scripts()[0])
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(f), mode)
		}
	}
	s.Close()

	kept := filepath.Join(dir, "kept.db")
	if err := os.WriteFile(kept, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(t.Context(), kept, newRing(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if info, err := os.Stat(kept); err != nil || info.Mode().Perm() != 0o640 {
		t.Errorf("an existing file's mode changed: %v, %v", info.Mode().Perm(), err)
	}
}
