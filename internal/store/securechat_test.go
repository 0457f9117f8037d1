package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/pgtest"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/store"
)

// secureT0 is the time the secure store tests start at.
var secureT0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// secureFixture is a store holding one conversation with a few transcript
// lines and outbox rows, and two links for it.
type secureFixture struct {
	st      *store.Store
	conv    *engine.Conversation
	link    []byte // valid until secureT0 + 15m
	other   []byte // a second link of the same conversation
	expired []byte // expired at secureT0
}

func secureRec(action string) audit.Record {
	return audit.Record{Time: secureT0, Actor: audit.Actor{Type: audit.ActorContact}, Action: action, Channel: "secure", Outcome: audit.OutcomeOK}
}

func secureHash(s string) []byte {
	b := make([]byte, 32)
	copy(b, s)
	return b
}

func newSecureFixture(t *testing.T, st *store.Store) *secureFixture {
	t.Helper()
	ctx := context.Background()
	f := &secureFixture{st: st, link: secureHash("link"), other: secureHash("other"), expired: secureHash("expired")}
	err := st.Tx(ctx, func(tx engine.Tx) error {
		c := &engine.Contact{Channel: engine.SMS, Address: "+12015550123"}
		if err := tx.SaveContact(ctx, c); err != nil {
			return err
		}
		f.conv = &engine.Conversation{ContactID: c.ID, FlowID: "intake", FlowHash: "h1", Step: "ask-reason", Status: engine.Active,
			Vars: map[string]any{"first_name": "Ana"}, Origin: engine.SMS, Address: c.Address, Language: "es",
			Secure: engine.SecurePending, Created: secureT0, Updated: secureT0}
		if err := tx.SaveConversation(ctx, f.conv); err != nil {
			return err
		}
		lines := []engine.TranscriptLine{
			{ConversationID: f.conv.ID, At: secureT0, Inbound: true, Channel: engine.SMS, Text: "yes"},
			{ConversationID: f.conv.ID, At: secureT0, Channel: engine.SMS, Text: "tap the link"},
		}
		out := []*engine.Outbound{{ConversationID: f.conv.ID, ContactID: c.ID, Channel: engine.SMS, Address: c.Address, Text: "tap the link", Link: true}}
		if err := tx.Append(ctx, lines, out, nil); err != nil {
			return err
		}
		for _, l := range []engine.SecureLink{
			{TokenHash: f.link, ConversationID: f.conv.ID, ContactID: c.ID, Created: secureT0, Expires: secureT0.Add(15 * time.Minute)},
			{TokenHash: f.other, ConversationID: f.conv.ID, ContactID: c.ID, Created: secureT0, Expires: secureT0.Add(15 * time.Minute)},
			{TokenHash: f.expired, ConversationID: f.conv.ID, ContactID: c.ID, Created: secureT0.Add(-15 * time.Minute), Expires: secureT0},
		} {
			if err := tx.SaveLink(ctx, l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return f
}

// append writes lines and outbound messages for the conversation.
func (f *secureFixture) append(t *testing.T, lines []engine.TranscriptLine, out []*engine.Outbound) {
	t.Helper()
	ctx := context.Background()
	err := f.st.Tx(ctx, func(tx engine.Tx) error {
		c, err := tx.Conversation(ctx, f.conv.ID)
		if err != nil {
			return err
		}
		if err := tx.SaveConversation(ctx, c); err != nil {
			return err
		}
		for i := range lines {
			lines[i].ConversationID = f.conv.ID
		}
		for _, o := range out {
			o.ConversationID, o.ContactID = f.conv.ID, f.conv.ContactID
		}
		return tx.Append(ctx, lines, out, nil)
	})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
}

func (f *secureFixture) audit(t *testing.T) []audit.Record {
	t.Helper()
	recs, err := f.st.AuditRecords(context.Background(), time.Time{})
	if err != nil {
		t.Fatalf("audit records: %v", err)
	}
	return recs
}

func (f *secureFixture) redeem(t *testing.T, session string, now time.Time) {
	t.Helper()
	if _, err := f.st.RedeemSecureLink(context.Background(), f.link, secureHash(session), now, now.Add(30*time.Minute), secureRec(audit.LinkRedeemed)); err != nil {
		t.Fatalf("redeem: %v", err)
	}
}

// TestSecureStoreSQLite runs the secure chat's store methods on SQLite.
func TestSecureStoreSQLite(t *testing.T) {
	runSecureStoreTests(t, func(t *testing.T) *store.Store {
		return openSecureStore(t, filepath.Join(t.TempDir(), "safeflow.db"))
	})
}

// TestSecureStorePostgres runs them on PostgreSQL, and checks that Notify
// reaches a listener. It skips, loudly, when no server can be started
// (and fails in CI).
func TestSecureStorePostgres(t *testing.T) {
	pg := pgtest.Start(t)
	open := func(t *testing.T) *store.Store { return openSecureStore(t, pg.CreateDB(t, "")) }
	runSecureStoreTests(t, open)
	t.Run("NotifyReachesListener", func(t *testing.T) { testSecureNotify(t, pg) })
}

func runSecureStoreTests(t *testing.T, open func(t *testing.T) *store.Store) {
	for _, tc := range secureStoreTests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newSecureFixture(t, open(t))) })
	}
}

