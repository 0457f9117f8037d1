package memstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
)

var (
	ctx   = context.Background()
	t0    = time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	errNo = errors.New("roll back")
)

// mustTx runs fn in a transaction that must succeed.
func mustTx(t *testing.T, s *Store, fn func(engine.Tx) error) {
	t.Helper()
	if err := s.Tx(ctx, fn); err != nil {
		t.Fatal(err)
	}
}

func TestRollback(t *testing.T) {
	s := New()
	var contactID, convID string
	mustTx(t, s, func(tx engine.Tx) error {
		c := &engine.Contact{Channel: engine.SMS, Address: "+15550001"}
		if err := tx.SaveContact(ctx, c); err != nil {
			return err
		}
		conv := &engine.Conversation{ContactID: c.ID, Status: engine.Active, Step: "a", Vars: map[string]any{"x": 1}}
		if err := tx.SaveConversation(ctx, conv); err != nil {
			return err
		}
		contactID, convID = c.ID, conv.ID
		return tx.Append(ctx, []engine.TranscriptLine{{ConversationID: conv.ID, Text: "one"}},
			[]*engine.Outbound{{ConversationID: conv.ID, Text: "one"}}, []engine.Event{{Action: "a"}})
	})
	err := s.Tx(ctx, func(tx engine.Tx) error {
		if fresh, _ := tx.MarkInbound(ctx, engine.SMS, "SM9"); !fresh {
			t.Error("a new provider id was not fresh")
		}
		conv, err := tx.Conversation(ctx, convID)
		if err != nil {
			return err
		}
		conv.Step, conv.Vars["x"] = "b", 2
		if err := tx.SaveConversation(ctx, conv); err != nil {
			return err
		}
		if err := tx.SaveContact(ctx, &engine.Contact{Channel: engine.SMS, Address: "+15550002"}); err != nil {
			return err
		}
		if err := tx.SetTimers(ctx, convID, []engine.Timer{{ConversationID: convID, Due: t0}}); err != nil {
			return err
		}
		if err := tx.SaveLink(ctx, engine.SecureLink{ConversationID: convID}); err != nil {
			return err
		}
		// Enough records to fill a chunk and start another.
		lines := make([]engine.TranscriptLine, chunkSize+5)
		for i := range lines {
			lines[i] = engine.TranscriptLine{ConversationID: convID, Text: "rolled back"}
		}
		if err := tx.Append(ctx, lines, []*engine.Outbound{{Text: "two"}}, []engine.Event{{Action: "b"}}); err != nil {
			return err
		}
		return errNo
	})
	if !errors.Is(err, errNo) {
		t.Fatalf("Tx returned %v, want the function's error", err)
	}
	if c := s.Conversation(convID); c.Step != "a" || c.Vars["x"] != 1 {
		t.Errorf("conversation %s x=%v after a rollback, want a and 1", c.Step, c.Vars["x"])
	}
	if n := len(s.Transcript(convID)); n != 1 {
		t.Errorf("%d transcript lines after a rollback, want 1", n)
	}
	if n, m := len(s.Outbox()), len(s.Events()); n != 1 || m != 1 {
		t.Errorf("%d messages and %d events after a rollback, want 1 and 1", n, m)
	}
	if n, m := len(s.Timers()), len(s.Links()); n != 0 || m != 0 {
		t.Errorf("%d timers and %d links after a rollback, want none", n, m)
	}
	mustTx(t, s, func(tx engine.Tx) error {
		if fresh, _ := tx.MarkInbound(ctx, engine.SMS, "SM9"); !fresh {
			t.Error("a provider id marked in a rolled-back transaction is not fresh")
		}
		if _, err := tx.ContactByAddress(ctx, engine.SMS, "+15550002"); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("a contact saved in a rolled-back transaction: %v", err)
		}
		if c, err := tx.ContactByAddress(ctx, engine.SMS, "+15550001"); err != nil || c.ID != contactID {
			t.Errorf("ContactByAddress: %v, %v", c, err)
		}
		return nil
	})
	mustTx(t, s, func(tx engine.Tx) error {
		if fresh, _ := tx.MarkInbound(ctx, engine.SMS, "SM9"); fresh {
			t.Error("a committed provider id is fresh again")
		}
		if fresh, _ := tx.MarkInbound(ctx, engine.Messenger, "SM9"); !fresh {
			t.Error("the same id on another channel is not fresh")
		}
		return nil
	})
}

