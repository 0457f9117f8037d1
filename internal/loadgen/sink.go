package loadgen

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safeflow/safeflow/engine"
)

// A Sink receives the service's outbound SMS and answers as fast as it can:
// as a stand-in for Twilio's Messages API on loopback (ServeHTTP), or as an
// engine.Sender that discards in-process (Send). Either way it keeps, per
// recipient, only how many messages arrived and the last one, so that
// Verify can tell whether each conversation took its planned path.
type Sink struct {
	accountSID, authToken string
	// latency is how long the Messages API takes to answer (SetLatency).
	latency time.Duration
	now     func() time.Time

	mu     sync.Mutex
	byTo   map[string]*received
	total  int
	nextID atomic.Int64

	srv *http.Server
	ln  net.Listener
}

type received struct {
	count int
	last  string
	// arrived holds when each message came, in order.
	arrived []time.Time
}

var _ engine.Sender = (*Sink)(nil)

// NewSink returns a sink for the Twilio account accountSID, whose API
// requests must carry authToken.
func NewSink(accountSID, authToken string) *Sink {
	return &Sink{accountSID: accountSID, authToken: authToken, byTo: map[string]*received{}, now: time.Now}
}

// SetLatency makes the Messages API answer each message d after it came,
// as a real provider's API takes 100 ms or more. Call it before Listen.
func (s *Sink) SetLatency(d time.Duration) { s.latency = d }

// Listen serves the Messages API on a free port of 127.0.0.1 and returns
// its base URL, for the service's Twilio API URL.
func (s *Sink) Listen() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("sink: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed on Close
	return "http://" + ln.Addr().String(), nil
}

// Close stops serving the Messages API.
func (s *Sink) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// Send records m as delivered without sending it anywhere.
func (s *Sink) Send(_ context.Context, m *engine.Outbound) (string, error) {
	s.record(m.Address, m.Text)
	return s.sid(), nil
}

// ServeHTTP answers POST /2010-04-01/Accounts/{sid}/Messages.json the way
// Twilio does, with 201 and the new message's sid; wrong credentials get
// 401, anything else 404 or 400.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.accountSID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.authToken)) != 1 {
		http.Error(w, `{"code":20003,"message":"Authenticate","status":401}`, http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/"+s.accountSID+"/Messages.json" {
		http.Error(w, `{"code":20404,"message":"not found","status":404}`, http.StatusNotFound)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("To") == "" || r.PostForm.Get("Body") == "" {
		http.Error(w, `{"code":21602,"message":"To and Body are required","status":400}`, http.StatusBadRequest)
		return
	}
	s.record(r.PostForm.Get("To"), r.PostForm.Get("Body"))
	if s.latency > 0 {
		t := time.NewTimer(s.latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]string{"sid": s.sid(), "status": "queued"})
}

func (s *Sink) record(to, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.byTo[to]
	if r == nil {
		r = &received{}
		s.byTo[to] = r
	}
	r.count++
	r.last = body
	r.arrived = append(r.arrived, s.now())
	s.total++
}

// DeliveryRate returns how many messages a second reached the sink,
// from the first to the last.
func (s *Sink) DeliveryRate() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first, last time.Time
	for _, r := range s.byTo {
		for _, t := range r.arrived {
			if first.IsZero() || t.Before(first) {
				first = t
			}
			if t.After(last) {
				last = t
			}
		}
	}
	if !last.After(first) {
		return 0
	}
	return float64(s.total-1) / last.Sub(first).Seconds()
}

// ReplyLatency returns, for each measured webhook of res that expected a
// reply, how long its first reply took to come: from when the webhook was
// sent to when the reply reached the sink. It is what a patient waits.
// Call it after Verify, which waits for the replies.
func (s *Sink) ReplyLatency(res *Result) Latencies {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for addr, e := range res.expect {
		got := s.byTo[addr]
		for _, a := range e.asked {
			if got != nil && a.first < len(got.arrived) {
				out = append(out, got.arrived[a.first].Sub(a.sent))
			}
		}
	}
	return NewLatencies(out)
}

// sid returns a Twilio-shaped message sid, unique in the process.
func (s *Sink) sid() string { return fmt.Sprintf("SM%032x", s.nextID.Add(1)) }

// Total returns how many messages the sink received.
func (s *Sink) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Verification compares what contacts received with what their scripts
// planned.
type Verification struct {
	// Contacts is how many contacts sent at least one message.
	Contacts int
	// Complete counts contacts that got every planned reply, and, when
	// they finished their script, the planned last one.
	Complete int
	// Missing and Extra count replies missing or more than planned.
	Missing, Extra int
	// WrongEnd counts finished scripts whose last reply was not the
	// planned one: the flow took another path.
	WrongEnd int
}

// OK reports whether every contact got exactly what its script planned.
func (v Verification) OK() bool { return v.Complete == v.Contacts }

// String summarises v for a report.
func (v Verification) String() string {
	if v.OK() {
		return fmt.Sprintf("all %d contacts got the planned replies", v.Contacts)
	}
	return fmt.Sprintf("%d of %d contacts got the planned replies (%d replies missing, %d extra, %d ended elsewhere)",
		v.Complete, v.Contacts, v.Missing, v.Extra, v.WrongEnd)
}

// Verify waits for the replies res planned to arrive (the outbox is
// drained after the webhooks are answered) for as long as they keep coming,
// until none has come for stall, then compares, per contact, what arrived
// with what was planned. It ends early when ctx does.
func (s *Sink) Verify(ctx context.Context, res *Result, stall time.Duration) Verification {
	want := res.ExpectedReplies()
	last, since := s.Total(), time.Now()
	for n := last; n < want && time.Since(since) < stall && ctx.Err() == nil; n = s.Total() {
		if n > last {
			last, since = n, time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Replies still on their way when the count is reached would be
	// extras; a short settle catches them.
	select {
	case <-time.After(100 * time.Millisecond):
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := Verification{Contacts: len(res.expect)}
	for addr, e := range res.expect {
		got := s.byTo[addr]
		if got == nil {
			got = &received{}
		}
		ok := true
		switch {
		case got.count < e.replies:
			v.Missing += e.replies - got.count
			ok = false
		case got.count > e.replies:
			v.Extra += got.count - e.replies
			ok = false
		}
		if e.final != "" && !strings.Contains(got.last, e.final) {
			v.WrongEnd++
			ok = false
		}
		if ok {
			v.Complete++
		}
	}
	return v
}
