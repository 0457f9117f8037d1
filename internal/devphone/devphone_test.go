package devphone_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/devphone"
)

// sink records what the page hands to the engine, failing when told to.
type sink struct {
	mu   sync.Mutex
	got  []engine.Inbound
	fail error
}

func (s *sink) handle(_ context.Context, in engine.Inbound) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.got = append(s.got, in)
	return nil
}

// withRequestID stands in for the server's request id middleware.
func withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-42")
		h.ServeHTTP(w, r)
	})
}

func do(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = "192.0.2.7:5555"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestSend(t *testing.T) {
	tests := []struct {
		Label           string
		Body            string
		Fail            error
		ExpectedCode    int
		ExpectedBody    string
		ExpectedInbound *engine.Inbound
	}{
		{
			Label: "SMS", Body: `{"channel":"sms","text":"INTAKE"}`, ExpectedCode: 204,
			ExpectedInbound: &engine.Inbound{Channel: engine.SMS, Address: devphone.SMSAddress, Text: "INTAKE"},
		},
		{
			Label: "MessengerQuickReply", Body: `{"channel":"messenger","text":"Me","payload":"self"}`, ExpectedCode: 204,
			ExpectedInbound: &engine.Inbound{Channel: engine.Messenger, Address: devphone.MessengerAddress, Text: "Me", Payload: "self"},
		},
		{Label: "ErrNotJSON", Body: `text=hi`, ExpectedCode: 400, ExpectedBody: "send JSON {channel, text}"},
		{Label: "ErrTooBig", Body: `{"channel":"sms","text":"` + strings.Repeat("x", 9<<10) + `"}`, ExpectedCode: 400},
		{Label: "ErrSecureChannel", Body: `{"channel":"secure","text":"hi"}`, ExpectedCode: 400, ExpectedBody: "channel must be sms or messenger"},
		{
			Label: "ErrEngine", Body: `{"channel":"sms","text":"hi"}`, Fail: errors.New("sql: database is closed"),
			ExpectedCode: 500, ExpectedBody: "internal error (request req-42)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			var logBuf strings.Builder
			log := slog.New(slog.NewTextHandler(&logBuf, nil))
			s := &sink{fail: tt.Fail}
			p := devphone.New()
			w := do(withRequestID(p.Handler(s.handle, log)), "POST", "/dev/send", tt.Body)
			if w.Code != tt.ExpectedCode || !strings.Contains(w.Body.String(), tt.ExpectedBody) {
				t.Fatalf("POST /dev/send = %d %q; want %d %q", w.Code, w.Body, tt.ExpectedCode, tt.ExpectedBody)
			}
			if strings.Contains(w.Body.String(), "sql:") {
				t.Errorf("the response shows the cause: %q", w.Body)
			}
			if tt.Fail != nil && !strings.Contains(logBuf.String(), "req-42") {
				t.Errorf("the failure was not logged with its request id: %s", logBuf.String())
			}
			if tt.ExpectedInbound == nil {
				if len(s.got) != 0 {
					t.Errorf("the engine got %+v from a refused request", s.got)
				}
				return
			}
			if len(s.got) != 1 {
				t.Fatalf("the engine got %d messages; want 1", len(s.got))
			}
			in, want := s.got[0], *tt.ExpectedInbound
			if in.Channel != want.Channel || in.Address != want.Address || in.Text != want.Text || in.Payload != want.Payload {
				t.Errorf("inbound %+v; want %+v", in, want)
			}
			if !strings.HasPrefix(in.ProviderID, "dev-in-") || in.RequestID != "req-42" || in.Source != "192.0.2.7" {
				t.Errorf("inbound id %q, request %q, source %q", in.ProviderID, in.RequestID, in.Source)
			}
			if msgs := p.Messages(); len(msgs) != 1 || msgs[0].From != "patient" || msgs[0].Text != want.Text {
				t.Errorf("the phone shows %+v; want the patient's message", msgs)
			}
		})
	}
}

