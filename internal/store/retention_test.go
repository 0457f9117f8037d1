package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/pgtest"
	"github.com/safeflow/safeflow/internal/store"
)

// Old provider message ids are forgotten in batches, oldest first, and a
// forgotten id counts as new again while a kept one is still a replay.
func TestPruneInboundSeen(t *testing.T) {
	dsns := map[string]func(t *testing.T) string{
		"SQLite":     func(t *testing.T) string { return "sqlite:" + t.TempDir() + "/seen.db" },
		"PostgreSQL": func(t *testing.T) string { return pgtest.Shared(t).CreateDB(t, "") },
	}
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var mu sync.Mutex
			now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			setClock := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
			s, err := store.Open(ctx, dsn(t), newRing(t), store.WithClock(clock))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			mark := func(id string) bool {
				t.Helper()
				var fresh bool
				if err := s.Tx(ctx, func(tx engine.Tx) error {
					var err error
					fresh, err = tx.MarkInbound(ctx, engine.SMS, id)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				return fresh
			}
			for _, id := range []string{"SMold1", "SMold2", "SMold3"} {
				mark(id)
			}
			start := clock()
			setClock(start.Add(40 * 24 * time.Hour))
			mark("SMnew")

			cutoff := start.Add(10 * 24 * time.Hour)
			for i, want := range []int64{2, 1, 0} {
				n, err := s.PruneInboundSeen(ctx, cutoff, 2)
				if err != nil || n != want {
					t.Fatalf("prune round %d: forgot %d (%v), want %d", i+1, n, err, want)
				}
			}
			if !mark("SMold1") {
				t.Error("a forgotten id was still taken for a replay")
			}
			if mark("SMnew") {
				t.Error("a recent id was forgotten")
			}

			// The pruner forgets what is older than the retention at start.
			setClock(clock().Add(store.SeenRetention + time.Hour))
			run, stop := context.WithCancel(ctx)
			reports := make(chan int64, 4)
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.RunSeenPruner(run, store.SeenRetention, time.Hour, func(n int64, err error) {
					if err != nil {
						t.Errorf("pruner: %v", err)
					}
					reports <- n
				})
			}()
			select {
			case n := <-reports:
				if n != 2 {
					t.Errorf("the pruner forgot %d ids at start, want 2 (SMold1 again and SMnew)", n)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the pruner reported nothing")
			}
			stop()
			<-done
		})
	}
}
