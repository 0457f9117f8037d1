package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/store"
)

// message is what the engine does with one inbound SMS: find the sender
// with the de-duplication (in one call where the store offers it), then
// write. It returns whether the id was new and the outbound message
// written.
func message(ctx context.Context, tx engine.Tx, providerID, address, text string) (bool, *engine.Outbound, error) {
	fresh, c, err := markAndFind(ctx, tx, providerID, address)
	if err != nil || !fresh {
		return fresh, nil, err
	}
	if c == nil {
		c = &engine.Contact{Channel: engine.SMS, Address: address}
		if err := tx.SaveContact(ctx, c); err != nil {
			return false, nil, err
		}
	}
	conv, err := tx.OpenConversation(ctx, c.ID)
	switch {
	case err == engine.ErrNotFound:
		conv = &engine.Conversation{ContactID: c.ID, FlowID: "f", FlowHash: "h", Step: "ask", Status: engine.Active,
			Origin: engine.SMS, Address: address, Vars: map[string]any{}}
	case err != nil:
		return false, nil, err
	}
	conv.Attempts++
	conv.Vars["last"] = text
	if err := tx.SaveConversation(ctx, conv); err != nil {
		return false, nil, err
	}
	now := time.Now()
	out := &engine.Outbound{ConversationID: conv.ID, ContactID: c.ID, Channel: engine.SMS, Address: address, Text: "got " + text}
	if err := tx.SetTimers(ctx, conv.ID, []engine.Timer{{ConversationID: conv.ID, Kind: engine.TimerReminder, Step: "ask", Due: now.Add(time.Hour)}}); err != nil {
		return false, nil, err
	}
	if err := tx.SaveLink(ctx, engine.SecureLink{TokenHash: []byte(providerID), ConversationID: conv.ID, ContactID: c.ID,
		Created: now, Expires: now.Add(15 * time.Minute)}); err != nil {
		return false, nil, err
	}
	return true, out, tx.Append(ctx, []engine.TranscriptLine{{ConversationID: conv.ID, At: now, Inbound: true, Channel: engine.SMS, Text: text, Step: "ask"}},
		[]*engine.Outbound{out}, []engine.Event{{Actor: "contact", ActorID: c.ID, Action: engine.EventMessageIn, ConversationID: conv.ID, At: now}})
}

// markAndFind records a provider id and finds its sender, as the engine
// does.
func markAndFind(ctx context.Context, tx engine.Tx, providerID, address string) (bool, *engine.Contact, error) {
	if f, ok := tx.(engine.InboundFinder); ok {
		return f.MarkInboundFind(ctx, engine.SMS, providerID, address)
	}
	fresh, err := tx.MarkInbound(ctx, engine.SMS, providerID)
	if err != nil || !fresh {
		return fresh, nil, err
	}
	c, err := tx.ContactByAddress(ctx, engine.SMS, address)
	if errors.Is(err, engine.ErrNotFound) {
		return true, nil, nil
	}
	return true, c, err
}

// counts returns how the store's transactions ended since the last call.
func counts(s *store.Store, last *[2]int64) (unlocked, fellBack int64) {
	u, f := s.OptimisticCounts()
	unlocked, fellBack = u-last[0], f-last[1]
	last[0], last[1] = u, f
	return unlocked, fellBack
}

