package server_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/server"
)

func TestDevModeCreatesPrivateKeyFileAndSQLite(t *testing.T) {
	ln := listen(t)
	cfg := devConfig(t, ln, examples)
	r := start(t, ln, cfg)
	info, err := os.Stat(cfg.KeysFile)
	if err != nil {
		t.Fatalf("dev mode made no key file: %v", err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode %o; want 600", mode)
	}
	if _, err := os.Stat(cfg.DB); err != nil {
		t.Errorf("dev mode made no SQLite file: %v", err)
	}
	if r.Store.Postgres() {
		t.Error("dev mode with the default database is on PostgreSQL")
	}
	if !strings.Contains(r.Log.String(), "dev mode: created a new local key file") {
		t.Error("creating a key file was not logged")
	}
	key, _ := os.ReadFile(cfg.KeysFile)

	// A second start keeps the key: the data sealed under it must open.
	r.Stop(t)
	r.Close()
	ln2 := listen(t)
	cfg.Addr = ln2.Addr().String()
	r2 := start(t, ln2, cfg)
	if again, _ := os.ReadFile(cfg.KeysFile); string(again) != string(key) {
		t.Error("a restart replaced the dev key file")
	}
	if strings.Contains(r2.Log.String(), "created a new local key file") {
		t.Error("a restart created another key file")
	}
}

// A second service on the same SQLite file refuses to start, and says
// why; it starts once the first has stopped.
func TestOneServicePerSQLiteFile(t *testing.T) {
	ln := listen(t)
	cfg := devConfig(t, ln, examples)
	r := start(t, ln, cfg)
	second := cfg
	second.Addr = "127.0.0.1:0"
	log, _ := newLog()
	if srv, err := server.New(context.Background(), second, log); err == nil {
		srv.Close()
		t.Fatal("a second service started on the same SQLite file")
	} else if msg := err.Error(); !strings.Contains(msg, "another safeflow service is running on this SQLite file") ||
		!strings.Contains(msg, cfg.DB) || !strings.Contains(msg, "stop it first") {
		t.Errorf("refused with %q; want the reason, the file and what to do", msg)
	}
	r.Stop(t)
	r.Close()
	srv, err := server.New(context.Background(), second, log)
	if err != nil {
		t.Fatalf("after the first stopped, the second could not start: %v", err)
	}
	srv.Close()
}

// SAFEFLOW_DELIVERY_PARALLEL sets how many contacts the outbox worker
// sends to at once; unset, 8.
func TestDeliveryParallelReachesTheWorker(t *testing.T) {
	for _, c := range []struct {
		setting string
		want    int
	}{{"", 8}, {"3", 3}} {
		ln := listen(t)
		cfg := devConfig(t, ln, examples)
		cfg.DeliveryParallel = c.setting
		r := start(t, ln, cfg)
		if r.Worker.Parallel != c.want {
			t.Errorf("SAFEFLOW_DELIVERY_PARALLEL=%q: the worker sends to %d at once, want %d", c.setting, r.Worker.Parallel, c.want)
		}
		r.Stop(t)
		r.Close()
	}
}

func TestBrokenFlowsRefuseToStart(t *testing.T) {
	tests := []struct {
		Label    string
		File     string
		Expected []string
	}{
		{
			Label:    "UnknownStep",
			File:     "flow: broken\ntrigger:\n  keywords: [BROKEN]\nsteps:\n  hello:\n    say: Hi\n    next: confrim\n  confirm:\n    say: Bye\n    end: true\n",
			Expected: []string{"broken.yaml:7:11: error", "`confrim`, which does not exist. Did you mean `confirm`?"},
		},
		{
			Label:    "BadExpression",
			File:     "flow: broken\ntrigger:\n  keywords: [BROKEN]\nsteps:\n  hello:\n    say: \"Hi {{ name + }}\"\n    end: true\n",
			Expected: []string{"broken.yaml:6:"},
		},
		{
			Label:    "NotYAML",
			File:     "flow: broken\nsteps: [\n",
			Expected: []string{"broken.yaml:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "broken.yaml"), tt.File)
			ln := listen(t)
			defer ln.Close()
			log, buf := newLog()
			_, err := server.New(context.Background(), devConfig(t, ln, dir), log)
			if err == nil {
				t.Fatal("the server started on a broken flow")
			}
			msg := err.Error()
			if !strings.Contains(msg, "cannot start: the flows in "+dir+" have errors (run `safeflow validate") {
				t.Errorf("error does not say the flows are broken and how to check them:\n%s", msg)
			}
			for _, want := range tt.Expected {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not say %q:\n%s", want, msg)
				}
			}
			if !regexp.MustCompile(`broken\.yaml:\d+:\d+: `).MatchString(msg) {
				t.Errorf("error has no file:line:col:\n%s", msg)
			}
			if strings.Contains(buf.String(), "last good flows keep serving") {
				t.Error("a failed start was logged as if older flows kept serving")
			}
		})
	}
}