func TestCopiesAreIsolated(t *testing.T) {
	s := New()
	conv := &engine.Conversation{ContactID: "ct1", Status: engine.Active, Vars: map[string]any{"x": 1}}
	mustTx(t, s, func(tx engine.Tx) error { return tx.SaveConversation(ctx, conv) })
	conv.Vars["x"] = 99 // the caller's copy, after the save
	mustTx(t, s, func(tx engine.Tx) error {
		c, err := tx.Conversation(ctx, conv.ID)
		if err != nil {
			return err
		}
		c.Vars["x"] = 42 // changed but never saved
		return nil
	})
	if got := s.Conversation(conv.ID).Vars["x"]; got != 1 {
		t.Errorf("x = %v, want 1: the store must keep its own copy", got)
	}
	out := &engine.Outbound{Text: "hi"}
	mustTx(t, s, func(tx engine.Tx) error { return tx.Append(ctx, nil, []*engine.Outbound{out}, nil) })
	if out.ID == 0 {
		t.Error("Append did not set the message id")
	}
	out.Text = "changed"
	got := s.Outbox()
	got[0].Text = "changed too"
	if s.Outbox()[0].Text != "hi" {
		t.Error("changing a message after Append, or one Outbox returned, changed the store")
	}
}

func TestOpenConversation(t *testing.T) {
	s := New()
	first := &engine.Conversation{ContactID: "ct1", Status: engine.Active}
	mustTx(t, s, func(tx engine.Tx) error { return tx.SaveConversation(ctx, first) })
	mustTx(t, s, func(tx engine.Tx) error {
		c, err := tx.OpenConversation(ctx, "ct1")
		if err != nil || c.ID != first.ID {
			t.Fatalf("OpenConversation: %v, %v", c, err)
		}
		c.Status = engine.Ended
		if err := tx.SaveConversation(ctx, c); err != nil {
			return err
		}
		// Within the same transaction the ended one is no longer open.
		if _, err := tx.OpenConversation(ctx, "ct1"); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("OpenConversation after ending it: %v, want ErrNotFound", err)
		}
		return tx.SaveConversation(ctx, &engine.Conversation{ContactID: "ct1", Status: engine.Active})
	})
	mustTx(t, s, func(tx engine.Tx) error {
		c, err := tx.OpenConversation(ctx, "ct1")
		if err != nil || c.ID == first.ID {
			t.Errorf("OpenConversation: %v, %v; want the new conversation", c, err)
		}
		if _, err := tx.OpenConversation(ctx, "ct2"); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("OpenConversation of a contact without one: %v", err)
		}
		if _, err := tx.Conversation(ctx, "cv-none"); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("Conversation of an unknown id: %v", err)
		}
		if _, err := tx.Contact(ctx, "ct-none"); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("Contact of an unknown id: %v", err)
		}
		return nil
	})
}

