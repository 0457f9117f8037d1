package loadgen

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
)

func TestSinkServesTheMessagesAPI(t *testing.T) {
	const sid, token = "ACtest", "secret"
	path := "/2010-04-01/Accounts/" + sid + "/Messages.json"
	form := url.Values{"To": {"+12015550123"}, "From": {benchNumber}, "Body": {"Hello"}}.Encode()
	tests := []struct {
		Label          string
		Method, Path   string
		User, Pass     string
		Body           string
		ExpectedStatus int
		ExpectedTotal  int
	}{
		{"ValidMessageIs201", http.MethodPost, path, sid, token, form, http.StatusCreated, 1},
		{"WrongTokenIs401", http.MethodPost, path, sid, "nope", form, http.StatusUnauthorized, 0},
		{"OtherAccountIs401", http.MethodPost, "/2010-04-01/Accounts/ACother/Messages.json", "ACother", token, form, http.StatusUnauthorized, 0},
		{"OtherPathIs404", http.MethodPost, "/2010-04-01/Accounts/" + sid + "/Calls.json", sid, token, form, http.StatusNotFound, 0},
		{"GetIs404", http.MethodGet, path, sid, token, "", http.StatusNotFound, 0},
		{"NoBodyIs400", http.MethodPost, path, sid, token, url.Values{"To": {"+12015550123"}}.Encode(), http.StatusBadRequest, 0},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			s := NewSink(sid, token)
			r := httptest.NewRequest(tt.Method, tt.Path, strings.NewReader(tt.Body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.SetBasicAuth(tt.User, tt.Pass)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tt.ExpectedStatus {
				t.Errorf("status %d, want %d", w.Code, tt.ExpectedStatus)
			}
			if s.Total() != tt.ExpectedTotal {
				t.Errorf("Total = %d, want %d", s.Total(), tt.ExpectedTotal)
			}
			if w.Code == http.StatusCreated {
				var got struct{ SID string }
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || !strings.HasPrefix(got.SID, "SM") || len(got.SID) != 34 {
					t.Errorf("answer %s: want a Twilio-shaped sid", w.Body)
				}
			}
		})
	}
}

func TestVerifyComparesPerContact(t *testing.T) {
	send := func(s *Sink, to string, texts ...string) {
		for _, text := range texts {
			if _, err := s.Send(context.Background(), &engine.Outbound{Channel: engine.SMS, Address: to, Text: text}); err != nil {
				t.Fatal(err)
			}
		}
	}
	res := &Result{expect: map[string]expectation{
		"+12015550001": {replies: 2, final: "bye"},
		"+12015550002": {replies: 1}, // stopped mid-script: no final
	}}
	tests := []struct {
		Label    string
		Send     func(*Sink)
		Expected Verification
	}{
		{"AllAsPlanned", func(s *Sink) {
			send(s, "+12015550001", "hi", "ok bye")
			send(s, "+12015550002", "anything")
		}, Verification{Contacts: 2, Complete: 2}},
		{"MissingReply", func(s *Sink) {
			send(s, "+12015550001", "ok bye")
			send(s, "+12015550002", "anything")
		}, Verification{Contacts: 2, Complete: 1, Missing: 1}},
		{"ExtraReply", func(s *Sink) {
			send(s, "+12015550001", "hi", "hi", "ok bye")
			send(s, "+12015550002", "anything")
		}, Verification{Contacts: 2, Complete: 1, Extra: 1}},
		{"WrongEnd", func(s *Sink) {
			send(s, "+12015550001", "hi", "call us")
			send(s, "+12015550002", "anything")
		}, Verification{Contacts: 2, Complete: 1, WrongEnd: 1}},
		{"NothingArrived", func(*Sink) {}, Verification{Contacts: 2, Missing: 3, WrongEnd: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			s := NewSink("AC", "t")
			tt.Send(s)
			got := s.Verify(context.Background(), res, 0)
			if got != tt.Expected {
				t.Errorf("Verify = %+v, want %+v", got, tt.Expected)
			}
			if got.OK() != (tt.Expected.Complete == tt.Expected.Contacts) {
				t.Errorf("OK = %v", got.OK())
			}
		})
	}
}

// ReplyLatency times each measured webhook's first reply, from when the
// webhook was sent to when that reply came; DeliveryRate counts the
// replies a second from the first to the last.
func TestReplyLatencyAndDeliveryRate(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	s := NewSink("AC", "t")
	var at time.Time
	s.now = func() time.Time { return at }
	arrive := func(offset time.Duration, to string) {
		at = t0.Add(offset)
		if _, err := s.Send(context.Background(), &engine.Outbound{Channel: engine.SMS, Address: to, Text: "reply"}); err != nil {
			t.Fatal(err)
		}
	}
	// Ana's first webhook is answered by replies 0 and 1, her second by
	// reply 2; Ben's only webhook by reply 0, which never came.
	res := &Result{expect: map[string]expectation{
		"+12015550001": {replies: 3, asked: []asked{{sent: t0, first: 0}, {sent: t0.Add(time.Second), first: 2}}},
		"+12015550002": {replies: 1, asked: []asked{{sent: t0.Add(time.Second), first: 0}}},
	}}
	arrive(100*time.Millisecond, "+12015550001")
	arrive(150*time.Millisecond, "+12015550001")
	arrive(1300*time.Millisecond, "+12015550001")
	got := s.ReplyLatency(res)
	if want := (Latencies{100 * time.Millisecond, 300 * time.Millisecond}); !slices.Equal(got, want) {
		t.Errorf("ReplyLatency = %v, want %v", got, want)
	}
	// 3 replies, 2 gaps, over 1.2 s.
	if got, want := s.DeliveryRate(), 2/1.2; math.Abs(got-want) > 1e-9 {
		t.Errorf("DeliveryRate = %v, want %v", got, want)
	}
}