func TestHealthAndReadiness(t *testing.T) {
	ln := listen(t)
	r := start(t, ln, devConfig(t, ln, examples))
	tests := []struct {
		Label        string
		Path         string
		CloseDB      bool
		ExpectedCode int
		ExpectedBody string
	}{
		{Label: "Healthz", Path: "/healthz", ExpectedCode: 200, ExpectedBody: "ok\n"},
		{Label: "Readyz", Path: "/readyz", ExpectedCode: 200, ExpectedBody: "ready\n"},
		{Label: "ReadyzDatabaseClosed", Path: "/readyz", CloseDB: true, ExpectedCode: 503, ExpectedBody: "database unreachable\n"},
		{Label: "HealthzDatabaseClosed", Path: "/healthz", ExpectedCode: 200, ExpectedBody: "ok\n"},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			if tt.CloseDB {
				if err := r.Store.Close(); err != nil {
					t.Fatal(err)
				}
			}
			resp, body := r.get(t, tt.Path)
			if resp.StatusCode != tt.ExpectedCode || body != tt.ExpectedBody {
				t.Errorf("GET %s = %d %q; want %d %q", tt.Path, resp.StatusCode, body, tt.ExpectedCode, tt.ExpectedBody)
			}
		})
	}
}

// metricNames reads the names of the service's metrics from metrics.go, so
// that a metric added there and never exposed fails this test.
func metricNames(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`Name:\s*"(safeflow_\w+)"`).FindAllStringSubmatch(string(src), -1) {
		names = append(names, m[1])
	}
	if len(names) < 7 {
		t.Fatalf("found only %d metric names in metrics.go: %v", len(names), names)
	}
	return names
}

func TestMetricsExposeEveryMetricAfterTraffic(t *testing.T) {
	ln := listen(t)
	r := start(t, ln, devConfig(t, ln, examples))
	r.send(t, "sms", "INTAKE")
	r.waitText(t, "sms", "Are you a new patient with us?")
	waitFor(t, "the outbound counter", func() bool {
		return r.metric(t, "safeflow_outbound_messages_total", "channel", "sms", "status", "sent") >= 2
	})
	fams := r.metrics(t)
	for _, name := range metricNames(t) {
		if fams[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	tests := []struct {
		Label    string
		Name     string
		Labels   []string
		Expected float64
	}{
		{Label: "InboundHandled", Name: "safeflow_inbound_messages_total", Labels: []string{"channel", "sms", "status", "handled"}, Expected: 1},
		{Label: "HandleTimed", Name: "safeflow_handle_seconds", Expected: 1},
		{Label: "NoReloadYet", Name: "safeflow_flow_reloads_total", Labels: []string{"result", "applied"}, Expected: 0},
		{Label: "NothingLimited", Name: "safeflow_rate_limited_total", Expected: 0},
		{Label: "NoDeadLetters", Name: "safeflow_outbox_dead_letters", Expected: 0},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			if got := r.metric(t, tt.Name, tt.Labels...); got != tt.Expected {
				t.Errorf("%s%v = %v; want %v", tt.Name, tt.Labels, got, tt.Expected)
			}
		})
	}
	_, body := r.get(t, "/metrics")
	for _, secret := range []string{"2015550123", "INTAKE", "Sunny"} {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics shows %q", secret)
		}
	}
}

