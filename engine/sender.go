package engine

import (
	"context"
	"errors"
)

// Sender delivers outbound messages on one channel.
type Sender interface {
	// Send delivers one message and returns the provider's message id.
	// An error wrapping ErrPermanent will not succeed on retry (a bad
	// number, a blocked user); any other error is retried with backoff.
	Send(ctx context.Context, m *Outbound) (providerID string, err error)
}

// ErrPermanent marks a delivery failure that retrying cannot fix.
var ErrPermanent = errors.New("permanent delivery failure")

// Sink takes inbound messages from a channel adapter: usually the engine's
// Handle. Channel adapters call it once per message, after they have checked
// the provider's signature.
type Sink func(ctx context.Context, in Inbound) error

// DeliveryStatus is a provider's report on an outbound message.
type DeliveryStatus struct {
	Channel    Channel
	ProviderID string
	// Status is the provider's word: queued, sent, delivered, read,
	// undelivered, failed.
	Status string
	// ErrorCode is the provider's error code, if any.
	ErrorCode string
}
