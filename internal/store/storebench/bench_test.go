// Package storebench measures the per-message store transaction on SQLite
// and PostgreSQL next to a raw baseline: the same SQL through sqlx with no
// sealing and no audit log, run in the same process at the same
// concurrency. The figure that matters is the ratio of the two.
package storebench

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/pgtest"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// backend opens a fresh store of one kind.
type backend struct {
	name string
	open func(b *testing.B) *store.Store
}

func backends() []backend {
	return []backend{
		{"sqlite", func(b *testing.B) *store.Store {
			return openStore(b, filepath.Join(b.TempDir(), "bench.db"))
		}},
		{"postgres", func(b *testing.B) *store.Store {
			return openStore(b, pgtest.Shared(b).CreateDB(b, ""))
		}},
	}
}

func openStore(b *testing.B, dsn string) *store.Store {
	ring, err := seal.Generate()
	if err != nil {
		b.Fatal(err)
	}
	s, err := store.Open(context.Background(), dsn, ring)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// conversation is one contact with an open conversation, set up before the
// timer starts.
type conversation struct {
	address string
	index   []byte
	contact string
	id      string
}

func setup(b *testing.B, s *store.Store, n int) []conversation {
	ctx := context.Background()
	convs := make([]conversation, n)
	for i := range convs {
		c := &convs[i]
		c.address = fmt.Sprintf("+1201555%04d", i)
		err := s.Tx(ctx, func(tx engine.Tx) error {
			ct := &engine.Contact{Channel: engine.SMS, Address: c.address}
			if err := tx.SaveContact(ctx, ct); err != nil {
				return err
			}
			cv := &engine.Conversation{ContactID: ct.ID, FlowID: "bench", FlowHash: "h", Step: "ask", Status: engine.Active,
				Vars: map[string]any{"first_name": "Ana"}, Origin: engine.SMS, Address: c.address, Created: time.Now()}
			if err := tx.SaveConversation(ctx, cv); err != nil {
				return err
			}
			c.contact, c.id = ct.ID, cv.ID
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.DB().Get(&c.index, s.DB().Rebind(`SELECT address_index FROM contacts WHERE id = ?`), c.contact); err != nil {
			b.Fatal(err)
		}
	}
	return convs
}

var msgSeq atomic.Int64

// ours is one message through the store as the engine drives it: de-dupe,
// find the contact, lock the conversation, save it, write two transcript
// lines, one outbox row and four audit records. As in the engine, a store
// whose transactions offer engine.InboundFinder (PostgreSQL) de-duplicates
// and finds the contact in one call.
func ours(ctx context.Context, s *store.Store, c conversation) error {
	return s.Tx(ctx, func(tx engine.Tx) error {
		id := fmt.Sprintf("SM%d", msgSeq.Add(1))
		var ct *engine.Contact
		if f, ok := tx.(engine.InboundFinder); ok {
			fresh, found, err := f.MarkInboundFind(ctx, engine.SMS, id, c.address)
			if err != nil {
				return err
			}
			if !fresh || found == nil {
				return fmt.Errorf("message %s: fresh %v, contact %v", id, fresh, found)
			}
			ct = found
		} else {
			if _, err := tx.MarkInbound(ctx, engine.SMS, id); err != nil {
				return err
			}
			var err error
			if ct, err = tx.ContactByAddress(ctx, engine.SMS, c.address); err != nil {
				return err
			}
		}
		cv, err := tx.OpenConversation(ctx, ct.ID)
		if err != nil {
			return err
		}
		cv.Vars["answer"] = "Tuesday"
		cv.Attempts++
		if err := tx.SaveConversation(ctx, cv); err != nil {
			return err
		}
		now := time.Now()
		lines := []engine.TranscriptLine{
			{ConversationID: cv.ID, At: now, Inbound: true, Channel: engine.SMS, Text: "Tuesday", Step: "ask"},
			{ConversationID: cv.ID, At: now, Channel: engine.SMS, Text: "You're booked for Tuesday. See you then!", Step: "done"},
		}
		out := []*engine.Outbound{{ConversationID: cv.ID, ContactID: ct.ID, Channel: engine.SMS, Address: c.address,
			Text: "You're booked for Tuesday. See you then!"}}
		events := []engine.Event{
			{Actor: "contact", ActorID: ct.ID, Action: engine.EventMessageIn, ConversationID: cv.ID, Channel: engine.SMS, Outcome: "ok", At: now},
			{Actor: "contact", ActorID: ct.ID, Action: engine.EventStepChange, Object: "done", ConversationID: cv.ID, Outcome: "ok", At: now},
			{Actor: "contact", ActorID: ct.ID, Action: engine.EventMessageOut, ConversationID: cv.ID, Channel: engine.SMS, Outcome: "ok", At: now},
			{Actor: "contact", ActorID: ct.ID, Action: engine.EventEnded, ConversationID: cv.ID, Outcome: "ok", At: now},
		}
		return tx.Append(ctx, lines, out, events)
	})
}

// raw is the same work as plain SQL: the statements the store sends, with
// plaintext values, no sealing and no audit log.
func raw(ctx context.Context, db *sqlx.DB, pg bool, c conversation, line int64) error {
	q := func(s string) string {
		if pg {
			return sqlx.Rebind(sqlx.DOLLAR, s)
		}
		return s
	}
	lock := ""
	if pg {
		lock = " FOR UPDATE"
	}
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := time.Now().UnixMicro()
	if _, err := tx.ExecContext(ctx, q(`INSERT INTO inbound_seen (channel, provider_id, seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`),
		"sms", fmt.Sprintf("RAW%d", msgSeq.Add(1)), now); err != nil {
		return err
	}
	var contact struct {
		ID       string `db:"id"`
		Channel  string `db:"channel"`
		Address  []byte `db:"address_sealed"`
		Language string `db:"language"`
		OptedOut bool   `db:"opted_out"`
	}
	if err := tx.GetContext(ctx, &contact, q(`SELECT id, channel, address_sealed, language, opted_out FROM contacts WHERE address_index = ?`), c.index); err != nil {
		return err
	}
	var step string
	var lines int64
	if err := tx.QueryRowxContext(ctx, q(`SELECT step, lines FROM conversations WHERE id = ?`+lock), c.id).Scan(&step, &lines); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q(`UPDATE conversations SET step = ?, status = ?, vars_sealed = ?, attempts = attempts + 1, lines = ?, updated = ? WHERE id = ?`),
		"done", "active", []byte(`{"first_name":"Ana","answer":"Tuesday"}`), lines+2, now, c.id); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q(`INSERT INTO transcript (conversation_id, n, at, inbound, channel, step, sensitive, body_sealed)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?)`),
		c.id, lines+1, now, true, "sms", "ask", false, []byte("Tuesday"),
		c.id, lines+2, now, false, "sms", "done", false, []byte("You're booked for Tuesday. See you then!")); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q(`INSERT INTO outbox (id, conversation_id, contact_id, channel, address_sealed, body_sealed, link, status, next_attempt, created, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`),
		fmt.Sprintf("raw-%d", msgSeq.Add(1)), c.id, c.contact, "sms", []byte(c.address), []byte("You're booked for Tuesday. See you then!"), false, now, now, now); err != nil {
		return err
	}
	return tx.Commit()
}