// blockingSender holds every message until its context ends, like a
// provider that hangs.
type blockingSender struct {
	entered   chan struct{}
	once      sync.Once
	cancelled atomic.Bool
}

func (b *blockingSender) Send(ctx context.Context, _ *engine.Outbound) (string, error) {
	b.once.Do(func() { close(b.entered) })
	<-ctx.Done()
	b.cancelled.Store(true)
	return "", ctx.Err()
}

func TestGracefulShutdown(t *testing.T) {
	ln := listen(t)
	cfg := devConfig(t, ln, examples)
	hung := &blockingSender{entered: make(chan struct{})}
	slowStarted, stopping := make(chan struct{}), make(chan struct{})
	var slowDone atomic.Bool
	r := startPrepared(t, ln, cfg, func(s *server.Server) {
		s.Echo.GET("/test/slow", func(c echo.Context) error {
			close(slowStarted)
			<-stopping
			time.Sleep(300 * time.Millisecond) // still working well after shutdown began
			slowDone.Store(true)
			return c.String(http.StatusOK, "finished")
		})
	}, server.WithSender(engine.SMS, hung))

	r.send(t, "sms", "INTAKE")
	select {
	case <-hung.entered:
	case <-time.After(15 * time.Second):
		t.Fatal("the outbox worker never tried to send")
	}
	type reply struct {
		code int
		body string
		err  error
	}
	replies := make(chan reply, 1)
	go func() {
		resp, err := http.Get(r.URL + "/test/slow")
		if err != nil {
			replies <- reply{err: err}
			return
		}
		defer resp.Body.Close()
		b := make([]byte, 64)
		n, _ := resp.Body.Read(b)
		replies <- reply{code: resp.StatusCode, body: string(b[:n])}
	}()
	<-slowStarted

	r.stop()
	close(stopping)
	if err := r.Stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !slowDone.Load() {
		t.Error("Run returned before the request in flight finished")
	}
	if got := <-replies; got.err != nil || got.code != http.StatusOK || got.body != "finished" {
		t.Errorf("request in flight got %d %q, %v; want 200 finished", got.code, got.body, got.err)
	}
	if !hung.cancelled.Load() {
		t.Error("the hung send was not cancelled at shutdown")
	}
	pending, dead, err := r.Store.OutboxCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if pending == 0 || dead != 0 {
		t.Fatalf("after shutdown %d pending, %d dead; want the unsent replies pending", pending, dead)
	}
	// The interrupted send and the replies behind it were released, not
	// left claimed until their one-minute lease ends.
	var claimed int
	if err := r.Store.DB().Get(&claimed, `SELECT COUNT(*) FROM outbox WHERE status = 'sending'`); err != nil {
		t.Fatal(err)
	}
	if claimed != 0 {
		t.Fatalf("after shutdown %d replies still claimed; want them released", claimed)
	}
	r.Close()

	// After a restart, on the real clock, every reply goes out at once, in
	// order.
	rec := &recorder{}
	ln2 := listen(t)
	cfg.Addr = ln2.Addr().String()
	r2 := start(t, ln2, cfg, server.WithSender(engine.SMS, rec))
	rec.waitText(t, "Are you a new patient with us?")
	got := rec.messages()
	if len(got) != pending || !strings.HasPrefix(got[0].Text, "Hi! This is Sunny Clinic.") || got[0].Address != "+12015550123" {
		t.Errorf("after restart sent %+v; want the %d pending replies, greeting first", got, pending)
	}
	waitFor(t, "an empty outbox", func() bool {
		pending, _, err := r2.Store.OutboxCounts(context.Background())
		return err == nil && pending == 0
	})
}

