package store_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/store"
)

// countRows counts a table's rows.
func countRows(t *testing.T, s *store.Store, table string) int {
	t.Helper()
	var n int
	if err := s.DB().Get(&n, "SELECT COUNT(*) FROM "+table); err != nil {
		t.Fatal(err)
	}
	return n
}

// contactEvent writes contact i and one audit event about it in tx.
func contactEvent(ctx context.Context, tx engine.Tx, i int) error {
	c := &engine.Contact{Channel: engine.SMS, Address: fmt.Sprintf("+1201555%04d", i)}
	if err := tx.SaveContact(ctx, c); err != nil {
		return err
	}
	ev := []engine.Event{{Actor: "contact", ActorID: c.ID, Action: engine.EventMessageIn, Outcome: "ok", At: time.Now()}}
	return tx.Append(ctx, nil, nil, ev)
}

// eventTx writes one contact and one audit event in a transaction, and
// fails it when fail is set.
func eventTx(ctx context.Context, s *store.Store, i int, fail bool) error {
	return s.Tx(ctx, func(tx engine.Tx) error {
		if err := contactEvent(ctx, tx, i); err != nil {
			return err
		}
		if fail {
			return fmt.Errorf("the action failed")
		}
		return nil
	})
}

// Audit records commit with their action and reach the chained log when the
// chainer runs: a rolled-back action leaves no record, the running chainer
// picks records up, stopping it chains the rest, and many writers at once
// leave a whole chain.
func TestAuditChainer(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s, _ := b.open(t, newRing(t))

			if err := eventTx(ctx, s, 0, true); err == nil {
				t.Fatal("the failing transaction succeeded")
			}
			if n := countRows(t, s, "audit_pending"); n != 0 {
				t.Fatalf("a rolled-back action left %d pending audit records", n)
			}

			if err := eventTx(ctx, s, 1, false); err != nil {
				t.Fatal(err)
			}
			// PostgreSQL leaves the record for the chainer; SQLite, with its
			// single writer, chains it in the action's own transaction.
			wantPending, wantChained := 1, 0
			if !s.Postgres() {
				wantPending, wantChained = 0, 1
			}
			if p, l := countRows(t, s, "audit_pending"), countRows(t, s, "audit_log"); p != wantPending || l != wantChained {
				t.Fatalf("after one action: %d pending, %d chained; want %d and %d", p, l, wantPending, wantChained)
			}

			run, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.RunAuditChainer(run, 50*time.Millisecond, nil) }()
			deadline := time.Now().Add(5 * time.Second)
			for countRows(t, s, "audit_log") != 1 {
				if time.Now().After(deadline) {
					t.Fatal("the chainer did not chain the pending record")
				}
				time.Sleep(10 * time.Millisecond)
			}

			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := eventTx(ctx, s, 100+i, false); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			stop()
			if err := <-done; err != nil {
				t.Fatalf("the chainer stopped with %v", err)
			}
			if p, l := countRows(t, s, "audit_pending"), countRows(t, s, "audit_log"); p != 0 || l != 21 {
				t.Fatalf("after the chainer stopped: %d pending, %d chained; want 0 and 21", p, l)
			}
			if problem, err := s.VerifyAudit(ctx); err != nil || problem != nil {
				t.Fatalf("verify: %v %v", problem, err)
			}
		})
	}
}

// The statements of a message transaction are prepared after their first
// use and reused: once transactions of a shape have run, another prepares
// nothing new, and its writes land as the first one's did. (On SQLite the
// first transaction reads the audit head and the next moves the one it
// remembers, so two transactions make the full set.)
func TestStatementsPreparedOnce(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s, _ := b.open(t, newRing(t))
			before := store.PreparedCount(s)
			if err := eventTx(ctx, s, 1, false); err != nil {
				t.Fatal(err)
			}
			first := store.PreparedCount(s)
			if first <= before {
				t.Fatalf("no statement was prepared after a transaction (%d before, %d after)", before, first)
			}
			if err := eventTx(ctx, s, 2, false); err != nil {
				t.Fatal(err)
			}
			second := store.PreparedCount(s)
			if err := eventTx(ctx, s, 3, false); err != nil {
				t.Fatal(err)
			}
			if again := store.PreparedCount(s); again != second {
				t.Errorf("a third transaction of the same shape prepared %d more statements", again-second)
			}
			if n := countRows(t, s, "contacts"); n != 3 {
				t.Errorf("%d contacts after three transactions, want 3", n)
			}
			if n := countRows(t, s, "audit_pending") + countRows(t, s, "audit_log"); n != 3 {
				t.Errorf("%d audit records after three transactions, want 3", n)
			}
		})
	}
}

