package twilio_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/channels/twilio"
	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
	"github.com/safeflow/safeflow/engine"
)

const (
	patientNumber = "+14155550100"
	patientText   = "Hi Ana, your visit with Dr. Lee is confirmed."
)

var smsSID = regexp.MustCompile(`^SM[0-9a-f]{32}$`)

func sms(to, text string) *engine.Outbound {
	return &engine.Outbound{Channel: engine.SMS, Address: to, Text: text}
}

type sendCase struct {
	Label   string
	Message *engine.Outbound
	Server  func(*twiliotest.Server)
	Config  func(*twilio.Config)
	Timeout time.Duration

	ExpectedPermanent bool
	ExpectedOK        bool
	ExpectedCode      int // Twilio's error code, 0 when none
	ExpectedRequests  int
	ExpectedDeadline  bool
}

func TestSender(t *testing.T) {
	tests := []sendCase{
		{Label: "Send OK", Message: sms(patientNumber, patientText), ExpectedOK: true, ExpectedRequests: 1},
		{Label: "Unsubscribed Recipient Is Permanent", Message: sms(patientNumber, patientText),
			Server: func(s *twiliotest.Server) { s.FailNext(1, 400) }, ExpectedPermanent: true, ExpectedCode: 21610, ExpectedRequests: 1},
		{Label: "Invalid Number Is Permanent", Message: sms("4155550100", patientText),
			ExpectedPermanent: true, ExpectedCode: 21211, ExpectedRequests: 1},
		{Label: "Body Over 1600 Is Permanent", Message: sms(patientNumber, strings.Repeat("a", 1601)),
			ExpectedPermanent: true, ExpectedCode: 21617, ExpectedRequests: 1},
		{Label: "Wrong Token Is Permanent", Message: sms(patientNumber, patientText),
			Config: func(c *twilio.Config) { c.AuthToken = "wrong" }, ExpectedPermanent: true, ExpectedCode: 20003, ExpectedRequests: 1},
		{Label: "Wrong Account Is Permanent", Message: sms(patientNumber, patientText),
			Config: func(c *twilio.Config) { c.AccountSID = "ACffffffffffffffffffffffffffffffff" }, ExpectedPermanent: true, ExpectedCode: 20003, ExpectedRequests: 1},
		{Label: "Missing From Is Permanent", Message: sms(patientNumber, patientText),
			Config: func(c *twilio.Config) { c.From = "" }, ExpectedPermanent: true, ExpectedCode: 21603, ExpectedRequests: 1},
		{Label: "Server Error Is Retryable", Message: sms(patientNumber, patientText),
			Server: func(s *twiliotest.Server) { s.FailNext(1, 500) }, ExpectedCode: 20500, ExpectedRequests: 1},
		{Label: "Rate Limit Is Retryable", Message: sms(patientNumber, patientText),
			Server: func(s *twiliotest.Server) { s.FailNext(1, 429) }, ExpectedCode: 20429, ExpectedRequests: 1},
		{Label: "Outage Is Retryable", Message: sms(patientNumber, patientText),
			Server: func(s *twiliotest.Server) { s.SetDown(true) }, ExpectedCode: 20500, ExpectedRequests: 1},
		{Label: "Connection Refused Is Retryable", Message: sms(patientNumber, patientText),
			Server: func(s *twiliotest.Server) { s.Close() }},
		{Label: "Context Timeout Is Retryable", Message: sms(patientNumber, patientText),
			Server:  func(s *twiliotest.Server) { s.SetDelay(5 * time.Second) },
			Timeout: 50 * time.Millisecond, ExpectedDeadline: true, ExpectedRequests: 1},
		{Label: "Sensitive Message Refused Before Sending", Message: &engine.Outbound{Channel: engine.SMS,
			Address: patientNumber, Text: patientText, Sensitive: true}, ExpectedPermanent: true},
		{Label: "Messenger Message Refused", Message: &engine.Outbound{Channel: engine.Messenger,
			Address: patientNumber, Text: patientText}, ExpectedPermanent: true},
		{Label: "No Recipient Refused", Message: sms("", patientText), ExpectedPermanent: true},
		{Label: "No Text Refused", Message: sms(patientNumber, ""), ExpectedPermanent: true},
		{Label: "Nil Message Refused", ExpectedPermanent: true},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			srv := twiliotest.NewServer(t, testSID, testToken)
			cfg := srv.Config()
			cfg.From = "+14155550199"
			cfg.PublicURL = publicURL
			if tc.Config != nil {
				tc.Config(&cfg)
			}
			if tc.Server != nil {
				tc.Server(srv)
			}
			ctx := t.Context()
			if tc.Timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.Timeout)
				defer cancel()
			}
			start := time.Now()
			sid, err := twilio.NewSender(cfg, nil).Send(ctx, tc.Message)
			if tc.ExpectedOK {
				if err != nil {
					t.Fatalf("Send() error = %v", err)
				}
				if !smsSID.MatchString(sid) {
					t.Errorf("sid = %q, want SM + 32 hex", sid)
				}
				msgs := srv.Messages()
				want := twiliotest.Message{To: tc.Message.Address, From: "+14155550199", Body: tc.Message.Text,
					StatusCallback: statusURL, SID: sid}
				if len(msgs) != 1 || msgs[0] != want {
					t.Errorf("server recorded %+v, want [%+v]", msgs, want)
				}
			} else {
				if err == nil {
					t.Fatalf("Send() = %q, nil; want an error", sid)
				}
				if got := errors.Is(err, engine.ErrPermanent); got != tc.ExpectedPermanent {
					t.Errorf("errors.Is(err, ErrPermanent) = %v, want %v (err: %v)", got, tc.ExpectedPermanent, err)
				}
				var apiErr *twilio.APIError
				code := 0
				if errors.As(err, &apiErr) {
					code = apiErr.Code
				}
				if code != tc.ExpectedCode {
					t.Errorf("Twilio error code = %d, want %d (err: %v)", code, tc.ExpectedCode, err)
				}
				if got := errors.Is(err, context.DeadlineExceeded); got != tc.ExpectedDeadline {
					t.Errorf("errors.Is(err, DeadlineExceeded) = %v, want %v", got, tc.ExpectedDeadline)
				}
				if len(srv.Messages()) != 0 {
					t.Errorf("a failed send was recorded as accepted")
				}
				assertClean(t, err, tc.Message)
			}
			if tc.Timeout > 0 && time.Since(start) > time.Second {
				t.Errorf("Send took %v; the context timeout was not respected", time.Since(start))
			}
			if tc.Label != "Connection Refused Is Retryable" {
				if got := srv.Requests(); got != tc.ExpectedRequests {
					t.Errorf("server saw %d requests, want %d", got, tc.ExpectedRequests)
				}
			}
		})
	}
}

