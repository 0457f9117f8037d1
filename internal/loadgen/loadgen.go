// Package loadgen measures safeflow end to end: simulated contacts send
// signed Twilio webhooks over loopback to a real in-process service and walk
// the example flows to their end, while the latency of every webhook is
// recorded. Next to it, it measures two ceilings on the same machine: a
// minimal HTTP handler that only parses the form (the most any webhook
// handler could do) and a naive per-message database transaction (the most
// the database gives a simple design). `safeflow bench` drives it.
//
// Traffic goes to 127.0.0.1 only: Run refuses any other target.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
)

// Limits that keep a run bounded whatever it is asked.
const (
	// MaxDuration is the longest run accepted.
	MaxDuration = time.Hour
	// MaxContacts is the most concurrent contacts accepted.
	MaxContacts = 4096
	// requestTimeout bounds one webhook; a slower answer counts as failed.
	requestTimeout = 30 * time.Second
)

// Target is where webhooks go and how they are signed.
type Target struct {
	// URL is the loopback address webhooks are posted to, such as
	// http://127.0.0.1:40123/webhooks/twilio.
	URL string
	// SignedURL is the public webhook URL the signature covers, as
	// configured in Twilio's console.
	SignedURL string
	// AuthToken signs the webhooks.
	AuthToken string
	// Number is the clinic's Twilio number, the To of every webhook.
	Number string
}

// StartFunc starts a clinic-initiated conversation with the contact at
// address, as the clinic's systems would, before its first webhook.
type StartFunc func(ctx context.Context, s Script, address string) error

// Config describes one run.
type Config struct {
	Target Target
	// Contacts is how many contacts talk at once; each walks one
	// conversation after another, each time as a new phone number.
	Contacts int
	// Duration bounds the run; the webhooks in flight when it ends are
	// still answered and counted.
	Duration time.Duration
	// MaxMessages, when positive, ends the run after that many webhooks.
	MaxMessages int
	// Warmup runs traffic before Duration without measuring it: a service
	// just started opens its database connections and prepares its
	// statements then. The warm-up's latencies are kept apart, in
	// Result.WarmupLatency, so a slow start is seen, not hidden.
	Warmup time.Duration
	// Rate, when positive, paces the run at that many webhooks a second in
	// total (an open loop); zero sends each webhook as soon as the last one
	// of the same contact is answered (a closed loop, the peak rate).
	Rate float64
	// Scripts are walked in turn; ExampleScripts when empty.
	Scripts []Script
	// Start starts clinic-initiated scripts. When nil they begin with their
	// first webhook, which suits targets that keep no state.
	Start StartFunc
	// Client sends the webhooks; nil means a client made for Contacts
	// connections to one host.
	Client *http.Client
}

// Result is what a run measured.
type Result struct {
	// Messages counts webhooks answered 200 after the warm-up.
	Messages int
	// WarmupMessages counts webhooks answered 200 during the warm-up.
	WarmupMessages int
	// Failed counts webhooks answered otherwise or not at all.
	Failed int
	// FirstError describes the first failure, or is nil.
	FirstError error
	// Conversations counts scripts walked to their last message.
	Conversations int
	// Starts counts clinic-initiated starts.
	Starts int
	// Elapsed is from the first webhook after the warm-up to the last answer.
	Elapsed time.Duration
	// Latency holds the time of every answered webhook: from when it was
	// sent, or in a paced run from when it was due, to its answer, so that
	// a service falling behind shows in the figures.
	Latency Latencies
	// WarmupLatency holds the times of the warm-up's webhooks.
	WarmupLatency Latencies

	// expect is what each contact should have received, for Sink.Verify.
	expect map[string]expectation
}

// expectation is what one contact should have received by the end.
type expectation struct {
	replies int
	final   string // empty unless the script ran to its end
	// asked marks the measured webhooks that expect a reply, for
	// Sink.ReplyLatency.
	asked []asked
}

// asked is a webhook waiting for its first reply: sent at sent, after
// which the contact's reply number first (counted from 0) answers it.
type asked struct {
	sent  time.Time
	first int
}

// Rate returns the answered webhooks per second.
func (r *Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Messages) / r.Elapsed.Seconds()
}

