// Package storetest is the one test suite every engine.Store must pass: the
// in-memory store, SQLite and PostgreSQL run the same cases, so a store
// that keeps, loses or doubles something the others do not is caught by
// name. Run it from a store's tests with storetest.Run.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/engine/memstore"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/internal/sim"
)

// Store is what the suite tests: an engine.Store that can also read a
// conversation's transcript back.
type Store interface {
	engine.Store
	// Transcript returns a conversation's lines in the order written.
	Transcript(ctx context.Context, conversationID string) ([]engine.TranscriptLine, error)
}

// Memstore adapts the in-memory store to Store, so the suite can hold the
// other stores to what it does.
type Memstore struct{ *memstore.Store }

// Transcript returns the conversation's lines.
func (m Memstore) Transcript(_ context.Context, id string) ([]engine.TranscriptLine, error) {
	return m.Store.Transcript(id), nil
}

// Run runs the suite. open returns a new, empty store for each subtest and
// arranges for it to be closed when the subtest ends. The subtests run in
// parallel, each on its own store, so open must be safe for concurrent use.
func Run(t *testing.T, open func(t *testing.T) Store) {
	for _, sub := range []struct {
		name string
		test func(t *testing.T, open func(t *testing.T) Store)
	}{
		{"MarkInbound", func(t *testing.T, open func(t *testing.T) Store) { testMarkInbound(t, open(t)) }},
		{"Contacts", func(t *testing.T, open func(t *testing.T) Store) { testContacts(t, open(t)) }},
		{"Conversations", testConversations},
		{"Rollback", func(t *testing.T, open func(t *testing.T) Store) { testRollback(t, open(t)) }},
		{"Timers", func(t *testing.T, open func(t *testing.T) Store) { testTimers(t, open(t)) }},
		{"Examples", testExamples},
		{"Replay", func(t *testing.T, open func(t *testing.T) Store) { testReplay(t, open(t)) }},
		{"Concurrency", testConcurrency},
	} {
		t.Run(sub.name, func(t *testing.T) {
			t.Parallel()
			sub.test(t, open)
		})
	}
}