func TestHotReload(t *testing.T) {
	flowsDir := copyFlows(t)
	file := filepath.Join(flowsDir, "symptom-triage.yaml")
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	const greeting = "Sunny Clinic nurse line."
	if !strings.Contains(string(orig), greeting) {
		t.Fatalf("symptom-triage.yaml no longer says %q; update this test", greeting)
	}
	ln := listen(t)
	r := start(t, ln, devConfig(t, ln, flowsDir))

	r.send(t, "messenger", "TRIAGE")
	r.waitText(t, "messenger", greeting)

	// A good edit is served to the next conversation.
	changed := strings.Replace(string(orig), greeting, "Sunny Clinic nurse line, version two.", 1)
	writeFile(t, file, changed)
	waitFor(t, "the reload", func() bool {
		return r.metric(t, "safeflow_flow_reloads_total", "result", "applied") == 1
	})
	r.send(t, "sms", "TRIAGE")
	r.waitText(t, "sms", "version two")

	// A broken edit is refused and the last good version keeps serving.
	broken := strings.Replace(changed, "next: ask-symptoms", "next: ask-symptom", 1)
	if broken == changed {
		t.Fatal("symptom-triage.yaml has no `next: ask-symptoms` to break; update this test")
	}
	writeFile(t, file, broken)
	waitFor(t, "the rejected reload", func() bool {
		return r.metric(t, "safeflow_flow_reloads_total", "result", "rejected") == 1
	})
	before := len(r.screen(t))
	r.send(t, "messenger", "TRIAGE")
	waitFor(t, "the restarted triage", func() bool {
		msgs := r.screen(t)
		for _, m := range msgs[before:] {
			if m.Channel == "messenger" && strings.Contains(m.Text, "version two") {
				return true
			}
		}
		return false
	})
	if got := r.metric(t, "safeflow_flow_reloads_total", "result", "applied"); got != 1 {
		t.Errorf("applied reloads = %v; want 1", got)
	}
	if !strings.Contains(r.Log.String(), "flow reload rejected; the last good flows keep serving") {
		t.Error("the rejected reload was not logged")
	}
	recs, err := r.Store.AuditRecords(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for _, rec := range recs {
		if rec.Action == audit.FlowReload {
			outcomes[rec.Outcome]++
		}
	}
	// One ok at start, one for the good edit, one failed for the broken one.
	if outcomes[audit.OutcomeOK] != 2 || outcomes[audit.OutcomeFailed] != 1 {
		t.Errorf("flow.reload audit outcomes %v; want 2 ok and 1 failed", outcomes)
	}
}

func TestRateLimitDropsAFlood(t *testing.T) {
	ln := listen(t)
	r := start(t, ln, devConfig(t, ln, examples))
	const flood = 40
	for i := range flood {
		r.send(t, "sms", fmt.Sprintf("hello %d", i))
	}
	limited := r.metric(t, "safeflow_rate_limited_total")
	handled := r.metric(t, "safeflow_inbound_messages_total", "channel", "sms", "status", "handled")
	dropped := r.metric(t, "safeflow_inbound_messages_total", "channel", "sms", "status", "rate_limited")
	if limited < 5 || limited != dropped || limited+handled != flood {
		t.Errorf("limited %v, dropped %v, handled %v of %d; want a flood mostly dropped and every message counted", limited, dropped, handled, flood)
	}
	if !strings.Contains(r.Log.String(), "dropped by the per-contact rate limit") {
		t.Error("drops were not logged")
	}
	// Another contact is not held back by the flood.
	r.send(t, "messenger", "INTAKE")
	r.waitText(t, "messenger", "Are you a new patient with us?")
}

func TestBodySizeLimit(t *testing.T) {
	ln := listen(t)
	cfg := devConfig(t, ln, examples)
	cfg.TwilioAuthToken = "test-auth-token" // mounts the webhook
	r := start(t, ln, cfg)
	big := strings.Repeat("x", 2<<20)
	tests := []struct {
		Label        string
		Path         string
		ContentType  string
		Body         string
		ExpectedCode int
		ExpectedBody string
	}{
		{Label: "WebhookOverServerLimit", Path: "/webhooks/twilio", ContentType: "application/x-www-form-urlencoded",
			Body: "Body=" + big, ExpectedCode: http.StatusRequestEntityTooLarge, ExpectedBody: "Request Entity Too Large (request "},
		{Label: "PhoneOverItsLimit", Path: "/dev/send", ContentType: "application/json",
			Body: `{"channel":"sms","text":"` + strings.Repeat("x", 64<<10) + `"}`, ExpectedCode: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			code, body := r.post(t, tt.Path, tt.ContentType, tt.Body)
			if code != tt.ExpectedCode || !strings.HasPrefix(body, tt.ExpectedBody) {
				t.Errorf("POST %s = %d %.80q; want %d %q", tt.Path, code, body, tt.ExpectedCode, tt.ExpectedBody)
			}
		})
	}
	if got := r.metric(t, "safeflow_inbound_messages_total", "channel", "sms", "status", "handled"); got != 0 {
		t.Errorf("%v oversized messages were handled", got)
	}
}

