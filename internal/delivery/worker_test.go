package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/delivery"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/store"
	"github.com/safeflow/safeflow/internal/store/storetest"
)

// counted is the real store, counting how the worker claims.
type counted struct {
	*store.Store
	searches, byRow atomic.Int64
}

func (c *counted) ClaimOutbox(ctx context.Context, now, dueBy time.Time, lease time.Duration, limit int) ([]store.Pending, error) {
	c.searches.Add(1)
	return c.Store.ClaimOutbox(ctx, now, dueBy, lease, limit)
}

func (c *counted) ClaimOutboxRows(ctx context.Context, now time.Time, lease time.Duration, seqs []int64) ([]store.Pending, error) {
	c.byRow.Add(1)
	return c.Store.ClaimOutboxRows(ctx, now, lease, seqs)
}

// phone records what was sent; fail, when set, refuses a text.
type phone struct {
	mu   sync.Mutex
	got  []string
	fail string
}

func (p *phone) Send(_ context.Context, m *engine.Outbound) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.Text == p.fail {
		return "", errors.New("provider answered 503")
	}
	p.got = append(p.got, m.Text)
	return fmt.Sprintf("SM%d", len(p.got)), nil
}

func (p *phone) sent() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

func openStore(t testing.TB) *counted {
	t.Helper()
	ring, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "safeflow.db"), ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &counted{Store: s}
}

// write stores one transaction's messages to a new contact and returns
// their IDs.
func write(t testing.TB, s *counted, address string, texts ...string) []int64 {
	var ids []int64
	for _, o := range storetest.WriteOutbound(t, s.Store, address, texts...) {
		ids = append(ids, o.ID)
	}
	return ids
}

// smsWorker returns a worker that sends SMS through p and is woken by
// wake; it searches the outbox only when it starts.
func smsWorker(s *counted, p engine.Sender) (*delivery.Worker, chan struct{}) {
	wake := make(chan struct{}, 1)
	return &delivery.Worker{Outbox: s, Senders: map[engine.Channel]engine.Sender{engine.SMS: p}, Wake: wake, Poll: time.Hour}, wake
}

// handOver has the store hand w what each commit writes, as the service
// does, and wake it.
func handOver(s *counted, w *delivery.Worker, wake chan<- struct{}) {
	s.OnOutbox(func(claimed []store.Pending, rest []int64) {
		w.Take(claimed, rest)
		select {
		case wake <- struct{}{}:
		default:
		}
	})
}

// start runs a worker until the test ends or stop is called.
func start(t testing.TB, w *delivery.Worker) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// anaInOrder checks that of the messages sent, ana's are want, in order.
func anaInOrder(t *testing.T, sent []string, want ...string) {
	t.Helper()
	var ana []string
	for _, m := range sent {
		if strings.HasPrefix(m, "ana") {
			ana = append(ana, m)
		}
	}
	if !slices.Equal(ana, want) {
		t.Errorf("ana received %q, want %q in order", ana, want)
	}
}

// Messages the worker is told of go out at once, claimed by their rows
// without a search of the outbox, and a contact's second message follows
// its first.
func TestHintedMessagesGoOutWithoutASearch(t *testing.T) {
	s := openStore(t)
	p := &phone{}
	w, wake := smsWorker(s, p)
	start(t, w)
	waitFor(t, "the search at start", func() bool { return s.searches.Load() == 1 })

	w.Hint(write(t, s, "+15550100001", "ana 1", "ana 2", "ana 3")...)
	w.Hint(write(t, s, "+15550100002", "ben 1")...)
	wake <- struct{}{}
	waitFor(t, "four messages sent", func() bool { return len(p.sent()) == 4 })

	var ana []string
	for _, m := range p.sent() {
		if m[:3] == "ana" {
			ana = append(ana, m)
		}
	}
	if want := []string{"ana 1", "ana 2", "ana 3"}; !slices.Equal(ana, want) {
		t.Errorf("ana received %q, want %q in order", ana, want)
	}
	if n := s.searches.Load(); n != 1 {
		t.Errorf("the outbox was searched %d times, want only the search at start", n)
	}
	if pending, _, err := s.OutboxCounts(context.Background()); err != nil || pending != 0 {
		t.Errorf("%d messages still undelivered (%v), want 0", pending, err)
	}
}