// On PostgreSQL a message is written without locks in two statements when
// nothing raced it; every write lands, and a replay is a duplicate.
func TestPostgresMessageWithoutLocks(t *testing.T) {
	ctx := context.Background()
	s, _ := openPostgres(t, newRing(t))
	var last [2]int64
	for i, text := range []string{"hello", "again"} {
		var out *engine.Outbound
		err := s.Tx(ctx, func(tx engine.Tx) error {
			var err error
			_, out, err = message(ctx, tx, fmt.Sprintf("SM%d", i), "+15550102000", text)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if out.ID <= 0 {
			t.Errorf("message %d: the outbound message has no ID", i)
		}
		if u, f := counts(s, &last); u != 1 || f != 0 {
			t.Errorf("message %d: %d transactions without locks and %d under locks, want 1 and 0", i, u, f)
		}
	}
	var fresh bool
	if err := s.Tx(ctx, func(tx engine.Tx) error {
		var err error
		fresh, _, err = message(ctx, tx, "SM0", "+15550102000", "hello")
		return err
	}); err != nil || fresh {
		t.Fatalf("a replayed id: fresh %v, %v; want a duplicate", fresh, err)
	}
	if u, f := counts(s, &last); u != 0 || f != 0 {
		t.Errorf("the replay: %d and %d transactions, want none", u, f)
	}
	db := s.DB()
	var row struct {
		Attempts int   `db:"attempts"`
		Lines    int64 `db:"lines"`
		Version  int64 `db:"version"`
	}
	if err := db.Get(&row, `SELECT attempts, lines, version FROM conversations`); err != nil {
		t.Fatal(err)
	}
	if row.Attempts != 2 || row.Lines != 2 || row.Version != 1 {
		t.Errorf("conversation: attempts %d, lines %d, version %d; want 2, 2 and 1 (inserted, then updated once)", row.Attempts, row.Lines, row.Version)
	}
	for _, c := range []struct {
		query string
		want  int
	}{
		{`SELECT count(*) FROM contacts`, 1},
		{`SELECT count(*) FROM transcript`, 2},
		{`SELECT count(*) FROM outbox`, 2},
		{`SELECT count(*) FROM timers`, 1},
		{`SELECT count(*) FROM secure_links`, 2},
		{`SELECT count(*) FROM inbound_seen`, 2},
		{`SELECT count(*) FROM audit_pending`, 2},
	} {
		var n int
		if err := db.Get(&n, c.query); err != nil {
			t.Fatal(err)
		}
		if n != c.want {
			t.Errorf("%s = %d, want %d", c.query, n, c.want)
		}
	}
}

// A message whose conversation changed between its read and its write is
// written under locks instead, from the start, and nothing of the first
// try stays.
func TestPostgresMessageRacedGoesUnderLocks(t *testing.T) {
	ctx := context.Background()
	s, _ := openPostgres(t, newRing(t))
	const addr = "+15550102001"
	if err := s.Tx(ctx, func(tx engine.Tx) error { _, _, err := message(ctx, tx, "SM-first", addr, "first"); return err }); err != nil {
		t.Fatal(err)
	}
	var last [2]int64
	counts(s, &last)
	calls := 0
	err := s.Tx(ctx, func(tx engine.Tx) error {
		calls++
		fresh, c, err := tx.(engine.InboundFinder).MarkInboundFind(ctx, engine.SMS, "SM-slow", addr)
		if err != nil || !fresh {
			return fmt.Errorf("mark: %v, fresh %v", err, fresh)
		}
		if calls == 1 {
			// Another message of the same patient lands in between.
			if err := s.Tx(ctx, func(tx engine.Tx) error { _, _, err := message(ctx, tx, "SM-fast", addr, "fast"); return err }); err != nil {
				return err
			}
		}
		conv, err := tx.OpenConversation(ctx, c.ID)
		if err != nil {
			return err
		}
		conv.Step = "slow"
		if err := tx.SaveConversation(ctx, conv); err != nil {
			return err
		}
		return tx.Append(ctx, []engine.TranscriptLine{{ConversationID: conv.ID, At: time.Now(), Inbound: true, Channel: engine.SMS, Text: "slow"}},
			[]*engine.Outbound{{ConversationID: conv.ID, ContactID: c.ID, Channel: engine.SMS, Address: addr, Text: "re slow"}}, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("the transaction ran %d times, want 2 (without locks, then under locks)", calls)
	}
	if u, f := counts(s, &last); u != 1 || f != 1 {
		t.Errorf("%d transactions without locks and %d under locks after a fallback, want 1 and 1 (the fast one, the slow one)", u, f)
	}
	if texts, want := onlyTranscript(t, s), []string{"first", "fast", "slow"}; !slices.Equal(texts, want) {
		t.Errorf("transcript %q, want %q: each message once, in the order written", texts, want)
	}
	outbox, seen := countRows(t, s, "outbox"), countRows(t, s, "inbound_seen")
	if outbox != 3 || seen != 3 {
		t.Errorf("%d outbox rows and %d ids seen, want 3 and 3", outbox, seen)
	}
}

// A transcript line is written only for a conversation the transaction
// loaded or saved: any other is refused, and nothing of the transaction is
// written. (PostgreSQL has no foreign key from lines to conversations;
// this is what keeps them whole.)
func TestLinesOnlyForTheTransactionsConversations(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := b.open(t, newRing(t))
			const addr = "+15550102003"
			if err := s.Tx(ctx, func(tx engine.Tx) error { _, _, err := message(ctx, tx, "SM-1", addr, "hello"); return err }); err != nil {
				t.Fatal(err)
			}
			var existing string
			if err := s.DB().Get(&existing, `SELECT id FROM conversations`); err != nil {
				t.Fatal(err)
			}
			stray := func(conversationID string) func(engine.Tx) error {
				return func(tx engine.Tx) error {
					return tx.Append(ctx, []engine.TranscriptLine{{ConversationID: conversationID, At: time.Now(), Channel: engine.SMS, Text: "stray"}}, nil, nil)
				}
			}
			for name, fn := range map[string]func(engine.Tx) error{
				"a conversation that does not exist": stray("no-such-conversation"),
				"a conversation not loaded":          stray(existing),
				"a message's, beside another's": func(tx engine.Tx) error {
					if _, _, err := message(ctx, tx, "SM-2", "+15550102004", "hi"); err != nil {
						return err
					}
					return stray(existing)(tx)
				},
			} {
				if err := s.Tx(ctx, fn); err == nil {
					t.Errorf("a line for %s was written", name)
				}
			}
			if n := countRows(t, s, "transcript"); n != 1 {
				t.Errorf("%d transcript lines, want only the first message's", n)
			}
			if n := countRows(t, s, "inbound_seen"); n != 1 {
				t.Errorf("%d ids seen, want 1: the refused message left nothing", n)
			}
		})
	}
}

// A clinic's start (its first call is ContactByAddress, with no provider
// id) is written without locks too: for a new number, and for a known one;
// one raced by a message of the same patient goes on under locks.
func TestPostgresStartWithoutLocks(t *testing.T) {
	ctx := context.Background()
	s, _ := openPostgres(t, newRing(t))
	const addr = "+15550102005"
	var last [2]int64
	// start is what the engine does to start a flow: find or make the
	// contact, then write its conversation. race, when set, runs between
	// the read and the write of the first try.
	start := func(text string, race func() error) (calls int) {
		t.Helper()
		err := s.Tx(ctx, func(tx engine.Tx) error {
			calls++
			c, err := tx.ContactByAddress(ctx, engine.SMS, addr)
			if errors.Is(err, engine.ErrNotFound) {
				c = &engine.Contact{Channel: engine.SMS, Address: addr}
				err = tx.SaveContact(ctx, c)
			}
			if err != nil {
				return err
			}
			if calls == 1 && race != nil {
				if err := race(); err != nil {
					return err
				}
			}
			conv, err := tx.OpenConversation(ctx, c.ID)
			if errors.Is(err, engine.ErrNotFound) {
				conv = &engine.Conversation{ContactID: c.ID, FlowID: "reminder", FlowHash: "h", Step: "ask", Status: engine.Active,
					Origin: engine.SMS, Address: addr, Vars: map[string]any{}}
			} else if err != nil {
				return err
			}
			conv.Step = text
			if err := tx.SaveConversation(ctx, conv); err != nil {
				return err
			}
			return tx.Append(ctx, []engine.TranscriptLine{{ConversationID: conv.ID, At: time.Now(), Channel: engine.SMS, Text: text}},
				[]*engine.Outbound{{ConversationID: conv.ID, ContactID: c.ID, Channel: engine.SMS, Address: addr, Text: text}},
				[]engine.Event{{Actor: "clinic", Action: engine.EventStepChange, ConversationID: conv.ID, At: time.Now()}})
		})
		if err != nil {
			t.Fatalf("start %q: %v", text, err)
		}
		return calls
	}
	if calls := start("new number", nil); calls != 1 {
		t.Errorf("a new number's start ran %d times, want 1", calls)
	}
	if u, f := counts(s, &last); u != 1 || f != 0 {
		t.Errorf("a new number's start: %d without locks and %d under locks, want 1 and 0", u, f)
	}
	start("known number", nil)
	if u, f := counts(s, &last); u != 1 || f != 0 {
		t.Errorf("a known number's start: %d without locks and %d under locks, want 1 and 0", u, f)
	}
	calls := start("raced", func() error {
		return s.Tx(ctx, func(tx engine.Tx) error { _, _, err := message(ctx, tx, "SM-between", addr, "between"); return err })
	})
	if calls != 2 {
		t.Errorf("the raced start ran %d times, want 2", calls)
	}
	if u, f := counts(s, &last); u != 1 || f != 1 {
		t.Errorf("a raced start: %d without locks and %d under locks, want 1 and 1 (the message, the start)", u, f)
	}
	if texts, want := onlyTranscript(t, s), []string{"new number", "known number", "between", "raced"}; !slices.Equal(texts, want) {
		t.Errorf("transcript %q, want %q", texts, want)
	}
	if n := countRows(t, s, "contacts"); n != 1 {
		t.Errorf("%d contacts, want 1", n)
	}
}

// onlyTranscript returns the texts of the transcript of the store's one
// conversation.
func onlyTranscript(t *testing.T, s *store.Store) []string {
	t.Helper()
	var conv string
	if err := s.DB().Get(&conv, `SELECT id FROM conversations`); err != nil {
		t.Fatal(err)
	}
	lines, err := s.Transcript(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, l := range lines {
		texts = append(texts, l.Text)
	}
	return texts
}