// assertClean fails when err's text holds the recipient, the message text
// or the auth token, in any spelling.
func assertClean(t *testing.T, err error, m *engine.Outbound) {
	t.Helper()
	msg := err.Error()
	secrets := []string{testToken, "5550100", "555-0100", "555 0100"}
	if m != nil {
		secrets = append(secrets, m.Address, m.Text)
	}
	for _, s := range secrets {
		if len(s) >= 4 && strings.Contains(msg, s) {
			t.Errorf("error %q contains %q", msg, s)
		}
	}
}

// TestSenderErrorAnswers plays raw answers from testdata and hostile ones
// that quote the request back, and checks both the classification and
// that nothing we sent shows in the error.
func TestSenderErrorAnswers(t *testing.T) {
	tests := []struct {
		Label       string
		Status      int
		ContentType string
		Body        string

		ExpectedPermanent bool
		ExpectedCode      int
		ExpectedContains  string
		ExpectedSID       string
	}{
		{Label: "Created", Status: 201, ContentType: "application/json", Body: readTestdata(t, "api_message_created.json"),
			ExpectedSID: "SM3c4d5e6f708192a3b4c5d6e7f8091a2b"},
		{Label: "Invalid Number Quoted Back", Status: 400, ContentType: "application/json", Body: readTestdata(t, "api_error_21211.json"),
			ExpectedPermanent: true, ExpectedCode: 21211, ExpectedContains: "is not a valid phone number"},
		{Label: "Rate Limited", Status: 429, ContentType: "application/json", Body: readTestdata(t, "api_error_20429.json"),
			ExpectedCode: 20429, ExpectedContains: "Too Many Requests"},
		{Label: "Gateway HTML", Status: 502, ContentType: "text/html", Body: readTestdata(t, "api_error_gateway.html"),
			ExpectedContains: "HTTP 502"},
		{Label: "Body And Number Quoted Back", Status: 400, ContentType: "application/json",
			Body:              `{"code":"30007","message":"Message '` + patientText + `' to +1 (415) 555-0100 / 14155550100 was filtered","status":400}`,
			ExpectedPermanent: true, ExpectedCode: 30007, ExpectedContains: "was filtered"},
		{Label: "Created Without SID", Status: 201, ContentType: "application/json", Body: `{"status":"queued"}`,
			ExpectedPermanent: true, ExpectedContains: "without a message sid"},
		{Label: "Created Not JSON", Status: 201, ContentType: "text/plain", Body: "ok",
			ExpectedPermanent: true},
		{Label: "Forbidden HTML", Status: 403, ContentType: "text/html", Body: "<p>" + patientText + "</p>",
			ExpectedPermanent: true, ExpectedContains: "HTTP 403"},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ContentType)
				w.WriteHeader(tc.Status)
				_, _ = w.Write([]byte(tc.Body))
			}))
			defer srv.Close()
			cfg := twilio.Config{AccountSID: testSID, AuthToken: testToken, From: "+14155550199", APIURL: srv.URL, PublicURL: publicURL}
			m := sms(patientNumber, patientText)
			sid, err := twilio.NewSender(cfg, srv.Client()).Send(t.Context(), m)
			if tc.ExpectedSID != "" {
				if err != nil || sid != tc.ExpectedSID {
					t.Fatalf("Send() = %q, %v; want %q", sid, err, tc.ExpectedSID)
				}
				return
			}
			if err == nil {
				t.Fatalf("Send() = %q, nil; want an error", sid)
			}
			if got := errors.Is(err, engine.ErrPermanent); got != tc.ExpectedPermanent {
				t.Errorf("permanent = %v, want %v (err: %v)", got, tc.ExpectedPermanent, err)
			}
			var apiErr *twilio.APIError
			if errors.As(err, &apiErr) && apiErr.Code != tc.ExpectedCode {
				t.Errorf("code = %d, want %d", apiErr.Code, tc.ExpectedCode)
			}
			if !strings.Contains(err.Error(), tc.ExpectedContains) {
				t.Errorf("error %q does not contain %q", err, tc.ExpectedContains)
			}
			assertClean(t, err, m)
		})
	}
}

