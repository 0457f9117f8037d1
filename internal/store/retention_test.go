package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/pgtest"
	"github.com/safeflow/safeflow/internal/store"
)

// Old provider message ids are forgotten in batches, oldest first, and a
// forgotten id counts as new again while a kept one is still a replay.
// retentionDSNs open a fresh database of each kind.
var retentionDSNs = map[string]func(t *testing.T) string{
	"SQLite":     func(t *testing.T) string { return "sqlite:" + t.TempDir() + "/retention.db" },
	"PostgreSQL": func(t *testing.T) string { return pgtest.Shared(t).CreateDB(t, "") },
}

// clockedStore opens a store on dsn whose clock the test sets.
func clockedStore(t *testing.T, dsn string) (s *store.Store, clock func() time.Time, setClock func(time.Time)) {
	t.Helper()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	setClock = func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	s, err := store.Open(t.Context(), dsn, newRing(t), store.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clock, setClock
}

func TestPruneInboundSeen(t *testing.T) {
	for name, dsn := range retentionDSNs {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, clock, setClock := clockedStore(t, dsn(t))
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
			reports := make(chan store.Pruned, 4)
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.RunPruner(run, time.Hour, func(p store.Pruned, err error) {
					if err != nil {
						t.Errorf("pruner: %v", err)
					}
					reports <- p
				})
			}()
			select {
			case p := <-reports:
				if p.Seen != 2 {
					t.Errorf("the pruner forgot %d ids at start, want 2 (SMold1 again and SMnew)", p.Seen)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the pruner reported nothing")
			}
			stop()
			<-done
		})
	}
}

// Replies are removed from the outbox 30 days after they were finished
// (sent, delivered, undelivered), oldest first, a batch at a time. What is
// not finished (waiting, being sent, dead letters) stays, however old, and
// so does a reply finished recently.
func TestPruneOutbox(t *testing.T) {
	for name, dsn := range retentionDSNs {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			s, clock, setClock := clockedStore(t, dsn(t))
			write := func(n int) []store.Pending {
				t.Helper()
				out := make([]*engine.Outbound, n)
				for i := range out {
					out[i] = &engine.Outbound{ConversationID: "conv", ContactID: fmt.Sprintf("contact-%d", i), Channel: engine.SMS,
						Address: "+12015550100", Text: "See you Tuesday."}
				}
				if err := s.Tx(ctx, func(tx engine.Tx) error { return tx.Append(ctx, nil, out, nil) }); err != nil {
					t.Fatal(err)
				}
				claimed, err := s.ClaimOutbox(ctx, clock(), clock(), time.Minute, n)
				if err != nil || len(claimed) != n {
					t.Fatalf("claimed %d (%v), want %d", len(claimed), err, n)
				}
				return claimed
			}
			old := write(8)
			var sent []store.Sent
			for i, p := range old[:5] {
				sent = append(sent, store.Sent{Key: p.Key, ProviderID: fmt.Sprintf("SM%d", i)})
			}
			must(t, s.MarkSent(ctx, sent...))
			must(t, s.UpdateDelivery(ctx, engine.DeliveryStatus{Channel: engine.SMS, ProviderID: "SM0", Status: "delivered"}))
			must(t, s.UpdateDelivery(ctx, engine.DeliveryStatus{Channel: engine.SMS, ProviderID: "SM1", Status: "undelivered"}))
			must(t, s.MarkFailed(ctx, old[5].Key, clock(), true, "21610"))                 // a dead letter
			must(t, s.MarkFailed(ctx, old[6].Key, clock().Add(time.Hour), false, "30003")) // to be tried again
			// old[7] stays claimed, being sent.

			setClock(clock().Add(store.OutboxRetention + 24*time.Hour))
			recent := write(1)
			must(t, s.MarkSent(ctx, store.Sent{Key: recent[0].Key, ProviderID: "SMrecent"}))

			cutoff := clock().Add(-store.OutboxRetention)
			for i, want := range []int64{2, 2, 1, 0} {
				n, err := s.PruneOutbox(ctx, cutoff, 2)
				if err != nil || n != want {
					t.Fatalf("prune round %d: removed %d (%v), want %d", i+1, n, err, want)
				}
			}
			var left []string
			if err := s.DB().Select(&left, `SELECT status FROM outbox ORDER BY status`); err != nil {
				t.Fatal(err)
			}
			if want := []string{"dead", "pending", "sending", "sent"}; !slices.Equal(left, want) {
				t.Errorf("outbox after pruning: %v, want %v (the unfinished old ones and the recent reply)", left, want)
			}

			// The pruner removes them too, and says how many.
			setClock(clock().Add(store.OutboxRetention + 24*time.Hour))
			run, stop := context.WithCancel(ctx)
			defer stop()
			reports := make(chan store.Pruned, 1)
			go s.RunPruner(run, time.Hour, func(p store.Pruned, err error) {
				if err != nil {
					t.Errorf("pruner: %v", err)
				}
				reports <- p
			})
			select {
			case p := <-reports:
				if p.Outbox != 1 {
					t.Errorf("the pruner removed %d finished replies, want 1 (the recent one, now old)", p.Outbox)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the pruner reported nothing")
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
