package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/store"
)

// holdWriter starts a transaction that keeps SQLite's writer until release
// is closed, so that the transactions started meanwhile queue into one
// group. It returns a channel that yields the held transaction's result.
func holdWriter(t *testing.T, s *store.Store, release <-chan struct{}) <-chan error {
	t.Helper()
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Tx(context.Background(), func(engine.Tx) error {
			close(started)
			<-release
			return nil
		})
	}()
	<-started
	return done
}

// waitQueued waits until n transactions wait behind the held one; the
// store gives no count of waiters, so it waits a moment per transaction.
func waitQueued(n int) { time.Sleep(time.Duration(20+n) * time.Millisecond) }

// Transactions that wait together commit together, and one that fails, or
// panics, in a group is rolled back alone: the others' contacts and audit
// records are there, its own are not, and the chain is whole.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	ctx := context.Background()
	s, _ := openSQLite(t, newRing(t))
	release := make(chan struct{})
	held := holdWriter(t, s, release)
	commits0, _ := s.GroupCommits()

	const n = 12
	errs := make([]error, n)
	panics := make([]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panics[i] = recover() }()
			errs[i] = s.Tx(ctx, func(tx engine.Tx) error {
				if err := contactEvent(ctx, tx, i); err != nil {
					return err
				}
				switch i % 4 {
				case 1:
					return fmt.Errorf("transaction %d failed", i)
				case 3:
					panic(fmt.Sprintf("transaction %d panicked", i))
				}
				return nil
			})
		}()
	}
	waitQueued(n)
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatal(err)
	}

	for i := range n {
		switch i % 4 {
		case 1:
			if want := fmt.Sprintf("transaction %d failed", i); errs[i] == nil || errs[i].Error() != want {
				t.Errorf("transaction %d: got error %v, want %q", i, errs[i], want)
			}
		case 3:
			if want := fmt.Sprintf("transaction %d panicked", i); panics[i] != want {
				t.Errorf("transaction %d: its caller got panic %v, want %q", i, panics[i], want)
			}
		default:
			if errs[i] != nil || panics[i] != nil {
				t.Errorf("transaction %d: error %v, panic %v; want it committed", i, errs[i], panics[i])
			}
		}
		err := s.Tx(ctx, func(tx engine.Tx) error {
			_, err := tx.ContactByAddress(ctx, engine.SMS, fmt.Sprintf("+1201555%04d", i))
			return err
		})
		if committed := i%2 == 0; committed != (err == nil) {
			t.Errorf("contact of transaction %d: lookup says %v, want committed=%v", i, err, committed)
		}
	}
	if got := countRows(t, s, "audit_log"); got != n/2 {
		t.Errorf("audit log holds %d records, want %d (one per committed transaction)", got, n/2)
	}
	if p, err := s.VerifyAudit(ctx); err != nil || p != nil {
		t.Fatalf("verify: problem %v, error %v", p, err)
	}
	commits, _ := s.GroupCommits()
	// The held transaction, then the n queued ones in one group (at most
	// two if the last arrived late), then the lookups one by one.
	if grouped := commits - commits0 - 1 - n; grouped > 2 {
		t.Errorf("the %d queued transactions took %d commits; want them grouped into one or two", n, grouped)
	}
}

// A transaction whose context ends while it waits for the writer does not
// run, and says why; a closed store refuses new transactions.
func TestGroupCommitCancelAndClose(t *testing.T) {
	s, _ := openSQLite(t, newRing(t))
	release := make(chan struct{})
	held := holdWriter(t, s, release)

	ctx, cancel := context.WithCancel(context.Background())
	ran := false
	done := make(chan error, 1)
	go func() { done <- s.Tx(ctx, func(engine.Tx) error { ran = true; return nil }) }()
	waitQueued(1)
	cancel()
	close(release)
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled while waiting: got %v, want context.Canceled", err)
	}
	if ran {
		t.Error("the cancelled transaction ran")
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err := s.Tx(context.Background(), func(engine.Tx) error { return nil })
	if err == nil || err.Error() != "the store is closed" {
		t.Errorf("after Close: got %v, want %q", err, "the store is closed")
	}
}
