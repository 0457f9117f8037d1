package storetest

import (
	"context"
	"testing"

	"github.com/safeflow/safeflow/engine"
)

// WriteOutbound writes, in one transaction, a new contact at address with
// an open conversation and one outbound message per text, and returns the
// messages with the IDs the store gave them.
func WriteOutbound(t testing.TB, s engine.Store, address string, texts ...string) []*engine.Outbound {
	t.Helper()
	ctx := context.Background()
	var out []*engine.Outbound
	err := s.Tx(ctx, func(tx engine.Tx) error {
		c := &engine.Contact{Channel: engine.SMS, Address: address}
		if err := tx.SaveContact(ctx, c); err != nil {
			return err
		}
		conv := &engine.Conversation{ContactID: c.ID, FlowID: "f", FlowHash: "h", Step: "s", Status: engine.Active,
			Origin: engine.SMS, Address: address, Vars: map[string]any{}}
		if err := tx.SaveConversation(ctx, conv); err != nil {
			return err
		}
		out = out[:0]
		for _, text := range texts {
			out = append(out, &engine.Outbound{ConversationID: conv.ID, ContactID: c.ID, Channel: engine.SMS, Address: address, Text: text})
		}
		return tx.Append(ctx, nil, out, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		if o.ID <= 0 {
			t.Fatalf("outbound %q has no ID after commit", o.Text)
		}
	}
	return out
}
