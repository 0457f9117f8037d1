package securechat_test

import (
	"context"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/pgtest"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/store"
	"github.com/safeflow/safeflow/securechat"
)

func TestSecureHubWakesOnlyItsConversation(t *testing.T) {
	hub := securechat.NewHub(nil, nil)
	a, stopA := hub.Subscribe("conv-a")
	defer stopA()
	b, stopB := hub.Subscribe("conv-b")
	id, err := hub.Send(context.Background(), &engine.Outbound{ID: 42, Channel: engine.Secure, ConversationID: "conv-a"})
	if err != nil || id != "secure-42" {
		t.Fatalf("send = %q, %v", id, err)
	}
	select {
	case <-a:
	default:
		t.Error("the conversation's page was not woken")
	}
	select {
	case <-b:
		t.Error("another conversation's page was woken")
	default:
	}
	stopB()
	hub.Wake("conv-b") // no one left: nothing blocks
}

// Two nodes on one PostgreSQL: a message sent through one node's hub wakes
// a page connected to the other, through LISTEN/NOTIFY.
func TestSecureHubAcrossNodes(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "")
	ring, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), dsn, ring)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodeA := securechat.NewHub(st.Notify, nil)
	nodeB := securechat.NewHub(st.Notify, nil)
	done := make(chan error, 1)
	go func() { done <- nodeB.Listen(ctx, dsn) }()
	woken, stop := nodeB.Subscribe("conv-1")
	defer stop()
	// The listener needs a moment to start: keep sending until it hears.
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := nodeA.Send(ctx, &engine.Outbound{ID: 1, Channel: engine.Secure, ConversationID: "conv-1"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-woken:
			cancel()
			if err := <-done; err != nil {
				t.Errorf("listen: %v", err)
			}
			return
		case err := <-done:
			t.Fatalf("listener stopped: %v", err)
		case <-deadline:
			t.Fatal("node B was not woken within 15s")
		case <-tick.C:
		}
	}
}

func TestSecureRunSweepsTimedOutSessions(t *testing.T) {
	h := newHarness(t, func(c *securechat.Config) { c.Sweep = 10 * time.Millisecond })
	token, conv := h.intake("+12015550150")
	h.enter(token)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Run(ctx) }()
	h.clock.Advance(6 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for h.conv(conv).Secure != engine.SecurePending {
		if time.Now().After(deadline) {
			t.Fatal("Run did not end the idle session within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}