func TestErrorResponsesHideDetails(t *testing.T) {
	ln := listen(t)
	r := startPrepared(t, ln, devConfig(t, ln, examples), func(s *server.Server) {
		s.Echo.GET("/test/fail", func(echo.Context) error {
			return errors.New("sql: connection refused by db-7.internal")
		})
		s.Echo.GET("/test/panic", func(echo.Context) error {
			panic(fmt.Sprintf("unexpected state for patient %s", "Ann Smith"))
		})
		s.Echo.GET("/test/index", func(echo.Context) error {
			var a []int
			_ = a[len(a)] // a runtime error: safe to log
			return nil
		})
	})
	tests := []struct {
		Label        string
		Method, Path string
		Body         string
		CloseDB      bool
		ExpectedCode int
		ExpectedMsg  string
		Hidden       string // not in the response
		HiddenInLog  bool   // nor in the log
		Logged       string // in the log, next to the request id
	}{
		{Label: "Error", Method: "GET", Path: "/test/fail", ExpectedCode: 500, ExpectedMsg: "internal error",
			Logged: "connection refused"},
		{Label: "Panic", Method: "GET", Path: "/test/panic", ExpectedCode: 500, ExpectedMsg: "internal error",
			Hidden: "Ann Smith", HiddenInLog: true, Logged: "handler panicked"},
		{Label: "RuntimePanic", Method: "GET", Path: "/test/index", ExpectedCode: 500, ExpectedMsg: "internal error",
			Logged: "index out of range"},
		{Label: "NotFound", Method: "GET", Path: "/nope", ExpectedCode: 404, ExpectedMsg: "Not Found"},
		{Label: "WrongMethod", Method: "GET", Path: "/dev/send", ExpectedCode: 405, ExpectedMsg: "Method Not Allowed"},
		{Label: "EngineFails", Method: "POST", Path: "/dev/send", Body: `{"channel":"sms","text":"INTAKE"}`, CloseDB: true,
			ExpectedCode: 500, ExpectedMsg: "internal error", Hidden: "database is closed", Logged: "could not take the message"},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			if tt.CloseDB {
				r.Store.Close()
			}
			req, _ := http.NewRequest(tt.Method, r.URL+tt.Path, strings.NewReader(tt.Body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			buf := make([]byte, 4096)
			n, _ := resp.Body.Read(buf)
			body := string(buf[:n])
			id := resp.Header.Get(echo.HeaderXRequestID)
			want := fmt.Sprintf("%s (request %s)\n", tt.ExpectedMsg, id)
			if id == "" || resp.StatusCode != tt.ExpectedCode || body != want {
				t.Errorf("%s %s = %d %q; want %d %q", tt.Method, tt.Path, resp.StatusCode, body, tt.ExpectedCode, want)
			}
			log := r.Log.String()
			if tt.Hidden != "" && strings.Contains(body, tt.Hidden) {
				t.Errorf("%q leaked into the response", tt.Hidden)
			}
			if tt.HiddenInLog && strings.Contains(log, tt.Hidden) {
				t.Errorf("%q leaked into the log", tt.Hidden)
			}
			if tt.Logged != "" {
				found := false
				for _, line := range strings.Split(log, "\n") {
					if strings.Contains(line, tt.Logged) && strings.Contains(line, id) {
						found = true
					}
				}
				if !found {
					t.Errorf("no log line with %q and the request id %s:\n%s", tt.Logged, id, log)
				}
			}
		})
	}
}