func TestTimers(t *testing.T) {
	s := New()
	set := func(conv string, due ...time.Duration) {
		t.Helper()
		mustTx(t, s, func(tx engine.Tx) error {
			list := make([]engine.Timer, len(due))
			for i, d := range due {
				list[i] = engine.Timer{ConversationID: conv, Kind: engine.TimerTimeout, Due: t0.Add(d)}
			}
			return tx.SetTimers(ctx, conv, list)
		})
	}
	due := func(at time.Duration, limit int) []engine.Timer {
		t.Helper()
		var out []engine.Timer
		mustTx(t, s, func(tx engine.Tx) error {
			var err error
			out, err = tx.DueTimers(ctx, t0.Add(at), limit)
			return err
		})
		return out
	}
	set("a", time.Hour, 3*time.Hour)
	set("b", 2*time.Hour)
	tests := []struct {
		Label    string
		At       time.Duration
		Limit    int
		Expected []string
	}{
		{"none due", 59 * time.Minute, 10, nil},
		{"due at the exact time", time.Hour, 10, []string{"a@1h0m0s"}},
		{"earliest first", 3 * time.Hour, 10, []string{"a@1h0m0s", "b@2h0m0s", "a@3h0m0s"}},
		{"limited", 3 * time.Hour, 2, []string{"a@1h0m0s", "b@2h0m0s"}},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			got := due(tc.At, tc.Limit)
			var names []string
			for _, tm := range got {
				names = append(names, fmt.Sprintf("%s@%s", tm.ConversationID, tm.Due.Sub(t0)))
			}
			if fmt.Sprint(names) != fmt.Sprint(tc.Expected) {
				t.Errorf("due %v, want %v", names, tc.Expected)
			}
		})
	}
	// Replacing a conversation's timers drops its old ones only.
	set("a", 5*time.Hour)
	if got := s.Timers(); len(got) != 2 || got[0].ConversationID != "b" || got[1].Due != t0.Add(5*time.Hour) {
		t.Errorf("timers after replacing a's: %+v", got)
	}
	first := due(24*time.Hour, 10)[0]
	mustTx(t, s, func(tx engine.Tx) error {
		if err := tx.DeleteTimer(ctx, first.ID); err != nil {
			return err
		}
		// A timer deleted in this transaction is no longer due in it.
		if left, _ := tx.DueTimers(ctx, t0.Add(24*time.Hour), 10); len(left) != 1 {
			t.Errorf("%d due after a delete, want 1", len(left))
		}
		return nil
	})
	if got := s.Timers(); len(got) != 1 || got[0].ConversationID != "a" {
		t.Errorf("timers after deleting b's: %+v", got)
	}
	set("a")
	if got := s.Timers(); len(got) != 0 {
		t.Errorf("timers after clearing a's: %+v", got)
	}
}

func TestChunks(t *testing.T) {
	tests := []struct {
		Label    string
		Appends  []int
		Truncate int
	}{
		{"empty", nil, 0},
		{"within a chunk", []int{3, 4}, 5},
		{"across chunks", []int{chunkSize - 1, 3, chunkSize * 2}, chunkSize + 1},
		{"to nothing", []int{chunkSize * 2}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			var c chunks[int]
			n := 0
			for _, k := range tc.Appends {
				items := make([]int, k)
				for i := range items {
					items[i] = n
					n++
				}
				c.append(items...)
			}
			all := c.all()
			if len(all) != n {
				t.Fatalf("%d records, want %d", len(all), n)
			}
			for i, v := range all {
				if v != i {
					t.Fatalf("record %d is %d", i, v)
				}
			}
			c.truncate(tc.Truncate)
			c.append(-1)
			all = c.all()
			if len(all) != tc.Truncate+1 || all[tc.Truncate] != -1 {
				t.Errorf("after truncate(%d) and one append: %d records ending %d", tc.Truncate, len(all), all[len(all)-1])
			}
		})
	}
}

func TestContactAddressChange(t *testing.T) {
	s := New()
	c := &engine.Contact{Channel: engine.SMS, Address: "+15550001"}
	mustTx(t, s, func(tx engine.Tx) error { return tx.SaveContact(ctx, c) })
	c.Address = "+15550002"
	mustTx(t, s, func(tx engine.Tx) error { return tx.SaveContact(ctx, c) })
	mustTx(t, s, func(tx engine.Tx) error {
		if _, err := tx.ContactByAddress(ctx, engine.SMS, "+15550001"); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("the old address still finds the contact: %v", err)
		}
		if got, err := tx.ContactByAddress(ctx, engine.SMS, "+15550002"); err != nil || got.ID != c.ID {
			t.Errorf("the new address: %v, %v", got, err)
		}
		return nil
	})
	if got := s.Contact(c.ID); got == nil || got.Address != "+15550002" {
		t.Errorf("Contact = %+v", got)
	}
	if s.Contact("ct-none") != nil {
		t.Error("Contact of an unknown id is not nil")
	}
}
