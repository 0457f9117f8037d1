package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/engine/memstore"
)

var errDisk = errors.New("disk full")

// failingStore is a memstore whose transactions fail at one method.
type failingStore struct {
	*memstore.Store
	failAt string
}

func (s *failingStore) Tx(ctx context.Context, fn func(engine.Tx) error) error {
	return s.Store.Tx(ctx, func(tx engine.Tx) error { return fn(&failingTx{Tx: tx, failAt: s.failAt}) })
}

type failingTx struct {
	engine.Tx
	failAt string
}

func (t *failingTx) fail(method string) error {
	if t.failAt == method {
		return errDisk
	}
	return nil
}

func (t *failingTx) MarkInbound(ctx context.Context, ch engine.Channel, id string) (bool, error) {
	if err := t.fail("MarkInbound"); err != nil {
		return false, err
	}
	return t.Tx.MarkInbound(ctx, ch, id)
}

func (t *failingTx) ContactByAddress(ctx context.Context, ch engine.Channel, addr string) (*engine.Contact, error) {
	if err := t.fail("ContactByAddress"); err != nil {
		return nil, err
	}
	return t.Tx.ContactByAddress(ctx, ch, addr)
}

func (t *failingTx) SaveContact(ctx context.Context, c *engine.Contact) error {
	if err := t.fail("SaveContact"); err != nil {
		return err
	}
	return t.Tx.SaveContact(ctx, c)
}

func (t *failingTx) OpenConversation(ctx context.Context, id string) (*engine.Conversation, error) {
	if err := t.fail("OpenConversation"); err != nil {
		return nil, err
	}
	return t.Tx.OpenConversation(ctx, id)
}

func (t *failingTx) SaveConversation(ctx context.Context, c *engine.Conversation) error {
	if err := t.fail("SaveConversation"); err != nil {
		return err
	}
	return t.Tx.SaveConversation(ctx, c)
}

func (t *failingTx) Append(ctx context.Context, l []engine.TranscriptLine, o []*engine.Outbound, e []engine.Event) error {
	if err := t.fail("Append"); err != nil {
		return err
	}
	return t.Tx.Append(ctx, l, o, e)
}

func (t *failingTx) SetTimers(ctx context.Context, id string, timers []engine.Timer) error {
	if err := t.fail("SetTimers"); err != nil {
		return err
	}
	return t.Tx.SetTimers(ctx, id, timers)
}

// TestStoreErrors checks that a failing store fails the message whole,
// with an error that names what failed but not the patient's address or
// text.
func TestStoreErrors(t *testing.T) {
	set := loadSet(t, `
flow: timed
trigger: { keywords: [GO], default: true }
steps:
  q:
    ask: { prompt: "Your symptoms?", type: text, save: s, timeout: 1h }
    next: done
  done: { say: "Thanks.", end: true }
`)
	const address, text = "+15555550199", "GO"
	for _, method := range []string{"MarkInbound", "ContactByAddress", "SaveContact", "OpenConversation",
		"SaveConversation", "Append", "SetTimers"} {
		t.Run(method, func(t *testing.T) {
			store := &failingStore{Store: memstore.New(), failAt: method}
			eng := engine.New(set, store, engine.WithClock(func() time.Time { return t0 }))
			_, err := eng.Handle(context.Background(), engine.Inbound{Channel: engine.SMS, Address: address,
				Text: text, ProviderID: "SM1"})
			if !errors.Is(err, errDisk) {
				t.Fatalf("Handle: %v, want the store's error", err)
			}
			if strings.Contains(err.Error(), address) || strings.Contains(err.Error(), text) {
				t.Errorf("the error %q shows the address or the text", err)
			}
			if len(store.Outbox()) != 0 || len(store.Events()) != 0 {
				t.Error("a failed message left messages or events behind")
			}
			// The message was not marked handled: a retry by the provider works.
			store.failAt = ""
			res, err := eng.Handle(context.Background(), engine.Inbound{Channel: engine.SMS, Address: address,
				Text: text, ProviderID: "SM1"})
			if err != nil {
				t.Fatalf("the retry: %v", err)
			}
			if res.Duplicate || len(res.Out) != 1 {
				t.Errorf("the retry: duplicate %v, %d replies; want handled once", res.Duplicate, len(res.Out))
			}
		})
	}
}
