package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	_ "time/tzdata" // the clinic's zone must load on machines without zoneinfo

	"github.com/safeflow/safeflow/channels/messenger"
	"github.com/safeflow/safeflow/channels/messenger/messengertest"
	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/pgtest"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/server"
	"github.com/safeflow/safeflow/securechat"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChild) != "" {
		os.Exit(runCrashChild())
	}
	flag.Parse()
	// The tests mostly wait: for the service, its database and the
	// providers' test servers. Unless told otherwise, run more of them at
	// once than there are CPUs.
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(4*runtime.GOMAXPROCS(0)))
	}
	code := pgtest.Main(m)
	if code == 0 {
		if found := finalScan(); len(found) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: sensitive values on insecure channels across all e2e conversations:\n  %s\n", strings.Join(found, "\n  "))
			code = 1
		}
	}
	os.Exit(code)
}

// The service's public address and the providers' credentials. They are
// test values: the providers are the local test servers.
const (
	publicURL    = "https://clinic.test"
	accountSID   = "AC00e2e0000000000000000000000e2e"
	authToken    = "e2e-twilio-auth-token"
	twilioFrom   = "+12015550199"
	appSecret    = "e2e-messenger-app-secret"
	verifyToken  = "e2e-verify-token"
	pageToken    = "e2e-page-token"
	clinicZone   = "America/New_York"
	twilioPath   = "/webhooks/twilio"
	statusPath   = "/webhooks/twilio/status"
	examplesDir  = "../../examples"
	waitDeadline = 10 * time.Second
)

// storeKind names a database the service runs on.
type storeKind string

const (
	sqliteStore   storeKind = "sqlite"
	postgresStore storeKind = "postgres"
)

var storeKinds = []storeKind{sqliteStore, postgresStore}

// testClock is the service's clock: it starts at a test's `now` and runs
// at the pace of real time, so that outbox retries and leases behave as in
// production, while Advance moves it on for timers.
type testClock struct {
	mu      sync.Mutex
	base    time.Time
	started time.Time
	offset  time.Duration
}

func newTestClock(base time.Time) *testClock {
	return &testClock{base: base, started: time.Now()}
}

// Now returns the clock's time.
func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Since(c.started) + c.offset)
}

// AdvanceTo moves the clock on to t, if t is later.
func (c *testClock) AdvanceTo(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := t.Sub(c.base.Add(time.Since(c.started) + c.offset)); d > 0 {
		c.offset += d
	}
}

// harness is one running service, with its two provider test servers, as
// one test uses it: failures go to t.
type harness struct {
	t testing.TB
	*service
}

// service is the running service several tests may share.
type service struct {
	kind      storeKind
	ctx       context.Context
	srv       *server.Server
	base      string // http://127.0.0.1:port
	client    *http.Client
	public    string // the public URL webhooks are signed over and links start with
	twilio    *twiliotest.Server
	messenger *messengertest.Server
	ring      *seal.Ring
	clock     *testClock
	logs      *syncBuffer
	ids       atomic.Int64
}

// syncBuffer collects the service's log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serviceOption changes the configuration startService runs the service
// with; addr is the address the service will listen on.
type serviceOption func(cfg *server.Config, addr string, opts *[]server.Option)

// servedLocally makes the service's public URL its own listener, over
// plain HTTP in dev mode, so that a browser on this machine can follow the
// secure links it issues. The providers stay the test servers.
func servedLocally() serviceOption {
	return func(cfg *server.Config, addr string, _ *[]server.Option) {
		cfg.Dev, cfg.PublicURL = true, "http://"+addr
	}
}

// finishedShownFor makes the secure page keep a finished chat on screen for
// d instead of a minute.
func finishedShownFor(d time.Duration) serviceOption {
	return func(_ *server.Config, _ string, opts *[]server.Option) {
		*opts = append(*opts, server.WithSecureChat(func(c *securechat.Config) { c.FinishedShown = d }))
	}
}