// On SQLite the store remembers the audit head it last wrote. When someone
// else moves the head (another process on the same file, or records
// written outside a conversation), the next transaction finds its guess
// wrong, reads the head, and the chain stays whole.
func TestSQLiteAuditHeadMovedElsewhere(t *testing.T) {
	ctx := t.Context()
	ring := newRing(t)
	a, path := openSQLite(t, ring)
	b := openDSN(t, "sqlite:"+path, ring)
	steps := []func() error{
		func() error { return eventTx(ctx, a, 0, false) },
		func() error { return eventTx(ctx, a, 1, false) }, // a's guess is right
		func() error { return eventTx(ctx, b, 2, false) }, // b appends behind a's back
		func() error { return eventTx(ctx, a, 3, false) }, // a's guess is wrong
		func() error {
			return a.Audit(ctx, audit.Record{Actor: audit.Actor{Type: "system"}, Action: "flows.reload", Outcome: "ok"})
		},
		func() error { return eventTx(ctx, a, 4, false) },
		func() error { return eventTx(ctx, a, 5, true) }, // rolled back
		func() error { return eventTx(ctx, a, 6, false) },
	}
	for i, step := range steps {
		err := step()
		if (err != nil) != (i == 6) {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if n := countRows(t, a, "audit_log"); n != 7 {
		t.Errorf("audit log holds %d records, want 7", n)
	}
	for _, s := range []*store.Store{a, b} {
		if p, err := s.VerifyAudit(ctx); err != nil || p != nil {
			t.Fatalf("verify: problem %v, error %v", p, err)
		}
	}
}

// Fields with the characters array literals and SQL escape (quotes,
// commas, braces, backslashes, NULL-looking text, non-ASCII) come back from
// the chained log as written, and the chain verifies.
func TestAuditFieldsSurviveChaining(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s, _ := b.open(t, newRing(t))
			odd := []string{`a "quoted", {braced} value`, `back\slash \\ and \x00ff`, "NULL", "", "café — ünïcode ✓", "line\nbreak\ttab"}
			var want []audit.Record
			for i, v := range odd {
				r := audit.Record{Actor: audit.Actor{Type: "user", ID: v, Role: odd[(i+1)%len(odd)]}, Source: "10.0.0.1",
					Action: "flows.reload", Object: v, Conversation: odd[(i+2)%len(odd)], Channel: "dashboard",
					Outcome: "failed", Reason: v, RequestID: odd[(i+3)%len(odd)]}
				want = append(want, r)
			}
			if err := s.Audit(ctx, want...); err != nil {
				t.Fatal(err)
			}
			got, err := s.AuditRecords(ctx, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d records back, want %d", len(got), len(want))
			}
			for i := range want {
				g, w := got[i], want[i]
				if g.Actor != w.Actor || g.Object != w.Object || g.Reason != w.Reason || g.Conversation != w.Conversation ||
					g.RequestID != w.RequestID || g.Source != w.Source {
					t.Errorf("record %d came back as %+v, want %+v", i+1, g, w)
				}
			}
			if p, err := s.VerifyAudit(ctx); err != nil || p != nil {
				t.Fatalf("verify: problem %v, error %v", p, err)
			}
		})
	}
}

