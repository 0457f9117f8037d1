// Package delivery drains the outbox: it claims due messages, hands each to
// its channel's sender, and records the outcome, retrying failures with
// exponential backoff and jitter until a message becomes a dead letter.
package delivery

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/store"
)

// Outbox is the part of the store the worker needs.
type Outbox interface {
	ClaimOutbox(ctx context.Context, now, dueBy time.Time, lease time.Duration, limit int) ([]store.Pending, error)
	ClaimOutboxRows(ctx context.Context, now time.Time, lease time.Duration, seqs []int64) ([]store.Pending, error)
	MarkSent(ctx context.Context, sent ...store.Sent) error
	MarkFailed(ctx context.Context, key string, next time.Time, dead bool, reason string) error
	ReleaseOutbox(ctx context.Context, keys ...string) error
}

// Worker delivers outbox messages.
type Worker struct {
	Outbox  Outbox
	Senders map[engine.Channel]engine.Sender
	Log     *slog.Logger
	// MaxAttempts is how many tries a message gets before it is dead.
	MaxAttempts int
	// BaseDelay is the first retry delay; each retry doubles it, up to MaxDelay.
	BaseDelay, MaxDelay time.Duration
	// Lease is how long a claimed message is reserved for one attempt.
	Lease time.Duration
	// RecordAfter is how long a batch runs before what it has sent is
	// recorded as each contact's messages are done, rather than all
	// together at its end (100 ms when zero).
	RecordAfter time.Duration
	// Parallel is how many contacts' messages are sent at once (8 when
	// zero): a provider takes 100 ms or more to answer, and one send at a
	// time would hold every contact's reply behind the others'. A
	// contact's own messages go one at a time, in order, so Senders are
	// called from several goroutines at once, for different contacts.
	Parallel int
	// Poll is how often the whole outbox is searched for due messages:
	// retries, messages written by other nodes or before a restart. Messages
	// the worker is told of with Hint are claimed at once, without a search.
	Poll time.Duration
	// Settle is how long the search leaves a message alone after it becomes
	// due, when the worker takes hints: a new message is claimed by its hint,
	// and the search would only race it for the same rows.
	Settle time.Duration
	Now    func() time.Time
	// Observe, when set, is told each outcome: "sent", "retry" or "dead".
	Observe func(ch engine.Channel, outcome string)
	// Wake, when set, wakes the worker early (new messages were written).
	Wake <-chan struct{}

	mu    sync.Mutex
	hints []int64
	ready []store.Pending
}

// maxHints bounds the rows waiting to be claimed by hint; beyond it, hints
// are dropped and the next search of the outbox finds the rows.
const maxHints = 4096

// Hint tells the worker which outbox rows were just written (their
// Outbound IDs), so that it claims them by key rather than searching the
// outbox for them. Send on Wake afterwards to have them claimed at once.
func (w *Worker) Hint(seqs ...int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, seq := range seqs {
		if seq > 0 && len(w.hints) < maxHints {
			w.hints = append(w.hints, seq)
		}
	}
}

// Take hands the worker what a commit wrote (see store.OnOutbox): messages
// inserted claimed, to send without claiming them, and the IDs of the
// others, as Hint. Send on Wake afterwards. Beyond maxHints waiting,
// messages are dropped: their lease ends and the search finds them.
func (w *Worker) Take(claimed []store.Pending, rest []int64) {
	w.mu.Lock()
	for _, p := range claimed {
		if len(w.ready) < maxHints {
			w.ready = append(w.ready, p)
		}
	}
	w.mu.Unlock()
	w.Hint(rest...)
}

// take returns the messages handed over claimed and the hinted rows, and
// forgets them. Both at once: a hinted row may wait behind a claimed one.
func (w *Worker) take() ([]store.Pending, []int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, h := w.ready, w.hints
	w.ready, w.hints = nil, nil
	return r, h
}

func (w *Worker) defaults() {
	if w.MaxAttempts == 0 {
		w.MaxAttempts = 8
	}
	if w.BaseDelay == 0 {
		w.BaseDelay = time.Second
	}
	if w.MaxDelay == 0 {
		w.MaxDelay = 10 * time.Minute
	}
	if w.Lease == 0 {
		w.Lease = time.Minute
	}
	if w.Parallel <= 0 {
		w.Parallel = 8
	}
	if w.RecordAfter == 0 {
		w.RecordAfter = 100 * time.Millisecond
	}
	if w.Poll == 0 {
		w.Poll = 250 * time.Millisecond
	}
	if w.Settle == 0 {
		w.Settle = time.Second
	}
	if w.Now == nil {
		w.Now = time.Now
	}
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
}