// startService starts the real service on kind's database with its clock at
// now, listening on 127.0.0.1, and stops it when t ends. The service's log
// is shown only when t fails.
func startService(t testing.TB, kind storeKind, now time.Time, opts ...serviceOption) *harness {
	t.Helper()
	dir := t.TempDir()
	var dsn string
	switch kind {
	case sqliteStore:
		dsn = filepath.Join(dir, "safeflow.db")
	case postgresStore:
		dsn = pgtest.Shared(t).CreateDB(t, "")
	}
	ring, err := seal.Generate()
	if err != nil {
		t.Fatalf("generate keys: %v", err)
	}
	keys := filepath.Join(dir, "safeflow.keys")
	if err := ring.Save(keys); err != nil {
		t.Fatalf("save keys: %v", err)
	}
	h := &harness{t: t, service: &service{kind: kind, ring: ring, clock: newTestClock(now), logs: &syncBuffer{},
		twilio: twiliotest.NewServer(t, accountSID, authToken), messenger: messengertest.NewServer(t, pageToken),
		client: &http.Client{Timeout: 15 * time.Second}}}
	cfg := server.Config{
		Addr: "127.0.0.1:0", FlowsDir: examplesDir, DB: dsn, PublicURL: publicURL, KeysFile: keys, Dev: false,
		TwilioAccountSID: accountSID, TwilioAuthToken: authToken, TwilioFrom: twilioFrom, TwilioAPIURL: h.twilio.URL,
		MessengerAppSecret: appSecret, MessengerVerifyToken: verifyToken, MessengerPageToken: pageToken,
		MessengerAPIURL: h.messenger.URL, Region: "US", TimeZone: clinicZone,
	}
	// Listening first tells the options the address, for a public URL
	// that points at the service itself.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	serverOpts := []server.Option{server.WithClock(h.clock.Now)}
	for _, o := range opts {
		o(&cfg, ln.Addr().String(), &serverOpts)
	}
	h.public = cfg.PublicURL
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	h.ctx = ctx
	srv, err := server.New(ctx, cfg, log, serverOpts...)
	if err != nil {
		cancel()
		ln.Close()
		t.Fatalf("server.New: %v", err)
	}
	h.srv = srv
	h.base = "http://" + ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		ledgerMessages(t.Name(), h)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Server.Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Server.Run did not return within 20s of its context ending")
		}
		// Many conversations, some at once, appended to one audit chain:
		// it must still verify.
		if problem, err := srv.Store.VerifyAudit(context.Background()); err != nil || problem != nil {
			t.Errorf("the audit log does not verify: problem %v, error %v", problem, err)
		}
		srv.Close()
		// E2E_LOGS=1 shows the log of services whose tests passed too.
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("service log:\n%s", h.logs.String())
		}
	})
	h.waitFor("the service to be ready", func() (bool, string) {
		resp, err := h.client.Get(h.base + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return h
}

// For returns the service as test t uses it.
func (h *harness) For(t testing.TB) *harness { return &harness{t: t, service: h.service} }

// waitFor polls cond until it holds, failing t after waitDeadline with the
// last state cond described. Polling only waits: what is asserted is cond.
func (h *harness) waitFor(what string, cond func() (ok bool, state string)) {
	h.t.Helper()
	deadline := time.Now().Add(waitDeadline)
	delay := time.Millisecond
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %v waiting for %s; last state: %s", waitDeadline, what, state)
		}
		time.Sleep(delay)
		delay = min(delay*2, 20*time.Millisecond)
	}
}

// newID returns a provider-style message id unique in the harness.
func (h *harness) newID(prefix string) string {
	return fmt.Sprintf("%s%032x", prefix, h.ids.Add(1))
}

// post sends a request to the service and returns the status and body.
func (h *harness) post(path, contentType string, header http.Header, body []byte) (int, string) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.base+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatalf("build request: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	return h.do(req)
}