// in runs fn in a transaction that must commit.
func in(t *testing.T, st engine.Store, fn func(ctx context.Context, tx engine.Tx) error) {
	t.Helper()
	ctx := t.Context()
	if err := st.Tx(ctx, func(tx engine.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("transaction: %v", err)
	}
}

// newContact saves a contact in its own transaction and returns it.
func newContact(t *testing.T, st engine.Store, ch engine.Channel, address string) *engine.Contact {
	t.Helper()
	c := &engine.Contact{Channel: ch, Address: address}
	in(t, st, func(ctx context.Context, tx engine.Tx) error { return tx.SaveContact(ctx, c) })
	if c.ID == "" {
		t.Fatal("SaveContact did not set the new contact's ID")
	}
	return c
}

func testMarkInbound(t *testing.T, st Store) {
	errRollback := errors.New("roll back")
	// Each step runs in its own transaction unless sameTx is set, in which
	// case it shares the transaction of the step before.
	steps := []struct {
		name   string
		ch     engine.Channel
		id     string
		sameTx bool
		fail   bool // the transaction is rolled back after the mark
		want   bool
	}{
		{name: "FirstSightIsNew", ch: engine.SMS, id: "SM1", want: true},
		{name: "SameIDAgainIsSeen", ch: engine.SMS, id: "SM1", want: false},
		{name: "SameIDOnAnotherChannelIsNew", ch: engine.Messenger, id: "SM1", want: true},
		{name: "NewIDInATransaction", ch: engine.SMS, id: "SM2", want: true},
		{name: "SameIDTwiceInOneTransactionIsSeen", ch: engine.SMS, id: "SM2", sameTx: true, want: false},
		{name: "MarkInARolledBackTransaction", ch: engine.SMS, id: "SM3", fail: true, want: true},
		{name: "RolledBackMarkIsForgotten", ch: engine.SMS, id: "SM3", want: true},
	}
	ctx := t.Context()
	for i := 0; i < len(steps); {
		// Group a step with the sameTx steps that follow it.
		j := i + 1
		for j < len(steps) && steps[j].sameTx {
			j++
		}
		group := steps[i:j]
		err := st.Tx(ctx, func(tx engine.Tx) error {
			for _, s := range group {
				got, err := tx.MarkInbound(ctx, s.ch, s.id)
				if err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
				if got != s.want {
					t.Errorf("%s: MarkInbound(%s, %s) = %v, want %v", s.name, s.ch, s.id, got, s.want)
				}
				if s.fail {
					return errRollback
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, errRollback) {
			t.Fatal(err)
		}
		i = j
	}
}

func testContacts(t *testing.T, st Store) {
	const addr = "+15550001111"
	sms := newContact(t, st, engine.SMS, addr)
	fb := newContact(t, st, engine.Messenger, addr)
	if sms.ID == fb.ID {
		t.Fatalf("one address on SMS and Messenger gave one contact %s: they are different people to the clinic", sms.ID)
	}
	// The opted-out contact's changes are saved in a later transaction.
	in(t, st, func(ctx context.Context, tx engine.Tx) error {
		c, err := tx.Contact(ctx, sms.ID)
		if err != nil {
			return err
		}
		c.Language, c.OptedOut = "es", true
		return tx.SaveContact(ctx, c)
	})
	smsWant := engine.Contact{ID: sms.ID, Channel: engine.SMS, Address: addr, Language: "es", OptedOut: true}
	fbWant := engine.Contact{ID: fb.ID, Channel: engine.Messenger, Address: addr}

	tests := []struct {
		name    string
		find    func(ctx context.Context, tx engine.Tx) (*engine.Contact, error)
		want    *engine.Contact
		wantErr error
	}{
		{"ByAddressOnSMS", func(ctx context.Context, tx engine.Tx) (*engine.Contact, error) {
			return tx.ContactByAddress(ctx, engine.SMS, addr)
		}, &smsWant, nil},
		{"ByAddressOnMessenger", func(ctx context.Context, tx engine.Tx) (*engine.Contact, error) {
			return tx.ContactByAddress(ctx, engine.Messenger, addr)
		}, &fbWant, nil},
		{"ByID", func(ctx context.Context, tx engine.Tx) (*engine.Contact, error) {
			return tx.Contact(ctx, sms.ID)
		}, &smsWant, nil},
		{"UnknownAddressIsNotFound", func(ctx context.Context, tx engine.Tx) (*engine.Contact, error) {
			return tx.ContactByAddress(ctx, engine.SMS, "+15550009999")
		}, nil, engine.ErrNotFound},
		{"AnotherSpellingIsAnotherAddress", func(ctx context.Context, tx engine.Tx) (*engine.Contact, error) {
			return tx.ContactByAddress(ctx, engine.SMS, "15550001111")
		}, nil, engine.ErrNotFound},
		{"UnknownIDIsNotFound", func(ctx context.Context, tx engine.Tx) (*engine.Contact, error) {
			return tx.Contact(ctx, "no-such-contact")
		}, nil, engine.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *engine.Contact
			var err error
			in(t, st, func(ctx context.Context, tx engine.Tx) error {
				got, err = tt.find(ctx, tx)
				return nil
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("contact (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpTimes compares times as instants: a store may hand back another zone.
var cmpTimes = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

func testConversations(t *testing.T, open func(t *testing.T) Store) {
	at := time.Date(2025, 3, 10, 9, 15, 30, 123456000, time.UTC)
	full := func(contact *engine.Contact, v map[string]any) *engine.Conversation {
		return &engine.Conversation{ContactID: contact.ID, FlowID: "intake", FlowHash: "sha256:abc", Step: "ask-dob",
			Status: engine.Active, Vars: v, Origin: engine.SMS, Address: contact.Address, Language: "es", Attempts: 2,
			Secure: engine.SecurePending, StaySecure: true, PromptSent: true, LinkSentAt: at.Add(time.Minute),
			LinkResends: 1, Queue: "nurse", TimerDue: at.Add(time.Hour), Created: at, Updated: at.Add(2 * time.Minute)}
	}

	t.Run("EveryFieldRoundTrips", func(t *testing.T) {
		// The variables are compared by type as well as value: an int that
		// comes back a float64 would break `n + 1` in a flow.
		tests := []struct {
			name  string
			value any
		}{
			{"String", "Zebediah"},
			{"EmptyString", ""},
			{"Unicode", "José – 東京 🙂"},
			{"Int", 42},
			{"ZeroInt", 0},
			{"NegativeInt", -7},
			{"Float64", 101.5},
			{"WholeFloat64", 3.0},
			{"BoolTrue", true},
			{"BoolFalse", false},
			{"DateInClinicZone", date(1985, 4, 23)},
			{"TimeUTC", at},
			{"Nil", nil},
		}
		st := open(t)
		contact := newContact(t, st, engine.SMS, "+15550002222")
		v := map[string]any{}
		for _, tt := range tests {
			v[tt.name] = tt.value
		}
		want := full(contact, v)
		in(t, st, func(ctx context.Context, tx engine.Tx) error { return tx.SaveConversation(ctx, want) })
		if want.ID == "" {
			t.Fatal("SaveConversation did not set the new conversation's ID")
		}
		var byID, open *engine.Conversation
		in(t, st, func(ctx context.Context, tx engine.Tx) error {
			var err error
			if byID, err = tx.Conversation(ctx, want.ID); err != nil {
				return err
			}
			open, err = tx.OpenConversation(ctx, contact.ID)
			return err
		})
		if diff := cmp.Diff(want, byID, cmpTimes, cmpopts.IgnoreFields(engine.Conversation{}, "Vars")); diff != "" {
			t.Errorf("conversation by id (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(byID, open, cmpTimes); diff != "" {
			t.Errorf("OpenConversation differs from Conversation (-byID +open):\n%s", diff)
		}
		for _, tt := range tests {
			t.Run("Var"+tt.name, func(t *testing.T) {
				got, ok := byID.Vars[tt.name]
				if !ok {
					t.Fatalf("variable %s is missing", tt.name)
				}
				if fmt.Sprintf("%T", got) != fmt.Sprintf("%T", tt.value) {
					t.Fatalf("variable %s came back as a %T, want a %T", tt.name, got, tt.value)
				}
				if tm, ok := tt.value.(time.Time); ok {
					g := got.(time.Time)
					// The same instant, and the same wall clock: a date must
					// stay on its calendar day.
					if !g.Equal(tm) || g.Format(time.RFC3339Nano) != tm.Format(time.RFC3339Nano) {
						t.Errorf("variable %s = %v, want %v", tt.name, g, tm)
					}
					return
				}
				if got != tt.value {
					t.Errorf("variable %s = %#v, want %#v", tt.name, got, tt.value)
				}
			})
		}
	})

	t.Run("UpdatesPersist", func(t *testing.T) {
		st := open(t)
		contact := newContact(t, st, engine.SMS, "+15550003333")
		c := full(contact, map[string]any{"n": 1})
		in(t, st, func(ctx context.Context, tx engine.Tx) error { return tx.SaveConversation(ctx, c) })
		var want *engine.Conversation
		in(t, st, func(ctx context.Context, tx engine.Tx) error {
			got, err := tx.Conversation(ctx, c.ID)
			if err != nil {
				return err
			}
			got.Step, got.Status, got.Attempts, got.Secure, got.StaySecure = "done", engine.HandedOff, 0, engine.SecureNone, false
			got.PromptSent, got.LinkSentAt, got.TimerDue, got.Queue = false, time.Time{}, time.Time{}, ""
			got.Vars["n"] = 2
			got.Vars["added"] = "later"
			got.Updated = at.Add(time.Hour)
			want = got
			return tx.SaveConversation(ctx, got)
		})
		got := Load(t.Context(), t, st, c.ID)
		if diff := cmp.Diff(want, got, cmpTimes); diff != "" {
			t.Errorf("conversation after update (-want +got):\n%s", diff)
		}
	})

	t.Run("OneOpenConversationPerContact", func(t *testing.T) {
		st := open(t)
		contact := newContact(t, st, engine.SMS, "+15550004444")
		first := full(contact, map[string]any{})
		in(t, st, func(ctx context.Context, tx engine.Tx) error { return tx.SaveConversation(ctx, first) })

		// Ending the open conversation and starting the next in one
		// transaction, as a trigger keyword does.
		second := full(contact, map[string]any{})
		second.FlowID = "survey"
		in(t, st, func(ctx context.Context, tx engine.Tx) error {
			old, err := tx.OpenConversation(ctx, contact.ID)
			if err != nil {
				return err
			}
			old.Status = engine.Ended
			if err := tx.SaveConversation(ctx, old); err != nil {
				return err
			}
			if c, err := tx.OpenConversation(ctx, contact.ID); !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("OpenConversation after ending it in the same transaction = %v, %v; want ErrNotFound", c, err)
			}
			return tx.SaveConversation(ctx, second)
		})
		var open, old *engine.Conversation
		in(t, st, func(ctx context.Context, tx engine.Tx) error {
			var err error
			if open, err = tx.OpenConversation(ctx, contact.ID); err != nil {
				return err
			}
			old, err = tx.Conversation(ctx, first.ID)
			return err
		})
		if open.ID != second.ID || open.FlowID != "survey" {
			t.Errorf("open conversation = %s (%s), want the new one %s", open.ID, open.FlowID, second.ID)
		}
		if old.Status != engine.Ended {
			t.Errorf("the replaced conversation is %s, want ended", old.Status)
		}
	})

	t.Run("EndedIsNotOpen", func(t *testing.T) {
		st := open(t)
		contact := newContact(t, st, engine.SMS, "+15550005555")
		c := full(contact, map[string]any{})
		c.Status = engine.Ended
		in(t, st, func(ctx context.Context, tx engine.Tx) error { return tx.SaveConversation(ctx, c) })
		in(t, st, func(ctx context.Context, tx engine.Tx) error {
			if got, err := tx.OpenConversation(ctx, contact.ID); !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("OpenConversation of a contact whose only conversation ended = %v, %v; want ErrNotFound", got, err)
			}
			got, err := tx.Conversation(ctx, c.ID)
			if err != nil || got.Status != engine.Ended {
				t.Errorf("Conversation(ended id) = %v, %v; want the ended conversation", got, err)
			}
			return nil
		})
	})

	t.Run("UnknownIsNotFound", func(t *testing.T) {
		st := open(t)
		in(t, st, func(ctx context.Context, tx engine.Tx) error {
			if got, err := tx.Conversation(ctx, "no-such-conversation"); !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("Conversation(unknown) = %v, %v; want ErrNotFound", got, err)
			}
			if got, err := tx.OpenConversation(ctx, "no-such-contact"); !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("OpenConversation(unknown contact) = %v, %v; want ErrNotFound", got, err)
			}
			return nil
		})
	})
}

func testRollback(t *testing.T, st Store) {
	ctx := t.Context()
	at := Epoch.UTC()
	// What exists before: a contact with an open conversation, a timer.
	contact := newContact(t, st, engine.SMS, "+15550006666")
	conv := &engine.Conversation{ContactID: contact.ID, FlowID: "intake", Step: "welcome", Status: engine.Active,
		Vars: map[string]any{"n": 1}, Origin: engine.SMS, Address: contact.Address, Created: at, Updated: at}
	in(t, st, func(ctx context.Context, tx engine.Tx) error {
		if err := tx.SaveConversation(ctx, conv); err != nil {
			return err
		}
		if err := tx.Append(ctx, []engine.TranscriptLine{{ConversationID: conv.ID, At: at, Inbound: true,
			Channel: engine.SMS, Text: "kept", Step: "welcome"}}, nil, nil); err != nil {
			return err
		}
		return tx.SetTimers(ctx, conv.ID, []engine.Timer{{ConversationID: conv.ID, Kind: engine.TimerReminder, Step: "welcome", Due: at}})
	})

	errBoom := errors.New("boom")
	var newConv engine.Conversation
	err := st.Tx(ctx, func(tx engine.Tx) error {
		if _, err := tx.MarkInbound(ctx, engine.SMS, "SM-rolled-back"); err != nil {
			return err
		}
		other := &engine.Contact{Channel: engine.SMS, Address: "+15550007777"}
		if err := tx.SaveContact(ctx, other); err != nil {
			return err
		}
		c, err := tx.Contact(ctx, contact.ID)
		if err != nil {
			return err
		}
		c.OptedOut = true
		if err := tx.SaveContact(ctx, c); err != nil {
			return err
		}
		old, err := tx.Conversation(ctx, conv.ID)
		if err != nil {
			return err
		}
		old.Step, old.Vars["n"] = "changed", 99
		if err := tx.SaveConversation(ctx, old); err != nil {
			return err
		}
		newConv = engine.Conversation{ContactID: other.ID, FlowID: "intake", Step: "welcome", Status: engine.Active,
			Vars: map[string]any{}, Origin: engine.SMS, Address: other.Address, Created: at, Updated: at}
		if err := tx.SaveConversation(ctx, &newConv); err != nil {
			return err
		}
		lines := []engine.TranscriptLine{
			{ConversationID: conv.ID, At: at, Channel: engine.SMS, Text: "rolled back", Step: "changed"},
			{ConversationID: newConv.ID, At: at, Inbound: true, Channel: engine.SMS, Text: "rolled back too", Step: "welcome"},
		}
		out := []*engine.Outbound{{ConversationID: conv.ID, ContactID: contact.ID, Channel: engine.SMS, Address: contact.Address, Text: "never sent"}}
		events := []engine.Event{{Actor: "system", Action: engine.EventStepChange, ConversationID: conv.ID, At: at}}
		if err := tx.Append(ctx, lines, out, events); err != nil {
			return err
		}
		if err := tx.SetTimers(ctx, conv.ID, nil); err != nil {
			return err
		}
		if err := tx.SetTimers(ctx, newConv.ID, []engine.Timer{{ConversationID: newConv.ID, Kind: engine.TimerWait, Step: "welcome", Due: at}}); err != nil {
			return err
		}
		if err := tx.SaveLink(ctx, engine.SecureLink{TokenHash: []byte("0123456789abcdef0123456789abcdef"),
			ConversationID: conv.ID, ContactID: contact.ID, Created: at, Expires: at.Add(time.Minute)}); err != nil {
			return err
		}
		return fmt.Errorf("the handler failed: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Tx returned %v, want the function's own error", err)
	}

	checks := []struct {
		name  string
		check func(ctx context.Context, tx engine.Tx) error
	}{
		{"InboundMarkIsGone", func(ctx context.Context, tx engine.Tx) error {
			if fresh, err := tx.MarkInbound(ctx, engine.SMS, "SM-rolled-back"); err != nil || !fresh {
				return fmt.Errorf("MarkInbound = %v, %v; want a fresh id", fresh, err)
			}
			return nil
		}},
		{"NewContactIsGone", func(ctx context.Context, tx engine.Tx) error {
			if c, err := tx.ContactByAddress(ctx, engine.SMS, "+15550007777"); !errors.Is(err, engine.ErrNotFound) {
				return fmt.Errorf("ContactByAddress = %v, %v; want ErrNotFound", c, err)
			}
			return nil
		}},
		{"ContactUpdateIsUndone", func(ctx context.Context, tx engine.Tx) error {
			if c, err := tx.Contact(ctx, contact.ID); err != nil || c.OptedOut {
				return fmt.Errorf("Contact = %+v, %v; want not opted out", c, err)
			}
			return nil
		}},
		{"ConversationUpdateIsUndone", func(ctx context.Context, tx engine.Tx) error {
			c, err := tx.Conversation(ctx, conv.ID)
			if err != nil || c.Step != "welcome" || c.Vars["n"] != 1 {
				return fmt.Errorf("Conversation = %+v, %v; want step welcome and n 1", c, err)
			}
			return nil
		}},
		{"NewConversationIsGone", func(ctx context.Context, tx engine.Tx) error {
			if newConv.ID == "" {
				return nil
			}
			if c, err := tx.Conversation(ctx, newConv.ID); !errors.Is(err, engine.ErrNotFound) {
				return fmt.Errorf("Conversation = %+v, %v; want ErrNotFound", c, err)
			}
			return nil
		}},
		{"TimersAreAsBefore", func(ctx context.Context, tx engine.Tx) error {
			due, err := tx.DueTimers(ctx, at.Add(24*time.Hour), 100)
			if err != nil {
				return err
			}
			if len(due) != 1 || due[0].ConversationID != conv.ID || due[0].Kind != engine.TimerReminder {
				return fmt.Errorf("due timers = %+v, want only the reminder set before", due)
			}
			return nil
		}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			// Each check runs in a transaction of its own that is rolled
			// back, so that one check's MarkInbound does not feed another.
			errDone := errors.New("done")
			var failure error
			err := st.Tx(ctx, func(tx engine.Tx) error {
				failure = c.check(ctx, tx)
				return errDone
			})
			if !errors.Is(err, errDone) {
				t.Fatalf("check transaction: %v", err)
			}
			if failure != nil {
				t.Error(failure)
			}
		})
	}
	t.Run("TranscriptIsAsBefore", func(t *testing.T) {
		lines, err := st.Transcript(ctx, conv.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != 1 || lines[0].Text != "kept" {
			t.Errorf("transcript = %+v, want only the line written before", lines)
		}
		if newConv.ID != "" {
			if lines, err := st.Transcript(ctx, newConv.ID); err != nil || len(lines) != 0 {
				t.Errorf("transcript of the rolled-back conversation = %+v, %v; want none", lines, err)
			}
		}
	})
}

func testTimers(t *testing.T, st Store) {
	base := Epoch.UTC()
	a, b := "conversation-a", "conversation-b"
	timer := func(conv string, kind engine.TimerKind, step string, due time.Duration) engine.Timer {
		return engine.Timer{ConversationID: conv, Kind: kind, Step: step, Due: base.Add(due)}
	}
	set := func(conv string, timers ...engine.Timer) {
		t.Helper()
		in(t, st, func(ctx context.Context, tx engine.Tx) error { return tx.SetTimers(ctx, conv, timers) })
	}
	due := func(at time.Duration, limit int) []engine.Timer {
		t.Helper()
		var got []engine.Timer
		in(t, st, func(ctx context.Context, tx engine.Tx) error {
			var err error
			got, err = tx.DueTimers(ctx, base.Add(at), limit)
			return err
		})
		for _, tm := range got {
			if tm.ID == 0 {
				t.Errorf("due timer %+v has no ID", tm)
			}
		}
		return got
	}
	ignoreID := cmpopts.IgnoreFields(engine.Timer{}, "ID")

	set(a, timer(a, engine.TimerReminder, "ask", time.Hour), timer(a, engine.TimerTimeout, "ask", 30*time.Minute))
	set(b, timer(b, engine.TimerWait, "pause", 30*time.Minute))

	steps := []struct {
		name  string
		do    func()
		at    time.Duration
		limit int
		want  []engine.Timer
	}{
		{name: "NothingDueBeforeTheEarliest", at: 29 * time.Minute, limit: 10},
		{name: "DueAtTheirTimeInOrderOfDueThenSetting", at: 30 * time.Minute, limit: 10, want: []engine.Timer{
			timer(a, engine.TimerTimeout, "ask", 30*time.Minute), timer(b, engine.TimerWait, "pause", 30*time.Minute)}},
		{name: "LimitKeepsTheEarliest", at: 2 * time.Hour, limit: 1, want: []engine.Timer{
			timer(a, engine.TimerTimeout, "ask", 30*time.Minute)}},
		{name: "ZeroLimitReturnsNone", at: 2 * time.Hour, limit: 0},
		{name: "AllDueLater", at: 2 * time.Hour, limit: 10, want: []engine.Timer{
			timer(a, engine.TimerTimeout, "ask", 30*time.Minute), timer(b, engine.TimerWait, "pause", 30*time.Minute),
			timer(a, engine.TimerReminder, "ask", time.Hour)}},
		{name: "SetTimersReplacesAConversationsTimers", do: func() {
			set(a, timer(a, engine.TimerTimeout, "next", 10*time.Minute))
		}, at: 2 * time.Hour, limit: 10, want: []engine.Timer{
			timer(a, engine.TimerTimeout, "next", 10*time.Minute), timer(b, engine.TimerWait, "pause", 30*time.Minute)}},
		{name: "DeleteInARolledBackTransactionKeepsTheTimer", do: func() {
			errUndo := errors.New("undo")
			err := st.Tx(t.Context(), func(tx engine.Tx) error {
				timers, err := tx.DueTimers(t.Context(), base.Add(2*time.Hour), 10)
				if err != nil {
					return err
				}
				for _, tm := range timers {
					if err := tx.DeleteTimer(t.Context(), tm.ID); err != nil {
						return err
					}
				}
				return errUndo
			})
			if !errors.Is(err, errUndo) {
				t.Fatalf("Tx = %v, want the function's error", err)
			}
		}, at: 2 * time.Hour, limit: 10, want: []engine.Timer{
			timer(a, engine.TimerTimeout, "next", 10*time.Minute), timer(b, engine.TimerWait, "pause", 30*time.Minute)}},
		{name: "DeleteTimerRemovesOnlyThatTimer", do: func() {
			in(t, st, func(ctx context.Context, tx engine.Tx) error {
				timers, err := tx.DueTimers(ctx, base.Add(2*time.Hour), 10)
				if err != nil {
					return err
				}
				for _, tm := range timers {
					if tm.ConversationID == b {
						return tx.DeleteTimer(ctx, tm.ID)
					}
				}
				return errors.New("conversation b has no due timer")
			})
		}, at: 2 * time.Hour, limit: 10, want: []engine.Timer{
			timer(a, engine.TimerTimeout, "next", 10*time.Minute)}},
		{name: "SetTimersWithNoneClears", do: func() { set(a) }, at: 24 * time.Hour, limit: 10},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.do != nil {
				s.do()
			}
			got := due(s.at, s.limit)
			if diff := cmp.Diff(s.want, got, ignoreID, cmpTimes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("due timers (-want +got):\n%s", diff)
			}
		})
	}
}

// ignoreIDs compares what must not depend on the store: ids are each
// store's own, and times may come back in another zone.
var ignoreIDs = cmp.Options{
	cmpopts.IgnoreFields(engine.Outbound{}, "ID", "ConversationID", "ContactID"),
	cmpopts.IgnoreFields(engine.Conversation{}, "ID", "ContactID"),
	cmpopts.IgnoreFields(engine.TranscriptLine{}, "ConversationID"),
	cmpTimes,
	cmpopts.EquateEmpty(),
}

func testExamples(t *testing.T, open func(t *testing.T) Store) {
	set := Examples(t)
	for _, sc := range Scripts() {
		t.Run(sc.Name, func(t *testing.T) {
			ctx := t.Context()
			mem := Memstore{memstore.New()}
			want := Play(ctx, t, mem, set, sc)
			st := open(t)
			got := Play(ctx, t, st, set, sc)

			if diff := cmp.Diff(want.Out, got.Out, ignoreIDs); diff != "" {
				t.Errorf("messages sent (-memstore +store):\n%s", diff)
			}
			ids := map[int64]bool{}
			for _, o := range got.Out {
				if o.ConversationID != got.ConversationID {
					t.Errorf("message %q is filed under conversation %s, want %s", o.Text, o.ConversationID, got.ConversationID)
				}
				if o.ID == 0 || ids[o.ID] {
					t.Errorf("message %q has outbox id %d, want a new non-zero id", o.Text, o.ID)
				}
				ids[o.ID] = true
			}
			wantConv, gotConv := Load(ctx, t, mem, want.ConversationID), Load(ctx, t, st, got.ConversationID)
			if diff := cmp.Diff(wantConv, gotConv, ignoreIDs); diff != "" {
				t.Errorf("final conversation (-memstore +store):\n%s", diff)
			}
			wantLines, err := mem.Transcript(ctx, want.ConversationID)
			if err != nil {
				t.Fatal(err)
			}
			gotLines, err := st.Transcript(ctx, got.ConversationID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantLines, gotLines, ignoreIDs); diff != "" {
				t.Errorf("transcript (-memstore +store):\n%s", diff)
			}
		})
	}
}

// counterFlow counts the messages it receives in n: a race that loses or
// doubles a message shows as a wrong count.
const counterFlow = `
flow: counter
title: Counter
trigger:
  default: true
steps:
  begin:
    set:
      n: 0
    next: count
  count:
    ask:
      prompt: "Send anything."
      type: text
      save: last
    set:
      n: n + 1
    next: count
`

// Counter returns the counting flow as a flow set.
func Counter(tb testing.TB) *flows.Set {
	tb.Helper()
	set, err := loadSet(flows.NewSet(map[string][]byte{"counter.yaml": []byte(counterFlow)}), nil)
	if err != nil {
		tb.Fatalf("load counter flow: %v", err)
	}
	return set
}

func counterEngine(t *testing.T, st engine.Store) *engine.Engine {
	clock := sim.NewClock(Epoch)
	return engine.New(Counter(t), st, engine.WithClock(clock.Now), engine.WithLocation(Clinic))
}

func send(t *testing.T, eng *engine.Engine, address, text, providerID string) *engine.Result {
	t.Helper()
	res, err := eng.Handle(t.Context(), engine.Inbound{Channel: engine.SMS, Address: address, Text: text, ProviderID: providerID})
	if err != nil {
		t.Fatalf("handle %s: %v", providerID, err)
	}
	return res
}

func testReplay(t *testing.T, st Store) {
	ctx := t.Context()
	eng := counterEngine(t, st)
	const addr = "+15550008888"
	res := send(t, eng, addr, "hello", "p1")
	send(t, eng, addr, "one", "p2")
	send(t, eng, addr, "two", "p3")
	id := res.Conversation.ID
	before := Load(ctx, t, st, id)
	linesBefore, err := st.Transcript(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if before.Vars["n"] != 2 {
		t.Fatalf("n = %v after two answers, want 2", before.Vars["n"])
	}

	replays := []struct{ name, text, id string }{
		{"LastMessageAgain", "two", "p3"},
		{"EarlierMessageAgain", "one", "p2"},
		{"FirstMessageAgain", "hello", "p1"},
		{"SameIDOtherText", "something else", "p2"},
	}
	for _, r := range replays {
		t.Run(r.name, func(t *testing.T) {
			res := send(t, eng, addr, r.text, r.id)
			if !res.Duplicate || len(res.Out) != 0 {
				t.Errorf("replay: Duplicate = %v with %d messages out, want a duplicate and nothing sent", res.Duplicate, len(res.Out))
			}
			after := Load(ctx, t, st, id)
			if diff := cmp.Diff(before, after, cmpTimes); diff != "" {
				t.Errorf("conversation changed (-before +after):\n%s", diff)
			}
			lines, err := st.Transcript(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(linesBefore, lines, cmpTimes); diff != "" {
				t.Errorf("transcript changed (-before +after):\n%s", diff)
			}
		})
	}
}

func testConcurrency(t *testing.T, open func(t *testing.T) Store) {
	t.Run("FiftyMessagesToOneConversation", func(t *testing.T) {
		const senders, each = 50, 1
		st := open(t)
		eng := counterEngine(t, st)
		const addr = "+15550009999"
		res := send(t, eng, addr, "hello", "first")
		id := res.Conversation.ID
		var want []string
		for i := range senders * each {
			want = append(want, fmt.Sprintf("message %d", i))
		}
		parallel(t, senders, func(g int) error {
			for k := range each {
				i := g*each + k
				if _, err := eng.Handle(t.Context(), engine.Inbound{Channel: engine.SMS, Address: addr,
					Text: want[i], ProviderID: fmt.Sprintf("p-%d", i)}); err != nil {
					return err
				}
			}
			return nil
		})
		conv := Load(t.Context(), t, st, id)
		if conv.Vars["n"] != senders*each {
			t.Errorf("n = %v (%T), want %d: messages were lost or counted twice", conv.Vars["n"], conv.Vars["n"], senders*each)
		}
		checkInbound(t, st, id, append([]string{"hello"}, want...))
	})

	t.Run("TwentyFirstMessagesFromNewContacts", func(t *testing.T) {
		const contacts = 20
		st := open(t)
		eng := counterEngine(t, st)
		convs := make([]string, contacts)
		parallel(t, contacts, func(g int) error {
			res, err := eng.Handle(t.Context(), engine.Inbound{Channel: engine.SMS, Address: fmt.Sprintf("+1555010%04d", g),
				Text: fmt.Sprintf("hello from %d", g), ProviderID: fmt.Sprintf("first-%d", g)})
			if err != nil {
				return err
			}
			if res.Conversation == nil {
				return fmt.Errorf("contact %d: no conversation", g)
			}
			convs[g] = res.Conversation.ID
			return nil
		})
		seen := map[string]bool{}
		for g, id := range convs {
			if seen[id] {
				t.Errorf("contacts share conversation %s", id)
			}
			seen[id] = true
			checkInbound(t, st, id, []string{fmt.Sprintf("hello from %d", g)})
			in(t, st, func(ctx context.Context, tx engine.Tx) error {
				c, err := tx.ContactByAddress(ctx, engine.SMS, fmt.Sprintf("+1555010%04d", g))
				if err != nil {
					return err
				}
				open, err := tx.OpenConversation(ctx, c.ID)
				if err != nil {
					return err
				}
				if open.ID != id {
					t.Errorf("contact %d's open conversation is %s, want %s", g, open.ID, id)
				}
				return nil
			})
		}
	})

	t.Run("TenFirstMessagesFromOneNewContact", func(t *testing.T) {
		// The first messages race to create the contact and its
		// conversation: one must win and the others join it.
		const senders = 10
		st := open(t)
		eng := counterEngine(t, st)
		const addr = "+15550011111"
		var want []string
		for i := range senders {
			want = append(want, fmt.Sprintf("racing %d", i))
		}
		var mu sync.Mutex
		ids := map[string]bool{}
		parallel(t, senders, func(g int) error {
			res, err := eng.Handle(t.Context(), engine.Inbound{Channel: engine.SMS, Address: addr, Text: want[g],
				ProviderID: fmt.Sprintf("race-%d", g)})
			if err != nil {
				return err
			}
			mu.Lock()
			ids[res.Conversation.ID] = true
			mu.Unlock()
			return nil
		})
		if len(ids) != 1 {
			t.Fatalf("%d conversations for one contact, want 1", len(ids))
		}
		var id string
		for k := range ids {
			id = k
		}
		conv := Load(t.Context(), t, st, id)
		// The first message starts the flow; each later one is an answer.
		if conv.Vars["n"] != senders-1 {
			t.Errorf("n = %v, want %d", conv.Vars["n"], senders-1)
		}
		checkInbound(t, st, id, want)
	})
}

// parallel runs fn in n goroutines that start together and fails t with
// their errors.
func parallel(t *testing.T, n int, fn func(g int) error) {
	t.Helper()
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			<-start
			errs[g] = fn(g)
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// checkInbound asserts that the conversation's transcript holds each of
// want as an inbound line exactly once, and nothing else inbound.
func checkInbound(t *testing.T, st Store, id string, want []string) {
	t.Helper()
	lines, err := st.Transcript(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		if l.Inbound {
			got = append(got, l.Text)
		}
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inbound lines of conversation %s (-want +got):\n%s", id, diff)
	}
	for i := 1; i < len(lines); i++ {
		if lines[i].At.Before(lines[i-1].At) {
			t.Errorf("transcript line %d is older than the line before it", i+1)
		}
	}
}