// TestSenderRequest checks what goes on the wire: method, path, Basic auth
// and the form fields, and that the status callback is left out when no
// public URL is configured.
func TestSenderRequest(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got = r
		w.WriteHeader(201)
		_, _ = w.Write([]byte(`{"sid":"SM00000000000000000000000000000000"}`))
	}))
	defer srv.Close()
	cfg := twilio.Config{AccountSID: testSID, AuthToken: testToken, From: "+14155550199", APIURL: srv.URL + "/"}
	if _, err := twilio.NewSender(cfg, nil).Send(t.Context(), sms(patientNumber, patientText)); err != nil {
		t.Fatal(err)
	}
	user, pass, ok := got.BasicAuth()
	switch {
	case got.Method != http.MethodPost:
		t.Errorf("method %s", got.Method)
	case got.URL.Path != "/2010-04-01/Accounts/"+testSID+"/Messages.json":
		t.Errorf("path %s", got.URL.Path)
	case !ok || user != testSID || pass != testToken:
		t.Errorf("basic auth %q/%v", user, ok)
	case got.PostForm.Get("To") != patientNumber || got.PostForm.Get("From") != "+14155550199" || got.PostForm.Get("Body") != patientText:
		t.Errorf("form %v", got.PostForm)
	case got.PostForm.Has("StatusCallback"):
		t.Errorf("StatusCallback sent without a public URL: %q", got.PostForm.Get("StatusCallback"))
	}
}