// Run delivers until ctx ends. Messages in flight when it ends stay in the
// outbox and are sent after the next start: those it had claimed are
// released, so that the next start sends them at once instead of when
// their lease ends.
func (w *Worker) Run(ctx context.Context) {
	w.defaults()
	defer w.Release()
	// When the outbox is next searched, on the real clock: Now may be a
	// test's.
	var search time.Time
	for {
		ready, hints := w.take()
		if err := w.deliverAll(ctx, ready); err != nil && ctx.Err() == nil {
			w.Log.Error("outbox", "err", err)
		}
		n, err := w.drainHinted(ctx, hints, len(ready) > 0)
		n += len(ready)
		if err != nil && ctx.Err() == nil {
			w.Log.Error("outbox", "err", err)
		}
		if !time.Now().Before(search) {
			found, err := w.search(ctx, w.Settle)
			if err != nil && ctx.Err() == nil {
				w.Log.Error("outbox", "err", err)
			}
			if found == 0 {
				search = time.Now().Add(w.Poll)
			}
			n += found
		}
		if n > 0 {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-w.Wake:
		case <-time.After(max(time.Until(search), 0)):
		}
	}
}

// Release returns to the outbox the messages handed over claimed (Take)
// and not yet sent, and forgets the hinted rows, which were never claimed.
// Run calls it when it ends; call it again once nothing can commit any
// more, for what was handed over after. Without it, those messages wait for
// their lease to end.
func (w *Worker) Release() {
	ready, _ := w.take()
	if len(ready) == 0 {
		return
	}
	keys := make([]string, len(ready))
	for i, p := range ready {
		keys[i] = p.Key
	}
	if err := w.giveBack(context.Background(), keys); err != nil {
		w.Log.Error("outbox: could not release messages; they are sent when their lease ends", "messages", len(keys), "err", err)
	}
}

// giveBack returns claimed messages to the outbox unsent, even when ctx
// has ended (the worker is stopping). A database that does not answer
// within 5 s must not hold the service up: the messages are then left to
// their lease.
func (w *Worker) giveBack(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return w.Outbox.ReleaseOutbox(ctx, keys...)
}

// search delivers one batch of the messages that became due at least
// settle ago.
func (w *Worker) search(ctx context.Context, settle time.Duration) (int, error) {
	now := w.Now()
	batch, err := w.Outbox.ClaimOutbox(ctx, now, now.Add(-settle), w.Lease, 64)
	if err != nil {
		return 0, err
	}
	return len(batch), w.deliverAll(ctx, batch)
}

// drainHinted claims and delivers the hinted rows it can and returns how
// many it tried. A row left behind an older message to the same contact is
// hinted again when the worker made progress (delivered, a claimed message
// before the hints included): it is usually the next message of the same
// reply, claimable once the first is sent. Otherwise the search finds it
// when its turn comes.
func (w *Worker) drainHinted(ctx context.Context, seqs []int64, progress bool) (int, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	batch, err := w.Outbox.ClaimOutboxRows(ctx, w.Now(), w.Lease, seqs)
	if err != nil {
		return 0, err
	}
	err = w.deliverAll(ctx, batch)
	if len(batch) > 0 || progress {
		claimed := make(map[int64]bool, len(batch))
		for _, p := range batch {
			claimed[p.ID] = true
		}
		var rest []int64
		for _, seq := range seqs {
			if !claimed[seq] {
				rest = append(rest, seq)
			}
		}
		w.Hint(rest...)
	}
	return len(batch), err
}