func openSecureStore(t *testing.T, dsn string) *store.Store {
	t.Helper()
	ring, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), dsn, ring, store.WithClock(func() time.Time { return secureT0 }))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var secureStoreTests = []struct {
	name string
	fn   func(t *testing.T, f *secureFixture)
}{
	{"LinkByHash", func(t *testing.T, f *secureFixture) {
		l, redeemed, locked, err := f.st.SecureLinkByHash(context.Background(), f.link)
		if err != nil {
			t.Fatal(err)
		}
		if l.ConversationID != f.conv.ID || l.ContactID != f.conv.ContactID || !l.Expires.Equal(secureT0.Add(15*time.Minute)) || redeemed || locked {
			t.Errorf("link = %+v, redeemed %v, locked %v", l, redeemed, locked)
		}
		if _, _, _, err := f.st.SecureLinkByHash(context.Background(), secureHash("nope")); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("unknown hash: err = %v, want ErrNotFound", err)
		}
	}},
	{"RedeemOpensSessionOnce", func(t *testing.T, f *secureFixture) {
		ctx := context.Background()
		conv, err := f.st.RedeemSecureLink(ctx, f.link, secureHash("s1"), secureT0, secureT0.Add(30*time.Minute), secureRec(audit.LinkRedeemed))
		if err != nil || conv != f.conv.ID {
			t.Fatalf("redeem = %q, %v; want %q", conv, err, f.conv.ID)
		}
		got, first, err := f.st.TouchSecureSession(ctx, secureHash("s1"), secureT0.Add(time.Minute), 5*time.Minute)
		if err != nil || got != f.conv.ID || first != 2 {
			t.Errorf("session = %q, first line %d, %v; want %q after the 2 lines written before", got, first, err, f.conv.ID)
		}
		_, err = f.st.RedeemSecureLink(ctx, f.link, secureHash("s2"), secureT0, secureT0.Add(30*time.Minute), secureRec(audit.LinkRedeemed))
		if !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("second redeem: err = %v, want ErrNotFound", err)
		}
		if _, _, err := f.st.SecureSession(ctx, secureHash("s2"), secureT0, 5*time.Minute); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("a refused redemption opened a session: err = %v", err)
		}
		if _, redeemed, _, _ := f.st.SecureLinkByHash(ctx, f.link); !redeemed {
			t.Error("link not marked redeemed")
		}
		recs := f.audit(t)
		if len(recs) != 1 || recs[0].Action != audit.LinkRedeemed || recs[0].Conversation != f.conv.ID {
			t.Errorf("audit = %+v, want one link.redeemed for the conversation", recs)
		}
	}},
	{"RedeemRetiresOtherLinks", func(t *testing.T, f *secureFixture) {
		ctx := context.Background()
		f.redeem(t, "s1", secureT0.Add(time.Minute))
		_, err := f.st.RedeemSecureLink(ctx, f.other, secureHash("s2"), secureT0.Add(2*time.Minute), secureT0.Add(time.Hour), secureRec(audit.LinkRedeemed))
		if !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("a second link of the conversation still redeems: err = %v", err)
		}
	}},
	{"RedeemEndsEarlierSession", func(t *testing.T, f *secureFixture) {
		ctx := context.Background()
		f.redeem(t, "s1", secureT0)
		if _, err := f.st.EndSecureSession(ctx, secureHash("s1"), secureRec("x")); err != nil {
			t.Fatal(err)
		}
		// A session left behind (say, on another device) must not survive
		// a new redemption for the same conversation.
		if err := f.st.Tx(ctx, func(tx engine.Tx) error {
			return tx.SaveLink(ctx, engine.SecureLink{TokenHash: secureHash("new"), ConversationID: f.conv.ID, ContactID: f.conv.ContactID,
				Created: secureT0, Expires: secureT0.Add(time.Hour)})
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.RedeemSecureLink(ctx, f.other, secureHash("old"), secureT0, secureT0.Add(time.Hour), secureRec("x")); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("retired link redeemed: %v", err)
		}
		if _, err := f.st.RedeemSecureLink(ctx, secureHash("new"), secureHash("s3"), secureT0.Add(time.Minute), secureT0.Add(time.Hour), secureRec("x")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.st.SecureSession(ctx, secureHash("s3"), secureT0.Add(time.Minute), 5*time.Minute); err != nil {
			t.Errorf("new session: %v", err)
		}
	}},
	{"RedeemRefused", func(t *testing.T, f *secureFixture) {
		ctx := context.Background()
		if _, _, err := f.st.FailSecureLink(ctx, f.other, 1, secureRec(audit.LinkFailed)); err != nil {
			t.Fatal(err)
		}
		before := len(f.audit(t))
		for _, tc := range []struct {
			label string
			hash  []byte
			now   time.Time
		}{
			{"Expired", f.expired, secureT0},
			{"ExpiresNow", f.link, secureT0.Add(15 * time.Minute)},
			{"Locked", f.other, secureT0},
			{"Unknown", secureHash("nope"), secureT0},
		} {
			_, err := f.st.RedeemSecureLink(ctx, tc.hash, secureHash("s-"+tc.label), tc.now, tc.now.Add(time.Hour), secureRec(audit.LinkRedeemed))
			if !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("%s: err = %v, want ErrNotFound", tc.label, err)
			}
			if _, _, err := f.st.SecureSession(ctx, secureHash("s-"+tc.label), tc.now, time.Hour); !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("%s: a refused redemption opened a session", tc.label)
			}
		}
		if n := len(f.audit(t)); n != before {
			t.Errorf("refused redemptions appended %d audit records; the caller records refusals", n-before)
		}
	}},
	{"RedeemConcurrentOneWins", func(t *testing.T, f *secureFixture) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := f.st.RedeemSecureLink(context.Background(), f.link, secureHash(fmt.Sprint("s", i)), secureT0, secureT0.Add(time.Hour), secureRec(audit.LinkRedeemed))
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errors.Is(err, engine.ErrNotFound) {
					t.Errorf("redeem %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Errorf("%d concurrent redemptions succeeded, want exactly 1", wins)
		}
	}},
	{"FailuresLockAtMax", func(t *testing.T, f *secureFixture) {
		ctx := context.Background()
		for i := 1; i <= 5; i++ {
			n, locked, err := f.st.FailSecureLink(ctx, f.link, 5, secureRec(audit.LinkFailed))
			if err != nil || n != i || locked != (i == 5) {
				t.Fatalf("failure %d: = %d, locked %v, %v", i, n, locked, err)
			}
		}
		if _, _, err := f.st.FailSecureLink(ctx, f.link, 5, secureRec(audit.LinkFailed)); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("failure on a locked link: err = %v, want ErrNotFound", err)
		}
		if _, _, locked, _ := f.st.SecureLinkByHash(ctx, f.link); !locked {
			t.Error("link not locked after 5 failures")
		}
		if _, err := f.st.RedeemSecureLink(ctx, f.link, secureHash("s"), secureT0, secureT0.Add(time.Hour), secureRec(audit.LinkRedeemed)); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("locked link redeemed: err = %v", err)
		}
		counts := map[string]int{}
		for _, r := range f.audit(t) {
			counts[r.Action]++
			if r.Conversation != f.conv.ID {
				t.Errorf("%s record without the conversation", r.Action)
			}
		}
		if counts[audit.LinkFailed] != 5 || counts[audit.LinkLocked] != 1 {
			t.Errorf("audit actions = %v, want 5 link.failed and 1 link.locked", counts)
		}
		if p, err := f.st.VerifyAudit(ctx); err != nil || p != nil {
			t.Errorf("audit chain: %v, %v", p, err)
		}
	}},
	{"SessionIdleTimeout", func(t *testing.T, f *secureFixture) {
		ctx := context.Background()
		f.redeem(t, "s", secureT0)
		idle := 5 * time.Minute
		// Reading without touching does not keep the session alive.
		if _, _, err := f.st.SecureSession(ctx, secureHash("s"), secureT0.Add(4*time.Minute), idle); err != nil {
			t.Fatalf("read at 4m: %v", err)
		}
		if _, _, err := f.st.SecureSession(ctx, secureHash("s"), secureT0.Add(idle), idle); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("read at 5m without activity: err = %v, want ErrNotFound", err)
		}
		if _, _, err := f.st.TouchSecureSession(ctx, secureHash("s"), secureT0.Add(idle), idle); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("touch at 5m without activity: err = %v, want ErrNotFound", err)
		}
	}},
	{"SessionActivityKeepsAliveUntilLimit", func(t *testing.T, f *secureFixture) {
		ctx := context.Background()
		f.redeem(t, "s", secureT0) // absolute limit: 30 minutes
		idle := 5 * time.Minute
		at := secureT0
		for at.Add(4 * time.Minute).Before(secureT0.Add(30 * time.Minute)) {
			at = at.Add(4 * time.Minute)
			if _, _, err := f.st.TouchSecureSession(ctx, secureHash("s"), at, idle); err != nil {
				t.Fatalf("touch at %v: %v", at.Sub(secureT0), err)
			}
		}
		if _, _, err := f.st.TouchSecureSession(ctx, secureHash("s"), secureT0.Add(30*time.Minute), idle); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("touch at the absolute limit: err = %v, want ErrNotFound", err)
		}
	}},
	{"ExpireSessions", func(t *testing.T, f *secureFixture) {
		ctx := context.Background()
		f.redeem(t, "s", secureT0)
		idle := 5 * time.Minute
		closed, err := f.st.ExpireSecureSessions(ctx, secureT0.Add(4*time.Minute), idle, secureRec("secure.session.ended"))
		if err != nil || len(closed) != 0 {
			t.Fatalf("expire at 4m = %v, %v; want none", closed, err)
		}
		closed, err = f.st.ExpireSecureSessions(ctx, secureT0.Add(6*time.Minute), idle, secureRec("secure.session.ended"))
		if err != nil || len(closed) != 1 || closed[0] != f.conv.ID {
			t.Fatalf("expire at 6m = %v, %v; want the conversation", closed, err)
		}
		recs := f.audit(t)
		last := recs[len(recs)-1]
		if last.Action != "secure.session.ended" || last.Reason != "idle timeout" || last.Conversation != f.conv.ID {
			t.Errorf("audit = %+v, want the idle timeout recorded", last)
		}
		if _, err := f.st.EndSecureSession(ctx, secureHash("s"), secureRec("x")); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("expired session still there: %v", err)
		}
	}},
	{"ExpireSessionsAtLimit", func(t *testing.T, f *secureFixture) {
		ctx := context.Background()
		f.redeem(t, "s", secureT0) // absolute limit: 30 minutes
		if closed, err := f.st.ExpireSecureSessions(ctx, secureT0.Add(29*time.Minute), time.Hour, secureRec("secure.session.ended")); err != nil || len(closed) != 0 {
			t.Fatalf("expire at 29m with a 1h idle timeout = %v, %v; want none", closed, err)
		}
		closed, err := f.st.ExpireSecureSessions(ctx, secureT0.Add(30*time.Minute), time.Hour, secureRec("secure.session.ended"))
		if err != nil || len(closed) != 1 {
			t.Fatalf("expire = %v, %v", closed, err)
		}
		recs := f.audit(t)
		if r := recs[len(recs)-1]; r.Reason != "time limit" {
			t.Errorf("reason = %q, want time limit", r.Reason)
		}
	}},
	{"EndSession", func(t *testing.T, f *secureFixture) {
		ctx := context.Background()
		f.redeem(t, "s", secureT0)
		conv, err := f.st.EndSecureSession(ctx, secureHash("s"), secureRec("secure.session.ended"))
		if err != nil || conv != f.conv.ID {
			t.Fatalf("end = %q, %v", conv, err)
		}
		if _, _, err := f.st.SecureSession(ctx, secureHash("s"), secureT0, time.Hour); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("ended session still live: %v", err)
		}
		if _, err := f.st.EndSecureSession(ctx, secureHash("s"), secureRec("secure.session.ended")); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("second end: err = %v, want ErrNotFound", err)
		}
		recs := f.audit(t)
		if r := recs[len(recs)-1]; r.Action != "secure.session.ended" || r.Conversation != f.conv.ID {
			t.Errorf("audit = %+v", r)
		}
	}},
	{"TranscriptOnlySecureLinesAfter", func(t *testing.T, f *secureFixture) {
		ctx := context.Background()
		f.append(t, []engine.TranscriptLine{
			{At: secureT0, Channel: engine.Secure, Text: "What brings you in?", Sensitive: true},   // 3
			{At: secureT0, Inbound: true, Channel: engine.Secure, Text: "a rash", Sensitive: true}, // 4
			{At: secureT0, Channel: engine.SMS, Text: "pointer"},                                   // 5
			{At: secureT0, Channel: engine.Secure, Text: "Any medicines?", Sensitive: true},        // 6
		}, nil)
		type got struct {
			n       int64
			inbound bool
			text    string
		}
		read := func(after int64, limit int) []got {
			var out []got
			err := f.st.SecureTranscript(ctx, f.conv.ID, after, limit, func(n int64, l engine.TranscriptLine) {
				out = append(out, got{n, l.Inbound, l.Text})
			})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		all := read(0, 100)
		want := []got{{3, false, "What brings you in?"}, {4, true, "a rash"}, {6, false, "Any medicines?"}}
		if fmt.Sprint(all) != fmt.Sprint(want) {
			t.Errorf("lines = %v, want %v", all, want)
		}
		if after := read(4, 100); fmt.Sprint(after) != fmt.Sprint(want[2:]) {
			t.Errorf("after 4 = %v, want %v", after, want[2:])
		}
		if limited := read(0, 2); len(limited) != 2 {
			t.Errorf("limit 2 gave %d lines", len(limited))
		}
	}},
	{"LatestSecureOutbound", func(t *testing.T, f *secureFixture) {
		ctx := context.Background()
		if _, err := f.st.LatestSecureOutbound(ctx, f.conv.ID); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("no secure message yet: err = %v, want ErrNotFound", err)
		}
		f.append(t, nil, []*engine.Outbound{
			{Channel: engine.Secure, Text: "Which day?", Input: "choice", Choices: []engine.OutChoice{{Title: "Monday", Payload: "mon"}}, Sensitive: true},
			{Channel: engine.SMS, Address: "+12015550123", Text: "sms after"},
		})
		o, err := f.st.LatestSecureOutbound(ctx, f.conv.ID)
		if err != nil || o.Text != "Which day?" || o.Input != "choice" || len(o.Choices) != 1 || o.Choices[0].Payload != "mon" || o.Channel != engine.Secure {
			t.Errorf("latest = %+v, %v", o, err)
		}
		f.append(t, nil, []*engine.Outbound{{Channel: engine.Secure, Text: "continue by text", System: true}})
		if o, err := f.st.LatestSecureOutbound(ctx, f.conv.ID); err != nil || !o.System || o.Text != "continue by text" {
			t.Errorf("latest = %+v, %v; want the system message", o, err)
		}
	}},
	{"ConversationStateWithoutSealedFields", func(t *testing.T, f *secureFixture) {
		c, err := f.st.ConversationState(context.Background(), f.conv.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Secure != engine.SecurePending || c.Origin != engine.SMS || c.Language != "es" || c.FlowID != "intake" || c.Status != engine.Active {
			t.Errorf("state = %+v", c)
		}
		if len(c.Vars) != 0 || c.Address != "" {
			t.Errorf("sealed fields opened: vars %v, address %q", c.Vars, c.Address)
		}
		if _, err := f.st.ConversationState(context.Background(), "nope"); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("unknown: err = %v, want ErrNotFound", err)
		}
	}},
	{"NotifyOnSQLiteDoesNothing", func(t *testing.T, f *secureFixture) {
		if f.st.Postgres() {
			t.Skip("SQLite only")
		}
		if err := f.st.Notify(context.Background(), "safeflow_secure", f.conv.ID); err != nil {
			t.Errorf("notify: %v", err)
		}
	}},
}

// testSecureNotify checks that Notify reaches a PostgreSQL listener.
func testSecureNotify(t *testing.T, pg *pgtest.Server) {
	dsn := pg.CreateDB(t, "")
	st2 := openSecureStore(t, dsn)
	l := pq.NewListener(dsn, time.Second, time.Second, nil)
	defer l.Close()
	if err := l.Listen("safeflow_secure"); err != nil {
		t.Fatal(err)
	}
	if err := st2.Notify(context.Background(), "safeflow_secure", "conv-1"); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-l.Notify:
		if n == nil || n.Extra != "conv-1" {
			t.Errorf("notification = %+v, want payload conv-1", n)
		}
	case <-time.After(10 * time.Second):
		t.Error("no notification within 10s")
	}
}
