package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/store"
	"github.com/safeflow/safeflow/internal/store/storetest"
)

func texts(batch []store.Pending) []string {
	var got []string
	for _, p := range batch {
		got = append(got, p.Text)
	}
	return got
}

// ClaimOutboxRows claims rows by their IDs under the rules of the search:
// only the rows named, only due ones, only a contact's oldest undelivered
// message, and never a row claimed already.
func TestClaimOutboxRows(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := b.open(t, newRing(t))
			ana := storetest.WriteOutbound(t, s, "+15550100001", "ana 1", "ana 2")
			ben := storetest.WriteOutbound(t, s, "+15550100002", "ben 1")
			cy := storetest.WriteOutbound(t, s, "+15550100003", "cy 1")
			now := time.Now()

			got, err := s.ClaimOutboxRows(ctx, now, time.Minute, []int64{ana[0].ID, ana[1].ID, ben[0].ID})
			if err != nil {
				t.Fatal(err)
			}
			// Not cy's: it was not named. Not ana's second: her first is
			// undelivered.
			if want := []string{"ana 1", "ben 1"}; !slices.Equal(texts(got), want) {
				t.Fatalf("claimed %q, want %q", texts(got), want)
			}
			if got[0].Address != "+15550100001" || got[0].ID != ana[0].ID || got[0].Key == "" {
				t.Errorf("claimed row opened as %+v", got[0])
			}
			again, err := s.ClaimOutboxRows(ctx, now, time.Minute, []int64{ana[0].ID, ana[1].ID, ben[0].ID})
			if err != nil || len(again) != 0 {
				t.Fatalf("claimed again while leased: %q, %v", texts(again), err)
			}
			if err := s.MarkSent(ctx, store.Sent{Key: got[0].Key, ProviderID: "SM1"}); err != nil {
				t.Fatal(err)
			}
			got, err = s.ClaimOutboxRows(ctx, now, time.Minute, []int64{ana[0].ID, ana[1].ID})
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"ana 2"}; !slices.Equal(texts(got), want) {
				t.Fatalf("after ana's first was sent, claimed %q, want %q", texts(got), want)
			}
			// A failed row waits for its retry time.
			if err := s.MarkFailed(ctx, got[0].Key, now.Add(time.Hour), false, "503"); err != nil {
				t.Fatal(err)
			}
			if got, err := s.ClaimOutboxRows(ctx, now, time.Minute, []int64{ana[1].ID}); err != nil || len(got) != 0 {
				t.Fatalf("claimed a row before its retry time: %q, %v", texts(got), err)
			}
			if got, err := s.ClaimOutboxRows(ctx, now.Add(2*time.Hour), time.Minute, []int64{ana[1].ID}); err != nil || !slices.Equal(texts(got), []string{"ana 2"}) {
				t.Fatalf("at its retry time, claimed %q, %v; want ana 2", texts(got), err)
			}
			if got, err := s.ClaimOutboxRows(ctx, now, time.Minute, nil); err != nil || len(got) != 0 {
				t.Fatalf("no rows named: claimed %q, %v", texts(got), err)
			}
			// The search finds what no one named, once it is due by the
			// time given, and only each contact's oldest undelivered
			// message.
			dan := storetest.WriteOutbound(t, s, "+15550100004", "dan 1", "dan 2")
			if got, err := s.ClaimOutbox(ctx, now, now.Add(-time.Hour), time.Minute, 64); err != nil || len(got) != 0 {
				t.Fatalf("the search claimed %q, %v, before the messages were due", texts(got), err)
			}
			later := time.Now()
			got, err = s.ClaimOutbox(ctx, later, later, time.Minute, 64)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"cy 1", "dan 1"}; !slices.Equal(texts(got), want) || got[0].ID != cy[0].ID || got[1].ID != dan[0].ID {
				t.Fatalf("the search claimed %q, want %q", texts(got), want)
			}
			if got, err := s.ClaimOutbox(ctx, later, later, time.Minute, 64); err != nil || len(got) != 0 {
				t.Fatalf("the search claimed %q, %v, while each contact's oldest is leased", texts(got), err)
			}
			// When a lease ends, the row comes back: ben's too, claimed at
			// the start and never marked sent.
			got, err = s.ClaimOutbox(ctx, later.Add(2*time.Minute), later.Add(2*time.Minute), time.Minute, 64)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"ben 1", "cy 1", "dan 1"}; !slices.Equal(texts(got), want) {
				t.Fatalf("after the leases ended, the search claimed %q, want %q", texts(got), want)
			}
		})
	}
}