// deliverAll delivers a claimed batch: each contact's messages in order,
// up to Parallel contacts at once. Deliveries are recorded together, in
// one statement after the batch, when it is quick. A claim holds at most one message per
// contact, but a commit may hand over several, oldest first: once one to a
// contact is not sent, the rest to that contact are released unsent, to
// follow it when it is retried, so order is kept. When ctx ends, the sends
// in flight and the messages after them are released unsent. A batch that
// runs past RecordAfter records its deliveries as they come.
func (w *Worker) deliverAll(ctx context.Context, batch []store.Pending) error {
	var order []string
	byContact := map[string][]store.Pending{}
	for _, p := range batch {
		k := p.ContactID
		if k == "" {
			k = "\x00" + p.Key // no contact to keep in order with
		}
		if _, seen := byContact[k]; !seen {
			order = append(order, k)
		}
		byContact[k] = append(byContact[k], p)
	}
	var (
		mu       sync.Mutex
		sent     []store.Sent
		released []string
		errs     []error
		wg       sync.WaitGroup
	)
	began := time.Now()
	turns := make(chan struct{}, max(w.Parallel, 1))
	for _, k := range order {
		turns <- struct{}{}
		wg.Go(func() {
			defer func() { <-turns }()
			s, r, err := w.deliverContact(ctx, byContact[k])
			mu.Lock()
			sent, released, errs = append(sent, s...), append(released, r...), append(errs, err)
			// A batch that runs long (a slow provider) records what it
			// has sent as it goes: a crash sends again only what was
			// sent but not yet recorded.
			var record []store.Sent
			if time.Since(began) >= w.RecordAfter {
				record, sent = sent, nil
			}
			mu.Unlock()
			if err := w.markSent(ctx, record); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, w.giveBack(ctx, released), w.markSent(ctx, sent))...)
}

// deliverContact sends one contact's messages, in order. Once one is not
// sent (it failed, or ctx ended), it returns the keys of the rest as
// released, and of that one too when ctx ended during its send.
func (w *Worker) deliverContact(ctx context.Context, msgs []store.Pending) (sent []store.Sent, released []string, err error) {
	for i, p := range msgs {
		var s *store.Sent
		if ctx.Err() == nil {
			s, err = w.deliver(ctx, p)
		}
		if s != nil {
			sent = append(sent, *s)
			continue
		}
		if err == nil && ctx.Err() != nil {
			// Interrupted, or failed and recorded just as ctx ended: a
			// release changes only a row still claimed.
			released = append(released, p.Key)
		}
		for _, q := range msgs[i+1:] {
			released = append(released, q.Key)
		}
		return sent, released, err
	}
	return sent, nil, nil
}

// markSent records delivered messages, even while shutting down: they
// were sent, and must not go out again.
func (w *Worker) markSent(ctx context.Context, sent []store.Sent) error {
	if len(sent) == 0 {
		return nil
	}
	return w.Outbox.MarkSent(context.WithoutCancel(ctx), sent...)
}

// deliver sends one message. It returns the delivery to record when the
// provider took it, and records failures itself.
func (w *Worker) deliver(ctx context.Context, p store.Pending) (*store.Sent, error) {
	sender := w.Senders[p.Channel]
	if sender == nil {
		w.observe(p.Channel, "dead")
		w.Log.Error("no sender for channel; message moved to dead letters", "channel", string(p.Channel), "outbox", p.Key)
		return nil, w.Outbox.MarkFailed(ctx, p.Key, w.Now(), true, "no sender for channel")
	}
	id, err := sender.Send(ctx, p.Outbound)
	if err == nil {
		w.observe(p.Channel, "sent")
		return &store.Sent{Key: p.Key, ProviderID: id}, nil
	}
	if ctx.Err() != nil {
		return nil, nil // shutting down: deliverAll releases the message
	}
	attempts := p.Attempts + 1
	dead := errors.Is(err, engine.ErrPermanent) || attempts >= w.MaxAttempts
	next := w.Now().Add(w.backoff(attempts))
	if dead {
		w.observe(p.Channel, "dead")
		w.Log.Error("message moved to dead letters", "channel", string(p.Channel), "outbox", p.Key, "attempts", attempts, "err", err.Error())
	} else {
		w.observe(p.Channel, "retry")
		w.Log.Warn("delivery failed; will retry", "channel", string(p.Channel), "outbox", p.Key, "attempts", attempts, "err", err.Error())
	}
	return nil, w.Outbox.MarkFailed(ctx, p.Key, next, dead, shortReason(err))
}

// backoff is exponential with full jitter: a random delay up to
// BaseDelay·2^(attempts-1), capped at MaxDelay.
func (w *Worker) backoff(attempts int) time.Duration {
	d := w.BaseDelay << min(attempts-1, 20)
	if d <= 0 || d > w.MaxDelay {
		d = w.MaxDelay
	}
	return d/2 + rand.N(d/2+1)
}

func (w *Worker) observe(ch engine.Channel, outcome string) {
	if w.Observe != nil {
		w.Observe(ch, outcome)
	}
}

// shortReason keeps the first 200 bytes of an error for the outbox row.
// Senders never put addresses or message text in their errors.
func shortReason(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
