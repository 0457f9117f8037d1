package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/devphone"
	"github.com/safeflow/safeflow/internal/server"
)

// examples is the folder of the real clinic flows.
const examples = "../../examples"

// copyFlows copies flow files from examples/ (all of them when no name is
// given) into a fresh folder, so a test can edit them.
func copyFlows(t *testing.T, names ...string) string {
	t.Helper()
	if len(names) == 0 {
		matches, err := filepath.Glob(filepath.Join(examples, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			if !strings.HasSuffix(m, ".test.yaml") {
				names = append(names, filepath.Base(m))
			}
		}
	}
	dir := filepath.Join(t.TempDir(), "flows")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(examples, n))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, n), string(b))
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newLog returns a debug-level JSON log through the redacting handler, as
// `safeflow serve --debug` builds it, and the buffer it writes to.
func newLog() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(server.NewRedactingHandler(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))), buf
}

// listen opens a listener on a free port of 127.0.0.1.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// devConfig is the configuration of `serve --dev` with everything in a
// fresh folder: flows from flowsDir, a SQLite file and a key file.
func devConfig(t *testing.T, ln net.Listener, flowsDir string) server.Config {
	t.Helper()
	dir := t.TempDir()
	cfg := server.Defaults()
	cfg.Addr = ln.Addr().String()
	cfg.FlowsDir = flowsDir
	cfg.DB = filepath.Join(dir, "safeflow.db")
	cfg.KeysFile = filepath.Join(dir, "safeflow.keys")
	cfg.Dev = true
	return cfg
}

// running is a server serving on a real listener.
type running struct {
	*server.Server
	URL  string
	Log  *syncBuffer
	stop context.CancelFunc
	done chan error
}

// start builds the server and runs it on ln until the test ends (or Stop).
func start(t *testing.T, ln net.Listener, cfg server.Config, opts ...server.Option) *running {
	t.Helper()
	return startPrepared(t, ln, cfg, nil, opts...)
}

// startPrepared is start with a hook that runs between New and Run, for
// tests that add routes of their own.
func startPrepared(t *testing.T, ln net.Listener, cfg server.Config, prepare func(*server.Server), opts ...server.Option) *running {
	t.Helper()
	log, buf := newLog()
	srv, err := server.New(context.Background(), cfg, log, opts...)
	if err != nil {
		ln.Close()
		t.Fatalf("New: %v", err)
	}
	if prepare != nil {
		prepare(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Server: srv, URL: "http://" + ln.Addr().String(), Log: buf, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		r.Stop(t)
		srv.Close()
	})
	waitFor(t, "the server to answer /healthz", func() bool {
		resp, err := http.Get(r.URL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return r
}

// Stop shuts the server down and returns what Run returned.
func (r *running) Stop(t *testing.T) error {
	t.Helper()
	r.stop()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s of the cancel")
		return nil
	}
}

// send types text on a simulated phone, as the page does.
func (r *running) send(t *testing.T, channel, text string) {
	t.Helper()
	if code, body := r.post(t, "/dev/send", "application/json", fmt.Sprintf(`{"channel":%q,"text":%q}`, channel, text)); code != http.StatusNoContent {
		t.Fatalf("POST /dev/send %q: %d %s", text, code, body)
	}
}

func (r *running) post(t *testing.T, path, contentType, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(r.URL+path, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *running) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(r.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// screen returns what the simulated phones show, through the page's API.
func (r *running) screen(t *testing.T) []devphone.Message {
	t.Helper()
	resp, body := r.get(t, "/dev/messages?after=0")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /dev/messages: %d", resp.StatusCode)
	}
	var msgs []devphone.Message
	if err := json.Unmarshal([]byte(body), &msgs); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// waitText waits until a clinic message on channel contains text.
func (r *running) waitText(t *testing.T, channel, text string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%q on the %s phone", text, channel), func() bool {
		for _, m := range r.screen(t) {
			if m.Channel == channel && m.From == "clinic" && strings.Contains(m.Text, text) {
				return true
			}
		}
		return false
	})
}

// metrics scrapes /metrics.
func (r *running) metrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := r.get(t, "/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metric returns the value of a counter or gauge with the given labels
// (name=value pairs), or 0 when the series does not exist.
func (r *running) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	fam := r.metrics(t)[name]
	if fam == nil {
		return 0
	}
next:
	for _, m := range fam.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// waitFor polls cond until it holds, failing the test after 15 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder is an engine.Sender that keeps what it is given.
type recorder struct {
	mu   sync.Mutex
	sent []engine.Outbound
}

func (r *recorder) Send(_ context.Context, m *engine.Outbound) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, *m)
	return fmt.Sprintf("rec-%d", len(r.sent)), nil
}

func (r *recorder) messages() []engine.Outbound {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]engine.Outbound(nil), r.sent...)
}

// waitText waits until a message containing text was sent and returns it.
func (r *recorder) waitText(t *testing.T, text string) engine.Outbound {
	t.Helper()
	var found engine.Outbound
	waitFor(t, fmt.Sprintf("a message with %q", text), func() bool {
		for _, m := range r.messages() {
			if strings.Contains(m.Text, text) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}