// TestLongLogsAreReadAsAStream checks that verifying and exporting a long
// audit log hold a record at a time, not the log: the heap's peak while
// they run stays a small part of what the records alone would take. (A
// million records took 1.3 GB when the log was read whole.)
func TestLongLogsAreReadAsAStream(t *testing.T) {
	const n = 60_000
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t, newRing(t))
			ctx := t.Context()
			batch := make([]audit.Record, 0, 2_000)
			start := time.Now()
			for i := range n {
				batch = append(batch, audit.Record{Time: start.Add(time.Duration(i) * time.Millisecond),
					Actor: audit.Actor{Type: audit.ActorSystem, ID: fmt.Sprintf("worker-%026d", i)}, Action: audit.FlowReload,
					Object: fmt.Sprintf("flow-%026d", i), Outcome: audit.OutcomeOK, Reason: strings.Repeat("r", 100)})
				if len(batch) == cap(batch) {
					if err := s.Audit(ctx, batch...); err != nil {
						t.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			// What the records take in memory when held together.
			whole := heapGrowth(t, func() {
				records, err := s.AuditRecords(ctx, time.Time{})
				if err != nil || len(records) != n {
					t.Fatalf("%d records (%v), want %d", len(records), err, n)
				}
				runtime.KeepAlive(records)
			})
			verify := heapGrowth(t, func() {
				if p, err := s.VerifyAudit(ctx); p != nil || err != nil {
					t.Fatalf("VerifyAudit = %v, %v", p, err)
				}
			})
			count := 0
			export := heapGrowth(t, func() {
				err := s.EachAuditRecord(ctx, time.Time{}, func(*audit.Record) error { count++; return nil })
				if err != nil {
					t.Fatal(err)
				}
			})
			if count != n {
				t.Errorf("EachAuditRecord gave %d records, want %d", count, n)
			}
			t.Logf("heap peak over the start: records held together %d MB, verify %d MB, each %d MB", whole>>20, verify>>20, export>>20)
			if verify > whole/4 || export > whole/4 {
				t.Errorf("reading the log grew the heap by %d MB (verify) and %d MB (each), against %d MB for all the records: not a stream",
					verify>>20, export>>20, whole>>20)
			}
		})
	}
}

// heapGrowth runs fn and returns by how much the heap in use rose over
// its level at the start, at its highest, sampled every millisecond.
func heapGrowth(t *testing.T, fn func()) uint64 {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	done := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		top := uint64(0)
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			top = max(top, ms.HeapInuse)
			select {
			case <-done:
				sampled <- top
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	close(done)
	peak = max(peak, <-sampled)
	return peak - base
}

// A log whose head was moved back by hand cannot be continued: appending
// after the head would clash with the records past it. The append is
// refused with ErrHeadBehind, which says what to do, and nothing is lost or
// written.
func TestHeadBehindTheLogRefusesAppends(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := headMovedBack(t, b.open)
			before := countRows(t, s, "audit_log")

			events := []engine.Event{{Actor: "system", Action: engine.EventStepChange, Outcome: "ok", At: time.Now()}}
			err := s.Tx(t.Context(), func(tx engine.Tx) error { return tx.Append(t.Context(), nil, nil, events) })
			if s.Postgres() {
				// The record waits in audit_pending; the chainer refuses it.
				if err != nil {
					t.Fatal(err)
				}
				_, err = s.ChainAudit(t.Context())
				if n := countRows(t, s, "audit_pending"); n != 1 {
					t.Errorf("%d records pending, want the 1 written", n)
				}
			}
			if !errors.Is(err, store.ErrHeadBehind) {
				t.Fatalf("append after the head was moved back: %v, want ErrHeadBehind", err)
			}
			for _, want := range []string{"its head says record 2 is the last, but it holds records up to 3", "safeflow audit verify", "backup"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if n := countRows(t, s, "audit_log"); n != before {
				t.Errorf("the log went from %d to %d records", before, n)
			}
		})
	}
}

// Verify and export still read a log that cannot be continued, with
// records pending: verify names what was done.
func TestHeadBehindStillVerifies(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := headMovedBack(t, b.open)
			execSQL(t, s, `INSERT INTO audit_pending (at, actor_type, actor_id, actor_role, source, action, object, conversation_id,
				channel, outcome, reason, request_id) VALUES (1, 'system', '', '', '', 'flow.reload', '', '', '', 'ok', '', '')`)
			p, err := s.VerifyAudit(t.Context())
			if err != nil || p == nil || p.Seq != 2 || p.Kind != audit.KindEdited {
				t.Fatalf("VerifyAudit = %v, %v; want record 2 named as edited (the head's hash is record 3's)", p, err)
			}
			records, err := s.AuditRecords(t.Context(), time.Time{})
			if err != nil || len(records) != 3 {
				t.Fatalf("read %d records (%v), want the 3 in the log", len(records), err)
			}
		})
	}
}

// headMovedBack opens a store whose log holds 3 records and whose head was
// moved back by hand to record 2.
func headMovedBack(t *testing.T, open func(*testing.T, *seal.Ring) (*store.Store, string)) *store.Store {
	t.Helper()
	s, _ := open(t, newRing(t))
	writePending(t, s, 3)
	chainAudit(t, s)
	execSQL(t, s, `UPDATE audit_head SET seq = seq - 1`)
	return s
}