// ExpectedReplies returns how many messages the service should have sent
// to the run's contacts.
func (r *Result) ExpectedReplies() int {
	n := 0
	for _, e := range r.expect {
		n += e.replies
	}
	return n
}

// check refuses a configuration that would run unbounded or leave
// loopback.
func (c *Config) check() error {
	var errs []error
	if err := loopbackURL(c.Target.URL); err != nil {
		errs = append(errs, err)
	}
	if c.Target.AuthToken == "" {
		errs = append(errs, errors.New("no auth token to sign webhooks with"))
	}
	if c.Contacts < 1 || c.Contacts > MaxContacts {
		errs = append(errs, fmt.Errorf("contacts must be from 1 to %d", MaxContacts))
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		errs = append(errs, fmt.Errorf("duration must be more than 0 and at most %v", MaxDuration))
	}
	if c.MaxMessages < 0 {
		errs = append(errs, errors.New("max messages must not be negative"))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("rate must not be negative"))
	}
	return errors.Join(errs...)
}

// loopbackURL accepts only http URLs whose host is a loopback IP address:
// load must never leave the machine.
func loopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("target %q is not an http:// URL", raw)
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q is not on a loopback address such as 127.0.0.1", raw)
	}
	return nil
}

// NewClient returns an HTTP client that keeps one connection per contact
// open, goes straight to the target (no proxy from the environment) and
// gives up on an answer after 30 seconds.
func NewClient(contacts int) *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        contacts * 2,
			MaxIdleConnsPerHost: contacts * 2,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
}

// contactSeq numbers the simulated contacts of the whole process, from a
// random point so that runs against one database rarely meet a number used
// before.
var contactSeq atomic.Int64

func init() { contactSeq.Store(rand.Int64N(4_000_000)) }

// areaCodes are the US area codes used for simulated contacts: 201 to 999
// without the N11 service codes (211, 311... 911).
var areaCodes = func() []int {
	var codes []int
	for a := 201; a <= 999; a++ {
		if a%100 != 11 {
			codes = append(codes, a)
		}
	}
	return codes
}()

// nextAddress returns a new fictitious US number in E.164 form: +1, an area
// code, then 555 and four digits, one of 7.9 million.
func nextAddress() string {
	n := contactSeq.Add(1) % int64(len(areaCodes)*10_000)
	return fmt.Sprintf("+1%d555%04d", areaCodes[n/10_000], n%10_000)
}

// Run walks the scripts with cfg.Contacts concurrent contacts until
// cfg.Duration has passed, cfg.MaxMessages webhooks were sent or ctx ends,
// and returns what it measured. It fails only when cfg is unusable; failed
// webhooks are counted in the result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	if len(cfg.Scripts) == 0 {
		cfg.Scripts = ExampleScripts()
	}
	if cfg.Client == nil {
		cfg.Client = NewClient(cfg.Contacts)
	}
	// The deadline only stops new webhooks: one already sent is answered,
	// so the service's state and the expected replies stay in step.
	stop, cancel := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration)
	defer cancel()
	g := &generator{cfg: cfg, ctx: ctx, stop: stop}
	workers := make([]*worker, cfg.Contacts)
	var wg sync.WaitGroup
	g.began = time.Now()
	g.measured = g.began.Add(cfg.Warmup)
	for i := range workers {
		w := &worker{g: g, id: i, expect: map[string]expectation{}}
		workers[i] = w
		wg.Go(w.run)
	}
	wg.Wait()
	res := &Result{Elapsed: time.Since(g.measured), expect: map[string]expectation{}}
	var samples, warm []time.Duration
	for _, w := range workers {
		res.Messages += w.messages
		res.WarmupMessages += w.warmMessages
		warm = append(warm, w.warmSamples...)
		res.Failed += w.failed
		res.Conversations += w.conversations
		res.Starts += w.starts
		if res.FirstError == nil {
			res.FirstError = w.firstErr
		}
		samples = append(samples, w.samples...)
		for addr, e := range w.expect {
			res.expect[addr] = e
		}
	}
	res.Latency = NewLatencies(samples)
	res.WarmupLatency = NewLatencies(warm)
	return res, nil
}

// generator is the state the workers of one run share.
type generator struct {
	cfg   Config
	ctx   context.Context // the caller's: ends in-flight webhooks too
	stop  context.Context // ends the run
	began time.Time
	// measured is when the warm-up ends: webhooks due from then on count.
	measured time.Time
	sent     atomic.Int64 // webhooks reserved so far
}