// Messages no one hinted (a retry, another node's) are found by the
// search, every Poll, once they have been due for Settle.
func TestUnhintedMessagesAreFoundBySearch(t *testing.T) {
	s := openStore(t)
	p := &phone{}
	w := &delivery.Worker{Outbox: s, Senders: map[engine.Channel]engine.Sender{engine.SMS: p}, Poll: 10 * time.Millisecond,
		Settle: 300 * time.Millisecond}
	start(t, w)
	waitFor(t, "the search at start", func() bool { return s.searches.Load() >= 1 })
	written := time.Now()
	write(t, s, "+15550100001", "ana 1", "ana 2")
	waitFor(t, "two messages sent", func() bool { return len(p.sent()) == 2 })
	if waited := time.Since(written); waited < 300*time.Millisecond {
		t.Errorf("the search took new messages after %v, before they settled for 300ms", waited)
	}
	if got, want := p.sent(), []string{"ana 1", "ana 2"}; !slices.Equal(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
}

// A hinted message stuck behind its contact's failed one is not claimed
// over and over: it is dropped from the hints and left to the search, which
// sends both in order once the first one's retry is due.
func TestHintBehindAFailedMessageIsNotRetriedInALoop(t *testing.T) {
	s := openStore(t)
	p := &phone{fail: "ana 1"}
	w, wake := smsWorker(s, p)
	w.BaseDelay, w.MaxDelay = time.Millisecond, time.Millisecond
	stop := start(t, w)
	waitFor(t, "the search at start", func() bool { return s.searches.Load() == 1 })
	w.Hint(write(t, s, "+15550100001", "ana 1", "ana 2")...)
	wake <- struct{}{}
	waitFor(t, "the first claim by row", func() bool { return s.byRow.Load() >= 1 })
	time.Sleep(200 * time.Millisecond)
	// One claim gets ana 1, which fails; one more finds ana 2 still behind
	// it; then the hints are spent.
	if n := s.byRow.Load(); n != 2 {
		t.Errorf("%d claims by row, want 2", n)
	}
	if got := p.sent(); len(got) != 0 {
		t.Errorf("sent %q while ana 1 fails, want nothing", got)
	}
	stop()

	// The provider is back; a worker started later finds both once ana 1's
	// retry is due.
	p.fail = ""
	start(t, &delivery.Worker{Outbox: s, Senders: map[engine.Channel]engine.Sender{engine.SMS: p}, Poll: 10 * time.Millisecond,
		Settle: time.Millisecond})
	waitFor(t, "two messages sent", func() bool { return len(p.sent()) == 2 })
	if got, want := p.sent(), []string{"ana 1", "ana 2"}; !slices.Equal(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
}

// Messages inserted claimed (a transaction's messages to a contact with
// nothing older undelivered) are sent as handed over, in order, with no
// claim at all.
func TestMessagesInsertedClaimedGoOutUnclaimed(t *testing.T) {
	s := openStore(t)
	p := &phone{}
	w, wake := smsWorker(s, p)
	handOver(s, w, wake)
	start(t, w)
	waitFor(t, "the search at start", func() bool { return s.searches.Load() == 1 })
	write(t, s, "+15550100001", "ana 1", "ana 2")
	write(t, s, "+15550100002", "ben 1")
	waitFor(t, "three messages sent", func() bool { return len(p.sent()) == 3 })
	anaInOrder(t, p.sent(), "ana 1", "ana 2")
	if n := s.byRow.Load(); n != 0 {
		t.Errorf("%d claims by row, want none: every message came claimed", n)
	}
	if n := s.searches.Load(); n != 1 {
		t.Errorf("the outbox was searched %d times, want only at start", n)
	}
	waitFor(t, "every message marked sent", func() bool {
		pending, _, err := s.OutboxCounts(context.Background())
		return err == nil && pending == 0
	})
}

// When a message handed over claimed fails, the rest of its contact's are
// not sent ahead of it: they are released at once, and follow it, in
// order, when its retry is due. Other contacts' messages go out.
func TestMessagesBehindAFailedClaimedOneWait(t *testing.T) {
	s := openStore(t)
	p := &phone{fail: "ana 1"}
	w, wake := smsWorker(s, p)
	w.BaseDelay, w.MaxDelay = time.Millisecond, time.Millisecond
	handOver(s, w, wake)
	stop := start(t, w)
	waitFor(t, "the search at start", func() bool { return s.searches.Load() == 1 })
	write(t, s, "+15550100001", "ana 1", "ana 2", "ana 3")
	write(t, s, "+15550100002", "ben 1")
	waitFor(t, "ben's message sent", func() bool { return slices.Contains(p.sent(), "ben 1") })
	stop()
	if got := p.sent(); !slices.Equal(got, []string{"ben 1"}) {
		t.Errorf("sent %q while ana 1 fails, want only ben 1", got)
	}
	// Released, not leased: a search finds ana 1's retry at once, and
	// nothing of ana's is in flight.
	if sending := countStatus(t, s, "sending"); sending != 0 {
		t.Errorf("%d messages still claimed after the worker stopped, want 0: ana 2 and 3 released", sending)
	}

	p.fail = ""
	start(t, &delivery.Worker{Outbox: s, Senders: map[engine.Channel]engine.Sender{engine.SMS: p}, Poll: 10 * time.Millisecond,
		Settle: time.Millisecond})
	waitFor(t, "four messages sent", func() bool { return len(p.sent()) == 4 })
	if got, want := p.sent(), []string{"ben 1", "ana 1", "ana 2", "ana 3"}; !slices.Equal(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
}

// stuck is a provider that never answers: a send waits until it is
// cancelled.
type stuck struct{ entered chan string }

func (p *stuck) Send(ctx context.Context, m *engine.Outbound) (string, error) {
	p.entered <- m.Text
	<-ctx.Done()
	return "", ctx.Err()
}

// countStatus returns how many outbox rows have the status given.
func countStatus(t testing.TB, s *counted, status string) int {
	t.Helper()
	var n int
	if err := s.DB().Get(&n, `SELECT COUNT(*) FROM outbox WHERE status = ?`, status); err != nil {
		t.Fatal(err)
	}
	return n
}

// A worker that stops releases what it holds claimed: the send it
// interrupts, the messages behind it, and messages handed over after it
// stopped (Release). The next worker sends them at once, in order, not
// when their one-minute lease ends.
func TestStoppedWorkerReleasesWhatItHolds(t *testing.T) {
	s := openStore(t)
	p := &stuck{entered: make(chan string, 8)}
	w, wake := smsWorker(s, p)
	handOver(s, w, wake)
	stop := start(t, w)
	write(t, s, "+15550100001", "ana 1", "ana 2")
	if got := <-p.entered; got != "ana 1" {
		t.Fatalf("first send %q, want ana 1", got)
	}
	if n := countStatus(t, s, "sending"); n != 2 {
		t.Fatalf("%d messages claimed while ana 1 is in flight, want 2", n)
	}
	stop()
	if n := countStatus(t, s, "sending"); n != 0 {
		t.Errorf("%d messages still claimed after the worker stopped, want 0", n)
	}

	// A commit after the worker stopped hands it messages claimed at birth.
	write(t, s, "+15550100002", "ben 1")
	if n := countStatus(t, s, "sending"); n != 1 {
		t.Fatalf("%d messages claimed after the commit, want ben 1", n)
	}
	w.Release()
	if n := countStatus(t, s, "sending"); n != 0 {
		t.Errorf("%d messages still claimed after Release, want 0", n)
	}

	ph := &phone{}
	start(t, &delivery.Worker{Outbox: s, Senders: map[engine.Channel]engine.Sender{engine.SMS: ph}, Poll: 10 * time.Millisecond,
		Settle: time.Millisecond})
	waitFor(t, "three messages sent", func() bool { return len(ph.sent()) == 3 })
	anaInOrder(t, ph.sent(), "ana 1", "ana 2")
}

// slowProvider answers each send after a pause, as a real provider's API
// does, and records what was sent to whom and how many sends were in
// flight at once: overall, and to one address.
type slowProvider struct {
	pause time.Duration

	mu          sync.Mutex
	inFlight    int
	most        int
	toOne       map[string]int
	overlapped  bool
	got         map[string][]string
	sentInTotal int
}

func newSlowProvider(pause time.Duration) *slowProvider {
	return &slowProvider{pause: pause, toOne: map[string]int{}, got: map[string][]string{}}
}

func (p *slowProvider) Send(ctx context.Context, m *engine.Outbound) (string, error) {
	p.mu.Lock()
	p.inFlight++
	p.most = max(p.most, p.inFlight)
	p.toOne[m.Address]++
	p.overlapped = p.overlapped || p.toOne[m.Address] > 1
	p.mu.Unlock()
	select {
	case <-time.After(p.pause):
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight--
	p.toOne[m.Address]--
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	p.got[m.Address] = append(p.got[m.Address], m.Text)
	p.sentInTotal++
	return fmt.Sprintf("SM%d", p.sentInTotal), nil
}

func (p *slowProvider) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sentInTotal
}

// A slow provider does not make every contact wait for the others: up to
// Parallel contacts are sent to at once, each contact's messages one at a
// time and in order.
func TestContactsAreSentToAtOnceEachInOrder(t *testing.T) {
	s := openStore(t)
	p := newSlowProvider(20 * time.Millisecond)
	w, wake := smsWorker(s, p)
	w.Parallel = 4
	handOver(s, w, wake)
	// Written before the worker runs, the commits' messages wait together
	// and go out as one batch.
	var want = map[string][]string{}
	for i := range 6 {
		addr := fmt.Sprintf("+1555010%04d", i)
		want[addr] = []string{addr + " 1", addr + " 2", addr + " 3"}
		write(t, s, addr, want[addr]...)
	}
	start(t, w)
	waitFor(t, "18 messages sent", func() bool { return p.total() == 18 })
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.most < 2 || p.most > 4 {
		t.Errorf("at most %d sends in flight at once, want 2 to 4 (Parallel)", p.most)
	}
	if p.overlapped {
		t.Error("two messages to one contact were in flight at once")
	}
	for addr, texts := range want {
		if !slices.Equal(p.got[addr], texts) {
			t.Errorf("%s received %q, want %q in order", addr, p.got[addr], texts)
		}
	}
}

// BenchmarkSlowProvider delivers one message to each of 16 contacts
// through a provider that takes 2 ms to answer, one contact at a time and
// 8 at once, on SQLite. Compare the two rates, taken in the same run.
func BenchmarkSlowProvider(b *testing.B) {
	for _, parallel := range []int{1, 8} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
			s := openStore(b)
			p := newSlowProvider(2 * time.Millisecond)
			w, wake := smsWorker(s, p)
			w.Parallel = parallel
			handOver(s, w, wake)
			start(b, w)
			const contacts = 16
			b.ResetTimer()
			for i := range b.N {
				for c := range contacts {
					write(b, s, fmt.Sprintf("+1555%03d%04d", i%1000, c), "hello")
				}
				waitFor(b, "the round sent", func() bool { return p.total() == (i+1)*contacts })
			}
			b.ReportMetric(float64(b.N*contacts)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// sendFunc is an engine.Sender made of a function.
type sendFunc func(ctx context.Context, m *engine.Outbound) (string, error)

func (f sendFunc) Send(ctx context.Context, m *engine.Outbound) (string, error) { return f(ctx, m) }

// A batch that runs long, behind a slow provider, records its deliveries
// as each contact's are done instead of all at its end: a crash would send
// again only the last few, not the whole batch.
func TestLongBatchRecordsAsItGoes(t *testing.T) {
	s := openStore(t)
	var mu sync.Mutex
	var recorded []int // messages recorded as sent when each send began
	p := sendFunc(func(ctx context.Context, m *engine.Outbound) (string, error) {
		var n int
		if err := s.DB().Get(&n, `SELECT COUNT(*) FROM outbox WHERE status = 'sent'`); err != nil {
			return "", err
		}
		mu.Lock()
		recorded = append(recorded, n)
		mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		return "SM" + m.Address, nil
	})
	w, wake := smsWorker(s, p)
	w.Parallel, w.RecordAfter = 1, 50*time.Millisecond
	handOver(s, w, wake)
	// Written before the worker runs: one batch of six contacts.
	for i := range 6 {
		write(t, s, fmt.Sprintf("+1555010%04d", i), "hello")
	}
	start(t, w)
	waitFor(t, "six messages recorded as sent", func() bool { return countStatus(t, s, "sent") == 6 })
	mu.Lock()
	defer mu.Unlock()
	if len(recorded) != 6 || recorded[0] != 0 || recorded[5] < 3 {
		t.Errorf("messages recorded as sent when each send began: %v; want the first ones recorded before the batch ended", recorded)
	}
}