func TestSenderPutsRepliesOnThePhone(t *testing.T) {
	p := devphone.New()
	ctx := context.Background()
	id1, err := p.Sender(engine.Messenger).Send(ctx, &engine.Outbound{Text: "Who is this about?",
		Choices: []engine.OutChoice{{Title: "Me", Payload: "self"}, {Title: "My child", Payload: "child"}}})
	if err != nil {
		t.Fatal(err)
	}
	id2, _ := p.Sender(engine.SMS).Send(ctx, &engine.Outbound{Text: "Tap http://x/s/abc", Link: true})
	if id1 == id2 || !strings.HasPrefix(id1, "dev-") {
		t.Errorf("provider ids %q, %q; want distinct dev- ids", id1, id2)
	}
	msgs := p.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages; want 2", len(msgs))
	}
	if m := msgs[0]; m.Seq != 1 || m.Channel != "messenger" || m.From != "clinic" || len(m.Choices) != 2 || m.Choices[1].Payload != "child" {
		t.Errorf("first message %+v", m)
	}
	if m := msgs[1]; m.Seq != 2 || m.Channel != "sms" || !m.Link {
		t.Errorf("second message %+v", m)
	}
}

func poll(t *testing.T, h http.Handler, after string) ([]devphone.Message, http.Header) {
	t.Helper()
	w := do(h, "GET", "/dev/messages?after="+after, "")
	if w.Code != 200 {
		t.Fatalf("GET /dev/messages: %d", w.Code)
	}
	var msgs []devphone.Message
	if err := json.Unmarshal(w.Body.Bytes(), &msgs); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	return msgs, w.Header()
}

func TestMessagesLongPoll(t *testing.T) {
	p := devphone.New()
	h := p.Handler((&sink{}).handle, nil)
	p.Sender(engine.SMS).Send(context.Background(), &engine.Outbound{Text: "one"})

	msgs, hdr := poll(t, h, "0")
	if len(msgs) != 1 || msgs[0].Text != "one" || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("first poll %+v, Cache-Control %q", msgs, hdr.Get("Cache-Control"))
	}

	// A poll past the last message waits for the next one.
	got := make(chan []devphone.Message)
	background := func(after string) {
		go func() {
			var m []devphone.Message
			_ = json.Unmarshal(do(h, "GET", "/dev/messages?after="+after, "").Body.Bytes(), &m)
			got <- m
		}()
	}
	background("1")
	time.Sleep(100 * time.Millisecond)
	p.Sender(engine.SMS).Send(context.Background(), &engine.Outbound{Text: "two"})
	select {
	case m := <-got:
		if len(m) != 1 || m[0].Text != "two" || m[0].Seq != 2 {
			t.Errorf("waiting poll got %+v; want message two", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting poll did not get the new message")
	}

	// Close answers a waiting poll with nothing, and later ones at once.
	background("2")
	time.Sleep(100 * time.Millisecond)
	p.Close()
	select {
	case m := <-got:
		if len(m) != 0 {
			t.Errorf("poll ended by Close got %+v; want []", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the waiting poll")
	}
	began := time.Now()
	if m, _ := poll(t, h, "2"); len(m) != 0 || time.Since(began) > time.Second {
		t.Errorf("poll after Close got %+v after %v; want [] at once", m, time.Since(began))
	}
}

func TestPageFiles(t *testing.T) {
	h := devphone.New().Handler((&sink{}).handle, nil)
	tests := []struct {
		Path         string
		ExpectedType string
		Expected     []string
	}{
		{Path: "/", ExpectedType: "text/html", Expected: []string{`id="phone-sms"`, `id="phone-messenger"`, `src="/phone.js"`}},
		{Path: "/phone.js", ExpectedType: "text/javascript", Expected: []string{"textContent", "/dev/messages"}},
		{Path: "/phone.css", ExpectedType: "text/css", Expected: []string{".phone"}},
	}
	for _, tt := range tests {
		t.Run(tt.Path, func(t *testing.T) {
			w := do(h, "GET", tt.Path, "")
			body, _ := io.ReadAll(w.Body)
			if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), tt.ExpectedType) {
				t.Fatalf("GET %s = %d %s", tt.Path, w.Code, w.Header().Get("Content-Type"))
			}
			for _, want := range tt.Expected {
				if !strings.Contains(string(body), want) {
					t.Errorf("%s has no %q", tt.Path, want)
				}
			}
		})
	}
	// The page never builds HTML from message text.
	js := do(h, "GET", "/phone.js", "").Body.String()
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"} {
		if strings.Contains(js, bad) {
			t.Errorf("phone.js uses %s", bad)
		}
	}
}