// OnOutbox hears of every committed transaction's outbox rows, alone or in
// a group commit, and of none that rolled back. A transaction's messages
// to a contact with nothing undelivered are inserted claimed, and handed
// over whole; the others by number.
func TestOnOutboxHearsOfCommittedRows(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t, newRing(t))
			var mu sync.Mutex
			var claimed []store.Pending
			var rest []int64
			s.OnOutbox(func(c []store.Pending, r []int64) {
				mu.Lock()
				claimed, rest = append(claimed, c...), append(rest, r...)
				mu.Unlock()
			})
			var wantClaimed, wantRest []int64
			var wmu sync.Mutex
			var wg sync.WaitGroup
			for i := range 12 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out := storetest.WriteOutbound(t, s, fmt.Sprintf("+1555010%04d", i), "one", "two")
					wmu.Lock()
					wantClaimed = append(wantClaimed, out[0].ID, out[1].ID)
					wmu.Unlock()
				}()
			}
			wg.Wait()
			err := s.Tx(context.Background(), func(tx engine.Tx) error {
				if err := tx.Append(context.Background(), nil, []*engine.Outbound{{ContactID: "nobody", Channel: engine.SMS, Text: "x"}}, nil); err != nil {
					return err
				}
				return errors.New("changed my mind")
			})
			if err == nil {
				t.Fatal("the failing transaction committed")
			}
			mu.Lock()
			var gotClaimed []int64
			for _, p := range claimed {
				gotClaimed = append(gotClaimed, p.ID)
				if (p.Text != "one" && p.Text != "two") || p.Key == "" {
					t.Errorf("handed over claimed %q with key %q; want the transactions' messages, with their row ids", p.Text, p.Key)
				}
			}
			for _, ids := range [][]int64{gotClaimed, rest, wantClaimed, wantRest} {
				slices.Sort(ids)
			}
			if !slices.Equal(gotClaimed, wantClaimed) || !slices.Equal(rest, wantRest) {
				t.Errorf("heard of claimed rows %v and others %v; want %v and %v", gotClaimed, rest, wantClaimed, wantRest)
			}
			mu.Unlock()
			// A later transaction's message to a contact whose earlier one
			// is undelivered waits its turn: not claimed.
			later := storetest.WriteOutbound(t, s, "+15550200000", "first")
			mu.Lock()
			claimed = claimed[:0]
			rest = rest[:0]
			mu.Unlock()
			err = s.Tx(context.Background(), func(tx engine.Tx) error {
				return tx.Append(context.Background(), nil, []*engine.Outbound{{ConversationID: later[0].ConversationID,
					ContactID: later[0].ContactID, Channel: engine.SMS, Address: "+15550200000", Text: "second"}}, nil)
			})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(claimed) != 0 || len(rest) != 1 {
				t.Errorf("behind an undelivered message: %d claimed, %d by number; want 0 and 1", len(claimed), len(rest))
			}
		})
	}
}

// Rows inserted claimed are leased: the search leaves them alone until the
// lease ends, and they are handed over, in order, with what the worker
// needs to send them. A row released unsent is due at once, still behind
// its contact's older messages.
func TestRowsInsertedClaimed(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := b.open(t, newRing(t))
			var claimed []store.Pending
			var rest []int64
			s.OnOutbox(func(c []store.Pending, r []int64) { claimed, rest = append(claimed, c...), append(rest, r...) })
			out := storetest.WriteOutbound(t, s, "+15550300000", "one", "two")
			if len(claimed) != 2 || len(rest) != 0 {
				t.Fatalf("claimed %d, by number %v; want both claimed", len(claimed), rest)
			}
			for i, p := range claimed {
				if p.ID != out[i].ID || p.Key == "" || p.Text != out[i].Text || p.Address != "+15550300000" || p.Outbound == out[i] {
					t.Errorf("handed over %+v; want a copy of message %d with its row id", p, i)
				}
			}
			now := time.Now()
			if got, err := s.ClaimOutbox(ctx, now, now, time.Minute, 64); err != nil || len(got) != 0 {
				t.Errorf("the search claimed %q, %v, during the lease", texts(got), err)
			}
			if got, err := s.ClaimOutboxRows(ctx, now, time.Minute, []int64{out[0].ID, out[1].ID}); err != nil || len(got) != 0 {
				t.Errorf("claimed %q, %v, during the lease", texts(got), err)
			}
			// "two" is released while "one" is out: due, but behind it.
			if err := s.ReleaseOutbox(ctx, claimed[1].Key); err != nil {
				t.Fatal(err)
			}
			if got, err := s.ClaimOutboxRows(ctx, time.Now(), time.Minute, []int64{out[1].ID}); err != nil || len(got) != 0 {
				t.Errorf("claimed %q, %v, behind the leased first message", texts(got), err)
			}
			if err := s.MarkSent(ctx, store.Sent{Key: claimed[0].Key, ProviderID: "SM1"}); err != nil {
				t.Fatal(err)
			}
			// Releasing a row that is not claimed changes nothing.
			if err := s.ReleaseOutbox(ctx, claimed[0].Key); err != nil {
				t.Fatal(err)
			}
			var status string
			if err := s.DB().Get(&status, s.DB().Rebind(`SELECT status FROM outbox WHERE id = ?`), claimed[0].Key); err != nil || status != "sent" {
				t.Errorf("a sent message released is %q (%v), want still sent", status, err)
			}
			if got, err := s.ClaimOutboxRows(ctx, time.Now(), time.Minute, []int64{out[1].ID}); err != nil || !slices.Equal(texts(got), []string{"two"}) {
				t.Errorf("after the first was sent, claimed %q, %v; want two", texts(got), err)
			}
			// Unsent, a message inserted claimed comes back when its lease
			// ends, as does "two", claimed above and never marked sent.
			again := storetest.WriteOutbound(t, s, "+15550300001", "lost")
			later := time.Now().Add(2 * time.Minute)
			got, err := s.ClaimOutbox(ctx, later, later, time.Minute, 64)
			if err != nil || !slices.Equal(texts(got), []string{"two", "lost"}) || got[1].ID != again[0].ID {
				t.Errorf("after the leases, the search claimed %q, %v; want two and lost", texts(got), err)
			}
		})
	}
}
