package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/internal/store"
	"github.com/safeflow/safeflow/internal/store/storetest"
)

// On SQLite, a service owns its file: a second service on the same file is
// refused until the first closes, and the one that starts returns to the
// outbox the replies a crashed run left claimed. On PostgreSQL, where other
// nodes may be sending what they claimed, claims are left to their leases.
func TestStartService(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			ring := newRing(t)
			s, dsn := b.open(t, ring)
			storetest.WriteOutbound(t, s, "+15550100001", "ana 1")
			storetest.WriteOutbound(t, s, "+15550100002", "ben 1", "ben 2")
			// A run that crashed: it claimed two messages and sent one.
			claimed, err := s.ClaimOutbox(ctx, time.Now(), time.Now(), time.Minute, 10)
			if err != nil || len(claimed) != 2 {
				t.Fatalf("claimed %d, %v; want ana 1 and ben 1", len(claimed), err)
			}
			if err := s.MarkSent(ctx, store.Sent{Key: claimed[0].Key, ProviderID: "SM1"}); err != nil {
				t.Fatal(err)
			}

			released, err := s.StartService(ctx)
			if err != nil {
				t.Fatal(err)
			}
			stillClaimed := countRows(t, s, "outbox WHERE status = 'sending'")
			if s.Postgres() {
				if released != 0 || stillClaimed != 1 {
					t.Errorf("released %d, %d still claimed; want the claim left to its lease", released, stillClaimed)
				}
				return
			}
			if released != 1 || stillClaimed != 0 {
				t.Errorf("released %d, %d still claimed; want the unsent one released", released, stillClaimed)
			}
			got, err := s.ClaimOutbox(ctx, time.Now(), time.Now(), time.Minute, 10)
			if err != nil || len(got) != 1 || got[0].Key != claimed[1].Key {
				t.Errorf("after the start the search claimed %v, %v; want %s at once", texts(got), err, claimed[1].Text)
			}

			other, err := store.Open(ctx, dsn, ring)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if _, err := other.StartService(ctx); !errors.Is(err, store.ErrFileInUse) || !strings.Contains(err.Error(), strings.TrimPrefix(dsn, "sqlite:")) {
				t.Errorf("a second service on the file: %v; want ErrFileInUse naming the file", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := other.StartService(ctx); err != nil {
				t.Errorf("once the first service closed, the second could not start: %v", err)
			}
		})
	}
}