// parallel runs b.N calls of fn spread over workers goroutines, worker w
// always on conversation w.
func parallel(b *testing.B, workers int, fn func(w int) error, finish ...func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := fn(w); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, f := range finish {
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkMessageTx compares our per-message transaction with the raw
// baseline, per database and concurrency. Compare the msgs/s of
// .../ours/... with .../raw/... in the same run.
func BenchmarkMessageTx(b *testing.B) {
	for _, be := range backends() {
		for _, workers := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("%s/workers=%d/raw", be.name, workers), func(b *testing.B) {
				s := be.open(b)
				convs := setup(b, s, workers)
				var lineN atomic.Int64
				parallel(b, workers, func(w int) error {
					return raw(context.Background(), s.DB(), s.Postgres(), convs[w], lineN.Add(1))
				})
			})
			b.Run(fmt.Sprintf("%s/workers=%d/ours", be.name, workers), func(b *testing.B) {
				s := be.open(b)
				convs := setup(b, s, workers)
				// The audit chainer runs beside the writers, as in the service,
				// and the last records are chained inside the timed run.
				run, stop := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- s.RunAuditChainer(run, 100*time.Millisecond, nil) }()
				parallel(b, workers, func(w int) error { return ours(context.Background(), s, convs[w]) },
					func() error { stop(); return <-done })
			})
		}
	}
}