// reserve claims the right to send one more webhook.
func (g *generator) reserve() bool {
	if g.stop.Err() != nil {
		return false
	}
	n := g.sent.Add(1)
	return g.cfg.MaxMessages == 0 || n <= int64(g.cfg.MaxMessages)
}

// worker is one simulated contact at a time.
type worker struct {
	g    *generator
	id   int
	next int // this worker's count of paced webhooks

	messages, failed, conversations, starts int
	firstErr                                error
	samples                                 []time.Duration
	warmMessages                            int
	warmSamples                             []time.Duration
	expect                                  map[string]expectation
}

func (w *worker) run() {
	scripts := w.g.cfg.Scripts
	for n := w.id; ; n += w.g.cfg.Contacts {
		if !w.conversation(scripts[n%len(scripts)]) {
			return
		}
	}
}

// conversation walks one script as a new contact and reports whether the
// run goes on.
func (w *worker) conversation(s Script) bool {
	g := w.g
	if g.stop.Err() != nil {
		return false
	}
	addr := nextAddress()
	exp := expectation{}
	defer func() {
		if exp.replies > 0 || exp.final != "" {
			w.expect[addr] = exp
		}
	}()
	for i, turn := range s.Turns {
		if !g.reserve() {
			return false
		}
		// The clinic starts the flow only once the contact's first
		// webhook is sure to follow, so that a bounded run ends with
		// no conversation started and left waiting.
		if i == 0 && s.Start != nil && g.cfg.Start != nil {
			ctx, cancel := context.WithTimeout(g.ctx, requestTimeout)
			err := g.cfg.Start(ctx, s, addr)
			cancel()
			if err != nil {
				if g.ctx.Err() != nil {
					return false
				}
				w.fail(fmt.Errorf("start %s: %w", s.Name, err))
				return true
			}
			w.starts++
			exp.replies += s.Start.Replies
		}
		due, ok := w.pace()
		if !ok {
			return false
		}
		sent := time.Now()
		err := w.post(addr, turn.Text)
		took := time.Since(due)
		if err != nil {
			if g.ctx.Err() != nil {
				return false
			}
			// The contact's state is unknown now: start over as a new one.
			w.fail(err)
			return true
		}
		if due.Before(g.measured) {
			w.warmMessages++
			w.warmSamples = append(w.warmSamples, took)
		} else {
			w.messages++
			w.samples = append(w.samples, took)
			if turn.Replies > 0 {
				exp.asked = append(exp.asked, asked{sent: sent, first: exp.replies})
			}
		}
		exp.replies += turn.Replies
	}
	w.conversations++
	exp.final = s.Final
	return true
}

// pace waits until the worker's next webhook is due and returns when that
// was. Unpaced, it is now. Paced, worker i of n sends its k-th webhook at
// (k·n + i) / rate seconds after the start, spreading the workers evenly;
// a worker behind schedule sends at once, and its latency counts from the
// due time.
func (w *worker) pace() (time.Time, bool) {
	g := w.g
	if g.cfg.Rate <= 0 {
		return time.Now(), true
	}
	slot := float64(w.next*g.cfg.Contacts+w.id) / g.cfg.Rate
	w.next++
	due := g.began.Add(time.Duration(slot * float64(time.Second)))
	wait := time.Until(due)
	if wait <= 0 {
		return due, true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return due, true
	case <-g.stop.Done():
		return due, false
	}
}

// post sends one signed webhook from addr and waits for its 200.
func (w *worker) post(addr, text string) error {
	g := w.g
	t := g.cfg.Target
	req := twiliotest.SignedInbound(t.AuthToken, t.SignedURL, url.Values{
		"From": {addr}, "To": {t.Number}, "Body": {text},
	})
	ctx, cancel := context.WithTimeout(g.ctx, requestTimeout)
	defer cancel()
	resp, err := twiliotest.Deliver(ctx, g.cfg.Client, t.URL, req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	// Reading the body to its end lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webhook: HTTP %d", resp.StatusCode)
	}
	return nil
}

func (w *worker) fail(err error) {
	w.failed++
	if w.firstErr == nil {
		w.firstErr = err
	}
}