func (h *harness) do(req *http.Request) (int, string) {
	h.t.Helper()
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sms is one inbound SMS: From is the patient, MessageSid its id.
type sms struct {
	From, Body, MessageSid string
	// Extra adds or overrides webhook fields.
	Extra url.Values
}

// twilioForm returns the webhook fields of m.
func twilioForm(m sms) url.Values {
	p := url.Values{"From": {m.From}, "Body": {m.Body}, "MessageSid": {m.MessageSid}, "To": {twilioFrom}}
	for k, v := range m.Extra {
		p[k] = v
	}
	return p
}

// sendSMS delivers m to the service's listener as Twilio does: the
// signature covers the service's public URL and path, not the address the
// request really goes to. It returns the status and body.
func (h *harness) sendSMS(m sms) (int, string) {
	h.t.Helper()
	req := twiliotest.SignedInbound(authToken, h.public+twilioPath, twilioForm(m))
	resp, err := twiliotest.Deliver(h.ctx, h.client, h.base+twilioPath, req)
	if err != nil {
		h.t.Fatalf("deliver Twilio webhook: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sendStatus delivers a signed Twilio status callback.
func (h *harness) sendStatus(params url.Values) (int, string) {
	h.t.Helper()
	req := twiliotest.SignedStatus(authToken, h.public+statusPath, params)
	resp, err := twiliotest.Deliver(h.ctx, h.client, h.base+statusPath, req)
	if err != nil {
		h.t.Fatalf("deliver Twilio status callback: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sendMessenger posts a webhook body signed as Meta signs it to the
// service's listener.
func (h *harness) sendMessenger(body []byte) (int, string) {
	h.t.Helper()
	signed := messengertest.SignedEvent(appSecret, body)
	return h.post(messenger.Path, "application/json", signed.Header, body)
}

// contact returns the stored contact of an address, or nil.
func (h *harness) contact(ch engine.Channel, address string) *engine.Contact {
	h.t.Helper()
	var c *engine.Contact
	err := h.srv.Store.Tx(h.ctx, func(tx engine.Tx) error {
		var err error
		c, err = tx.ContactByAddress(h.ctx, ch, address)
		return err
	})
	if errors.Is(err, engine.ErrNotFound) {
		return nil
	}
	if err != nil {
		h.t.Fatalf("load contact: %v", err)
	}
	return c
}

// outRow is one outbox row, opened.
type outRow struct {
	Seq        int64
	ID         string
	Channel    engine.Channel
	Text       string
	Choices    []engine.OutChoice
	Link       bool
	Status     string
	ProviderID string
	Sensitive  bool
}

// outbox returns the contact's outbox rows after seq, oldest first.
func (h *harness) outbox(contactID string, after int64) []outRow {
	h.t.Helper()
	db := h.srv.Store.DB()
	var rows []struct {
		Seq        int64  `db:"seq"`
		ID         string `db:"id"`
		Channel    string `db:"channel"`
		Body       []byte `db:"body_sealed"`
		Link       bool   `db:"link"`
		Status     string `db:"status"`
		ProviderID string `db:"provider_id"`
	}
	err := db.SelectContext(h.ctx, &rows, db.Rebind(`SELECT seq, id, channel, body_sealed, link, status, provider_id
		FROM outbox WHERE contact_id = ? AND seq > ? ORDER BY seq`), contactID, after)
	if err != nil {
		h.t.Fatalf("read outbox: %v", err)
	}
	out := make([]outRow, len(rows))
	for i, r := range rows {
		raw, err := h.ring.Open(r.Body, seal.AD{Table: "outbox", Column: "body", Row: r.ID})
		if err != nil {
			h.t.Fatalf("open outbox row %d: %v", r.Seq, err)
		}
		var p struct {
			Text      string             `json:"text"`
			Choices   []engine.OutChoice `json:"choices"`
			Sensitive bool               `json:"sensitive"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			h.t.Fatalf("outbox row %d: %v", r.Seq, err)
		}
		out[i] = outRow{Seq: r.Seq, ID: r.ID, Channel: engine.Channel(r.Channel), Text: p.Text, Choices: p.Choices,
			Link: r.Link, Status: r.Status, ProviderID: r.ProviderID, Sensitive: p.Sensitive}
	}
	return out
}

// tables lists the service's tables.
func (h *harness) tables() []string {
	h.t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`
	if h.kind == postgresStore {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`
	}
	var names []string
	if err := h.srv.Store.DB().SelectContext(h.ctx, &names, q); err != nil {
		h.t.Fatalf("list tables: %v", err)
	}
	return names
}

// rowCounts counts the rows of every table. Audit records move from
// audit_pending to audit_log in the background, so the two are counted
// together, in one statement.
func (h *harness) rowCounts() map[string]int {
	h.t.Helper()
	counts := map[string]int{}
	for _, name := range h.tables() {
		query := `SELECT COUNT(*) FROM ` + name
		switch name {
		case "audit_pending":
			continue
		case "audit_log":
			name = "audit_log + audit_pending"
			query = `SELECT (SELECT COUNT(*) FROM audit_log) + (SELECT COUNT(*) FROM audit_pending)`
		}
		var n int
		if err := h.srv.Store.DB().GetContext(h.ctx, &n, query); err != nil {
			h.t.Fatalf("count %s: %v", name, err)
		}
		counts[name] = n
	}
	return counts
}

// received is one message as a provider received it.
type received struct {
	Channel engine.Channel
	To      string
	Text    string
	// Buttons are a Messenger message's quick-reply titles, Payloads their
	// payloads.
	Buttons, Payloads []string
}

// deliveredTo returns what the providers received for an address, oldest
// first.
func (h *harness) deliveredTo(ch engine.Channel, address string) []received {
	var out []received
	switch ch {
	case engine.SMS:
		for _, m := range h.twilio.Messages() {
			if m.To == address {
				out = append(out, received{Channel: ch, To: m.To, Text: m.Body})
			}
		}
	case engine.Messenger:
		for _, m := range h.messenger.Messages() {
			if m.Recipient == address {
				r := received{Channel: ch, To: m.Recipient, Text: m.Text}
				for _, q := range m.QuickReplies {
					r.Buttons, r.Payloads = append(r.Buttons, q.Title), append(r.Payloads, q.Payload)
				}
				out = append(out, r)
			}
		}
	}
	return out
}

// allDelivered returns every message both providers received.
func (h *harness) allDelivered() []received {
	var out []received
	for _, m := range h.twilio.Messages() {
		out = append(out, received{Channel: engine.SMS, To: m.To, Text: m.Body})
	}
	for _, m := range h.messenger.Messages() {
		r := received{Channel: engine.Messenger, To: m.Recipient, Text: m.Text}
		for _, q := range m.QuickReplies {
			r.Buttons, r.Payloads = append(r.Buttons, q.Title), append(r.Payloads, q.Payload)
		}
		out = append(out, r)
	}
	return out
}

// describe writes received messages for a failure message.
func describe(msgs []received) string {
	if len(msgs) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "\n    %s to %s: %q", m.Channel, m.To, m.Text)
		if len(m.Buttons) > 0 {
			fmt.Fprintf(&b, " %q", m.Buttons)
		}
	}
	return b.String()
}
