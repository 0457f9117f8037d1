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
}

var _ engine.Sender = (*Sink)(nil)

// NewSink returns a sink for the Twilio account accountSID, whose API
// requests must carry authToken.
func NewSink(accountSID, authToken string) *Sink {
	return &Sink{accountSID: accountSID, authToken: authToken, byTo: map[string]*received{}}
}

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
	s.total++
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

// Verify waits up to wait for the replies res planned to arrive (the
// outbox is drained after the webhooks are answered), then compares, per
// contact, what arrived with what was planned. It ends early when ctx does.
func (s *Sink) Verify(ctx context.Context, res *Result, wait time.Duration) Verification {
	want := res.ExpectedReplies()
	deadline := time.Now().Add(wait)
	for s.Total() < want && time.Now().Before(deadline) && ctx.Err() == nil {
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
