package messenger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/safeflow/safeflow/channels/messenger"
	"github.com/safeflow/safeflow/channels/messenger/messengertest"
	"github.com/safeflow/safeflow/engine"
)

const (
	appSecret   = "test_app_secret"
	verifyToken = "a-long-random-verify-token"
	psid        = "6543210987654321"
)

// recorder is a sink that keeps what it is given and can fail on a call.
type recorder struct {
	mu     sync.Mutex
	got    []engine.Inbound
	failAt int // 1-based call that fails; 0 never
	calls  int
}

func (r *recorder) sink(_ context.Context, in engine.Inbound) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls == r.failAt {
		return errors.New("store unavailable")
	}
	r.got = append(r.got, in)
	return nil
}

func testConfig() messenger.Config {
	return messenger.Config{AppSecret: appSecret, VerifyToken: verifyToken, PageToken: "page-token"}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func msgIn(text, payload, mid string) engine.Inbound {
	return engine.Inbound{Channel: engine.Messenger, Address: psid, Text: text, Payload: payload, ProviderID: mid, Source: "192.0.2.1"}
}

// incomingCase is one signed webhook POST and what must come of it.
type incomingCase struct {
	Label            string
	File             string // under testdata/; or Body
	Body             []byte
	ExpectedStatus   int
	ExpectedBody     string
	ExpectedInbounds []engine.Inbound
}

func TestIncoming(t *testing.T) {
	cases := []incomingCase{
		{Label: "text message", File: "text.json", ExpectedStatus: 200, ExpectedBody: messenger.Received,
			ExpectedInbounds: []engine.Inbound{msgIn("INTAKE", "", "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P")}},
		{Label: "quick reply gives its payload and title", File: "quick_reply.json", ExpectedStatus: 200, ExpectedBody: messenger.Received,
			ExpectedInbounds: []engine.Inbound{msgIn("Tuesday", "tue", "m_qr1_b3Fkq5XvZrUjG2wPpL8aHc1oDmT4yNeS7iKfVxRgB6uQ9zA0lJtWhYcEs")}},
		{Label: "postback gives payload and title, keyed by its mid", File: "postback.json", ExpectedStatus: 200, ExpectedBody: messenger.Received,
			ExpectedInbounds: []engine.Inbound{msgIn("Get Started", "GET_STARTED", "m_pb1_Zx9YwV8uT7sR6qP5oN4mL3kJ2iH1gF0eD9cB8aZ7yX6wV5uT4sR3qP2o")}},
		{Label: "batch: several entries and events, in order, echo and delivery skipped", File: "batch.json", ExpectedStatus: 200, ExpectedBody: messenger.Received,
			ExpectedInbounds: []engine.Inbound{
				msgIn("yes", "", "m_batch_1"),
				msgIn("Ana", "", "m_batch_2"),
				{Channel: engine.Messenger, Address: "7788990011223344", Text: "Monday", Payload: "mon", ProviderID: "m_batch_3", Source: "192.0.2.1"},
			}},
		{Label: "echo of the Page's own message is ignored", File: "echo.json", ExpectedStatus: 200, ExpectedBody: messenger.Received},
		{Label: "delivery receipt is ignored", File: "delivery.json", ExpectedStatus: 200, ExpectedBody: messenger.Received},
		{Label: "read receipt is ignored", File: "read.json", ExpectedStatus: 200, ExpectedBody: messenger.Received},
		{Label: "reaction is ignored", File: "reaction.json", ExpectedStatus: 200, ExpectedBody: messenger.Received},
		{Label: "edit is ignored", File: "edit.json", ExpectedStatus: 200, ExpectedBody: messenger.Received},
		{Label: "unsend is ignored", File: "unsend.json", ExpectedStatus: 200, ExpectedBody: messenger.Received},
		{Label: "instagram object is acknowledged and ignored", File: "instagram.json", ExpectedStatus: 200, ExpectedBody: messenger.Received},
		{Label: "attachment only passes empty text and never its URL", File: "attachment.json", ExpectedStatus: 200, ExpectedBody: messenger.Received,
			ExpectedInbounds: []engine.Inbound{msgIn("", "", "m_att_1")}},
		{Label: "not JSON", File: "not_json.txt", ExpectedStatus: 400},
		{Label: "entry is not a list", File: "entry_not_array.json", ExpectedStatus: 400},
		{Label: "sender id is a number", File: "sender_not_string.json", ExpectedStatus: 400},
		{Label: "empty body", Body: []byte{}, ExpectedStatus: 400},
		{Label: "JSON null", Body: []byte("null"), ExpectedStatus: 200, ExpectedBody: messenger.Received},
		{Label: "truncated JSON", Body: messengertest.Body(messengertest.TextMessage(psid, "m_1", "hi"))[:40], ExpectedStatus: 400},
		{Label: "builder: quick reply", Body: messengertest.Body(messengertest.QuickReplyMessage(psid, "m_q", "Yes", "yes")), ExpectedStatus: 200,
			ExpectedBody: messenger.Received, ExpectedInbounds: []engine.Inbound{msgIn("Yes", "yes", "m_q")}},
		{Label: "builder: echo, read, reaction and delivery give nothing", ExpectedStatus: 200, ExpectedBody: messenger.Received,
			Body: messengertest.Body(messengertest.EchoMessage(psid, "m_e", "Hello"), messengertest.ReadEvent(psid),
				messengertest.ReactionEvent(psid, "m_e"), messengertest.DeliveryEvent(psid, "m_e"))},
		{Label: "builder: batch of entries with several events", ExpectedStatus: 200, ExpectedBody: messenger.Received,
			Body: messengertest.Batch(
				[]messengertest.Event{messengertest.TextMessage(psid, "m_a", "one"), messengertest.TextMessage(psid, "m_b", "two")},
				[]messengertest.Event{messengertest.PostbackEvent(psid, "m_c", "Three", "3")}),
			ExpectedInbounds: []engine.Inbound{msgIn("one", "", "m_a"), msgIn("two", "", "m_b"), msgIn("Three", "3", "m_c")}},
		{Label: "message from the Page id without is_echo is still not a patient", ExpectedStatus: 200, ExpectedBody: messenger.Received,
			Body: messengertest.Body(messengertest.TextMessage(messengertest.PageID, "m_p", "hi"))},
		{Label: "message without sender is skipped", ExpectedStatus: 200, ExpectedBody: messenger.Received,
			Body: messengertest.Body(messengertest.TextMessage("", "m_n", "hi"))},
	}
	for _, c := range cases {
		t.Run(c.Label, func(t *testing.T) {
			body := c.Body
			if c.File != "" {
				body = readTestdata(t, c.File)
			}
			rec := &recorder{}
			w := serve(messenger.Handler(testConfig(), rec.sink), messengertest.SignedEvent(appSecret, body))
			if w.Code != c.ExpectedStatus {
				t.Fatalf("status = %d, want %d (body %q)", w.Code, c.ExpectedStatus, w.Body.String())
			}
			if c.ExpectedBody != "" && w.Body.String() != c.ExpectedBody {
				t.Errorf("body = %q, want %q", w.Body.String(), c.ExpectedBody)
			}
			if diff := cmp.Diff(c.ExpectedInbounds, rec.got); diff != "" {
				t.Errorf("inbound messages (-want +got):\n%s", diff)
			}
			for _, in := range rec.got {
				if strings.Contains(in.Text, "http") || strings.Contains(in.Payload, "http") {
					t.Errorf("an attachment URL reached the engine")
				}
			}
		})
	}
}

// TestSignatureRequired: nothing reaches the sink unless the body carries
// Meta's signature over the exact bytes received.
func TestSignatureRequired(t *testing.T) {
	pretty := readTestdata(t, "postback.json")
	var compact bytes.Buffer
	if err := json.Compact(&compact, pretty); err != nil {
		t.Fatal(err)
	}
	text := readTestdata(t, "text.json")
	cases := []struct {
		Label          string
		Config         messenger.Config
		Request        func() *http.Request
		ExpectedStatus int
	}{
		{Label: "missing header", Config: testConfig(), ExpectedStatus: 403, Request: func() *http.Request {
			r := messengertest.SignedEvent(appSecret, text)
			r.Header.Del(messenger.SignatureHeader)
			return r
		}},
		{Label: "signed with another secret", Config: testConfig(), ExpectedStatus: 403, Request: func() *http.Request {
			return messengertest.SignedEvent("other_secret", text)
		}},
		{Label: "old sha1 header only", Config: testConfig(), ExpectedStatus: 403, Request: func() *http.Request {
			r := messengertest.SignedEvent(appSecret, text)
			r.Header.Set("X-Hub-Signature", "sha1="+strings.TrimPrefix(r.Header.Get(messenger.SignatureHeader), "sha256=")[:40])
			r.Header.Del(messenger.SignatureHeader)
			return r
		}},
		{Label: "signature of the compact JSON, body pretty-printed", Config: testConfig(), ExpectedStatus: 403, Request: func() *http.Request {
			r := messengertest.SignedEvent(appSecret, compact.Bytes())
			r.Body = http.NoBody
			signed := r.Header.Get(messenger.SignatureHeader)
			r = httptest.NewRequest(http.MethodPost, messenger.Path, bytes.NewReader(pretty))
			r.Header.Set(messenger.SignatureHeader, signed)
			return r
		}},
		{Label: "signature of the pretty JSON, body compacted", Config: testConfig(), ExpectedStatus: 403, Request: func() *http.Request {
			signed := messengertest.SignedEvent(appSecret, pretty).Header.Get(messenger.SignatureHeader)
			r := httptest.NewRequest(http.MethodPost, messenger.Path, bytes.NewReader(compact.Bytes()))
			r.Header.Set(messenger.SignatureHeader, signed)
			return r
		}},
		{Label: "no app secret configured fails closed", Config: messenger.Config{VerifyToken: verifyToken}, ExpectedStatus: 403,
			Request: func() *http.Request { return messengertest.SignedEvent("", text) }},
		{Label: "bad signature on a malformed body is 403, not 400", Config: testConfig(), ExpectedStatus: 403, Request: func() *http.Request {
			return messengertest.SignedEvent("other_secret", []byte("{not json"))
		}},
		{Label: "pretty body with its own signature passes", Config: testConfig(), ExpectedStatus: 200, Request: func() *http.Request {
			return messengertest.SignedEvent(appSecret, pretty)
		}},
	}
	for _, c := range cases {
		t.Run(c.Label, func(t *testing.T) {
			rec := &recorder{}
			w := serve(messenger.Handler(c.Config, rec.sink), c.Request())
			if w.Code != c.ExpectedStatus {
				t.Fatalf("status = %d, want %d", w.Code, c.ExpectedStatus)
			}
			if c.ExpectedStatus != 200 && rec.calls != 0 {
				t.Errorf("sink called %d times for a refused request", rec.calls)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	long := strings.Repeat("a", 600)
	small := messengertest.Body(messengertest.TextMessage(psid, "m_1", "hi"))
	big := messengertest.Body(messengertest.TextMessage(psid, "m_1", strings.Repeat(long, 2)))
	huge := messengertest.Body(messengertest.TextMessage(psid, "m_1", strings.Repeat("x", messenger.DefaultMaxBody)))
	cases := []struct {
		Label          string
		MaxBody        int64
		Body           []byte
		ExpectedStatus int
	}{
		{Label: "under the configured limit", MaxBody: 1024, Body: small, ExpectedStatus: 200},
		{Label: "over the configured limit", MaxBody: 1024, Body: big, ExpectedStatus: 413},
		{Label: "over the default limit of 256 KiB", Body: huge, ExpectedStatus: 413},
		{Label: "exactly at the limit", MaxBody: int64(len(big)), Body: big, ExpectedStatus: 200},
		{Label: "one byte over the limit", MaxBody: int64(len(big)) - 1, Body: big, ExpectedStatus: 413},
	}
	for _, c := range cases {
		t.Run(c.Label, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxBody = c.MaxBody
			rec := &recorder{}
			w := serve(messenger.Handler(cfg, rec.sink), messengertest.SignedEvent(appSecret, c.Body))
			if w.Code != c.ExpectedStatus {
				t.Fatalf("status = %d, want %d", w.Code, c.ExpectedStatus)
			}
			if c.ExpectedStatus == 413 && rec.calls != 0 {
				t.Errorf("sink called for an oversized body")
			}
		})
	}
}

func TestVerification(t *testing.T) {
	cases := []struct {
		Label              string
		ConfigToken        string
		Mode, Token, Chall string
		ExpectedStatus     int
		ExpectedBody       string
	}{
		{Label: "matching token echoes the challenge", ConfigToken: verifyToken, Mode: "subscribe", Token: verifyToken, Chall: "1158201444", ExpectedStatus: 200, ExpectedBody: "1158201444"},
		{Label: "wrong token", ConfigToken: verifyToken, Mode: "subscribe", Token: "guess", Chall: "1158201444", ExpectedStatus: 403},
		{Label: "token differing in case", ConfigToken: verifyToken, Mode: "subscribe", Token: strings.ToUpper(verifyToken), Chall: "1", ExpectedStatus: 403},
		{Label: "token prefix", ConfigToken: verifyToken, Mode: "subscribe", Token: verifyToken[:10], Chall: "1", ExpectedStatus: 403},
		{Label: "missing token", ConfigToken: verifyToken, Mode: "subscribe", Chall: "1158201444", ExpectedStatus: 403},
		{Label: "mode other than subscribe", ConfigToken: verifyToken, Mode: "unsubscribe", Token: verifyToken, Chall: "1158201444", ExpectedStatus: 403},
		{Label: "missing mode", ConfigToken: verifyToken, Token: verifyToken, Chall: "1158201444", ExpectedStatus: 403},
		{Label: "missing challenge", ConfigToken: verifyToken, Mode: "subscribe", Token: verifyToken, ExpectedStatus: 403},
		{Label: "no token configured refuses even an empty one", ConfigToken: "", Mode: "subscribe", Token: "", Chall: "1", ExpectedStatus: 403},
	}
	for _, c := range cases {
		t.Run(c.Label, func(t *testing.T) {
			cfg := testConfig()
			cfg.VerifyToken = c.ConfigToken
			rec := &recorder{}
			w := serve(messenger.Handler(cfg, rec.sink), messengertest.VerificationRequest(c.Mode, c.Token, c.Chall))
			if w.Code != c.ExpectedStatus {
				t.Fatalf("status = %d, want %d", w.Code, c.ExpectedStatus)
			}
			if c.ExpectedBody != "" && w.Body.String() != c.ExpectedBody {
				t.Errorf("body = %q, want %q", w.Body.String(), c.ExpectedBody)
			}
			if c.ExpectedStatus == 200 && !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
				t.Errorf("Content-Type = %q, want text/plain", w.Header().Get("Content-Type"))
			}
			if c.ExpectedStatus != 200 && strings.Contains(w.Body.String(), c.Chall) && c.Chall != "" {
				t.Errorf("refused verification echoed the challenge")
			}
			if rec.calls != 0 {
				t.Errorf("verification reached the sink")
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
		t.Run(m, func(t *testing.T) {
			w := serve(messenger.Handler(testConfig(), (&recorder{}).sink), httptest.NewRequest(m, messenger.Path, nil))
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, POST" {
				t.Errorf("status %d, Allow %q; want 405 with GET, POST", w.Code, w.Header().Get("Allow"))
			}
		})
	}
}

// TestSinkFailure: a failing sink answers 500 so Meta retries; the retry
// carries the same ProviderIDs, which the engine uses to skip messages it
// already handled.
func TestSinkFailure(t *testing.T) {
	body := readTestdata(t, "batch.json")
	rec := &recorder{failAt: 2}
	h := messenger.Handler(testConfig(), rec.sink)
	w := serve(h, messengertest.SignedEvent(appSecret, body))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", w.Code)
	}
	if strings.Contains(w.Body.String(), "store unavailable") {
		t.Errorf("internal error text leaked to the caller: %q", w.Body.String())
	}
	if rec.calls != 2 {
		t.Errorf("sink called %d times, want 2: the batch stops at the failure", rec.calls)
	}
	first := append([]engine.Inbound(nil), rec.got...)

	retry := &recorder{}
	w = serve(messenger.Handler(testConfig(), retry.sink), messengertest.SignedEvent(appSecret, body))
	if w.Code != http.StatusOK {
		t.Fatalf("retry status = %d, want 200", w.Code)
	}
	if len(retry.got) != 3 || retry.got[0].ProviderID != first[0].ProviderID {
		t.Errorf("retry did not carry the same provider ids: first %v, retry %v", first, retry.got)
	}
}

// TestPostbackWithoutMid: older postbacks carry no mid; the key made for
// them is the same on every delivery and differs between taps.
func TestPostbackWithoutMid(t *testing.T) {
	ids := func(body []byte) string {
		rec := &recorder{}
		serve(messenger.Handler(testConfig(), rec.sink), messengertest.SignedEvent(appSecret, body))
		if len(rec.got) != 1 {
			t.Fatalf("got %d messages, want 1", len(rec.got))
		}
		if rec.got[0].Payload != "yes" && rec.got[0].Payload != "no" {
			t.Fatalf("payload = %q", rec.got[0].Payload)
		}
		return rec.got[0].ProviderID
	}
	file := readTestdata(t, "postback_without_mid.json")
	a, b := ids(file), ids(file)
	if a == "" || a != b {
		t.Errorf("redelivery keys differ or are empty: %q, %q", a, b)
	}
	other := ids(bytes.Replace(file, []byte(`"payload":"yes"`), []byte(`"payload":"no"`), 1))
	if other == a {
		t.Errorf("different payloads share the key %q", a)
	}
	later := ids(bytes.Replace(file, []byte("1717171949876"), []byte("1717171949877"), 1))
	if later == a {
		t.Errorf("taps at different times share the key %q", a)
	}
	if strings.Contains(a, psid) {
		t.Errorf("the derived key %q shows the PSID", a)
	}
}

func TestRequestContext(t *testing.T) {
	rec := &recorder{}
	r := messengertest.SignedEvent(appSecret, messengertest.Body(messengertest.TextMessage(psid, "m_1", "hi")))
	r.RemoteAddr = "203.0.113.7:44321"
	r.Header.Set("X-Request-Id", "req-123")
	serve(messenger.Handler(testConfig(), rec.sink), r)
	if len(rec.got) != 1 || rec.got[0].Source != "203.0.113.7" || rec.got[0].RequestID != "req-123" {
		t.Fatalf("got %+v, want Source 203.0.113.7 and RequestID req-123", rec.got)
	}

	// echo's RequestID middleware puts the id on the response before the
	// handler runs.
	rec = &recorder{}
	r = messengertest.SignedEvent(appSecret, messengertest.Body(messengertest.TextMessage(psid, "m_1", "hi")))
	w := httptest.NewRecorder()
	w.Header().Set("X-Request-Id", "from-middleware")
	messenger.Handler(testConfig(), rec.sink).ServeHTTP(w, r)
	if len(rec.got) != 1 || rec.got[0].RequestID != "from-middleware" {
		t.Fatalf("got %+v, want RequestID from-middleware", rec.got)
	}
}

// TestLogsKeepSecrets: each refusal is logged for operators, with the
// reason only; no PSID, message text, token or secret reaches the log.
func TestLogsKeepSecrets(t *testing.T) {
	const text = "my date of birth is 1980-02-03"
	var buf bytes.Buffer
	cfg := testConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	cfg.MaxBody = 2048
	rec := &recorder{failAt: 1}
	h := messenger.Handler(cfg, rec.sink)
	body := messengertest.Body(messengertest.TextMessage(psid, "m_secret_mid", text))
	requests := []*http.Request{
		messengertest.SignedEvent("wrong", body),
		messengertest.SignedEvent(appSecret, append([]byte(text), body...)),
		messengertest.SignedEvent(appSecret, messengertest.Body(messengertest.TextMessage(psid, "m_2", strings.Repeat(text, 80)))),
		messengertest.SignedEvent(appSecret, body),
		messengertest.VerificationRequest("subscribe", verifyToken+"x", "123"),
	}
	wantStatus := []int{403, 400, 413, 500, 403}
	for i, r := range requests {
		if w := serve(h, r); w.Code != wantStatus[i] {
			t.Fatalf("request %d: status %d, want %d", i, w.Code, wantStatus[i])
		}
	}
	logs := buf.String()
	if strings.Count(logs, "\n") < len(requests) {
		t.Errorf("expected a log line per refusal, got:\n%s", logs)
	}
	for _, secret := range []string{psid, text, "1980-02-03", verifyToken, appSecret, "m_secret_mid"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log shows %q:\n%s", secret, logs)
		}
	}
}