// TestShutdownDoesNotWaitForLongPolls: the phone page keeps a request open
// for up to 20 seconds; shutdown must answer it, not wait it out.
func TestShutdownDoesNotWaitForLongPolls(t *testing.T) {
	ln := listen(t)
	r := start(t, ln, devConfig(t, ln, examples))
	polled := make(chan int, 1)
	go func() {
		resp, err := http.Get(r.URL + "/dev/messages?after=1000")
		if err != nil {
			polled <- 0
			return
		}
		resp.Body.Close()
		polled <- resp.StatusCode
	}()
	time.Sleep(300 * time.Millisecond) // let the poll reach its wait
	began := time.Now()
	if err := r.Stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	took := time.Since(began)
	t.Logf("shutdown took %v", took)
	if took > 5*time.Second {
		t.Errorf("shutdown took %v with a long poll open", took)
	}
	if code := <-polled; code != http.StatusOK {
		t.Errorf("the long poll got %d; want an empty 200 answer", code)
	}
}

// ranOnce starts a dev service and stops it, and returns its settings:
// its SQLite file and key file are then there, as a stopped service leaves
// them.
func ranOnce(t *testing.T) server.Config {
	t.Helper()
	ln := listen(t)
	cfg := devConfig(t, ln, examples)
	r := start(t, ln, cfg)
	r.Stop(t)
	r.Close()
	return cfg
}

// sqliteExec runs statements on a stopped service's SQLite file, as an
// operator with the file could.
func sqliteExec(t *testing.T, file string, statements ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range statements {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

const pendingRecord = `INSERT INTO audit_pending (at, actor_type, actor_id, actor_role, source, action, object, conversation_id,
	channel, outcome, reason, request_id) VALUES (1, 'system', '', '', '', 'flow.reload', 'intake', '', '', 'ok', '', '')`

// Audit records a run left pending (written with their action, not yet
// chained) are chained when the next run starts, and it says so.
func TestStartChainsWhatAPreviousRunLeftPending(t *testing.T) {
	cfg := ranOnce(t)
	sqliteExec(t, cfg.DB, pendingRecord, pendingRecord)

	ln2 := listen(t)
	cfg.Addr = ln2.Addr().String()
	r2 := start(t, ln2, cfg)
	if !regexp.MustCompile(`audit records a previous run left unchained are chained now","count":2`).MatchString(r2.Log.String()) {
		t.Errorf("the start did not say it chained the 2 pending records:\n%s", r2.Log.String())
	}
	var pending int
	if err := r2.Store.DB().Get(&pending, `SELECT COUNT(*) FROM audit_pending`); err != nil || pending != 0 {
		t.Errorf("%d records still pending (%v)", pending, err)
	}
	if p, err := r2.Store.VerifyAudit(context.Background()); p != nil || err != nil {
		t.Errorf("VerifyAudit = %v, %v", p, err)
	}
}

// A log whose records cannot be chained (here its head was moved back by
// hand) stops the start with the reason, instead of a service whose every
// message would fail to write its audit records.
func TestUnchainableAuditLogRefusesToStart(t *testing.T) {
	cfg := ranOnce(t)
	sqliteExec(t, cfg.DB, pendingRecord, pendingRecord, `UPDATE audit_head SET seq = seq - 1`)

	log, _ := newLog()
	srv, err := server.New(context.Background(), cfg, log)
	if err == nil {
		srv.Close()
		t.Fatal("the service started on an audit log it cannot chain")
	}
	if msg := err.Error(); !strings.Contains(msg, "audit log") || !strings.Contains(msg, "safeflow audit verify") {
		t.Errorf("refused with %q; want the audit log named and what to run", msg)
	}
}
