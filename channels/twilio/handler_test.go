package twilio_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/safeflow/safeflow/channels/twilio"
	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
	"github.com/safeflow/safeflow/engine"
)

const (
	testToken  = "f3c1a9d2e8b74c6a9d0e1f2a3b4c5d6e"
	testSID    = "AC9a1b2c3d4e5f60718293a4b5c6d7e8f9"
	publicURL  = "https://clinic.example.com"
	inboundURL = publicURL + "/webhooks/twilio"
	statusURL  = publicURL + "/webhooks/twilio/status"
	// internalURL is where the request really arrives: behind a proxy, with
	// a Host header the caller chooses.
	internalURL = "http://10.0.0.5:8080"
	emptyTwiML  = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`
)

func testConfig(logs io.Writer) twilio.Config {
	return twilio.Config{
		AccountSID: testSID,
		AuthToken:  testToken,
		From:       "+14155550199",
		PublicURL:  publicURL,
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// How a test request is signed.
type signing int

const (
	signPublic        signing = iota // over the public URL, as Twilio does
	signPublicPort                   // over the public URL with :443 spelled out
	signHost                         // over the URL the request arrived at (Host header)
	signNone                         // no X-Twilio-Signature at all
	signWrongToken                   // with another account's token
	signThenAdd                      // signed, then a parameter appended
	signKnownOnly                    // over every parameter except one Twilio added recently
	signWithoutQuery                 // over the public URL without its query string
	signRawBody                      // header "garbage": the body is not a valid form
	signPublicNoParam                // over the URL only, ignoring the parameters
)

// request builds a webhook request for body, arriving at internalURL+path+query.
func request(t testing.TB, method, path, query, contentType, body string, how signing) *http.Request {
	t.Helper()
	target := internalURL + path
	signedURL := publicURL + path
	if query != "" {
		target += "?" + query
		signedURL += "?" + query
	}
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	form, err := url.ParseQuery(body)
	if err != nil {
		how = signRawBody
	}
	var sig string
	switch how {
	case signPublic:
		sig = twilio.Signature(testToken, signedURL, form)
	case signPublicPort:
		sig = twilio.Signature(testToken, strings.Replace(signedURL, "clinic.example.com", "clinic.example.com:443", 1), form)
	case signHost:
		sig = twilio.Signature(testToken, "http://"+r.Host+r.URL.RequestURI(), form)
	case signNone:
		return r
	case signWrongToken:
		sig = twilio.Signature("0123456789abcdef0123456789abcdef", signedURL, form)
	case signThenAdd:
		sig = twilio.Signature(testToken, signedURL, form)
		r = httptest.NewRequest(method, target, strings.NewReader(body+"&Body=STOP"))
		r.Header.Set("Content-Type", contentType)
	case signKnownOnly:
		known := url.Values{}
		for k, v := range form {
			if k != "AddOns" && k != "ChannelMetadata" {
				known[k] = v
			}
		}
		sig = twilio.Signature(testToken, signedURL, known)
	case signWithoutQuery:
		sig = twilio.Signature(testToken, publicURL+path, form)
	case signRawBody:
		sig = twilio.Signature(testToken, signedURL, nil)
	case signPublicNoParam:
		sig = twilio.Signature(testToken, signedURL, nil)
	}
	r.Header.Set("X-Twilio-Signature", sig)
	return r
}

const formType = "application/x-www-form-urlencoded"

type inboundCase struct {
	Label       string
	Method      string // POST when empty
	Query       string
	ContentType string // form when empty; "-" for none
	Data        string
	Sign        signing
	RequestID   string
	// UnknownLength sends the body without a Content-Length, as a chunked
	// request does, so only reading it can find it too large.
	UnknownLength bool
	SinkErr       error
	Config        func(*twilio.Config)

	ExpectedRespStatus   int
	ExpectedBodyContains string
	// ExpectedInbound is what the sink receives; nil means it must not be
	// called. RequestID is checked separately.
	ExpectedInbound *engine.Inbound
}

func TestInbound(t *testing.T) {
	sms := readTestdata(t, "inbound_sms.form")
	mms := readTestdata(t, "inbound_mms.form")
	unknown := readTestdata(t, "inbound_unknown_params.form")
	smsInbound := &engine.Inbound{Channel: engine.SMS, Address: "+14155550100", Text: "INTAKE",
		ProviderID: "SM1f0e8ae6ade43cb3c0ce4525424e404f", Source: "192.0.2.1"}
	withForm := func(base string, set map[string]string) string {
		v, _ := url.ParseQuery(base)
		for k, val := range set {
			if val == "" {
				v.Del(k)
			} else {
				v.Set(k, val)
			}
		}
		return v.Encode()
	}
	tests := []inboundCase{
		{Label: "Receive Valid", Data: sms, Sign: signPublic,
			ExpectedRespStatus: 200, ExpectedBodyContains: emptyTwiML, ExpectedInbound: smsInbound},
		{Label: "Receive Signed With Explicit Default Port", Data: sms, Sign: signPublicPort,
			ExpectedRespStatus: 200, ExpectedInbound: smsInbound},
		{Label: "Receive Public URL With Trailing Slash In Config", Data: sms, Sign: signPublic,
			Config:             func(c *twilio.Config) { c.PublicURL += "/" },
			ExpectedRespStatus: 200, ExpectedInbound: smsInbound},
		{Label: "Receive MMS Without Text From Abroad", Data: mms, Sign: signPublic,
			ExpectedRespStatus: 200, ExpectedInbound: &engine.Inbound{Channel: engine.SMS, Address: "+442079460958",
				ProviderID: "MM5b7d3c0c9a4e4f7e8d2b1a0c9f8e7d6c", Source: "192.0.2.1"}},
		{Label: "Receive Unknown Params Signed Too", Data: unknown, Sign: signPublic,
			ExpectedRespStatus: 200, ExpectedInbound: &engine.Inbound{Channel: engine.SMS, Address: "+14155550100",
				Text: "Café 🙂 yes", ProviderID: "SMaa11bb22cc33dd44ee55ff6677889900", Source: "192.0.2.1"}},
		{Label: "Receive Query String In Webhook URL", Query: "clinic=north&v=2", Data: sms, Sign: signPublic,
			ExpectedRespStatus: 200, ExpectedInbound: smsInbound},
		{Label: "Receive National Number Normalised In Region", Data: withForm(sms, map[string]string{"From": "(415) 555-0100"}),
			Sign: signPublic, ExpectedRespStatus: 200, ExpectedInbound: smsInbound},
		{Label: "Receive National Number In Configured Region", Data: withForm(sms, map[string]string{"From": "020 7946 0958"}),
			Sign: signPublic, Config: func(c *twilio.Config) { c.Region = "gb" },
			ExpectedRespStatus: 200, ExpectedInbound: &engine.Inbound{Channel: engine.SMS, Address: "+442079460958",
				Text: "INTAKE", ProviderID: "SM1f0e8ae6ade43cb3c0ce4525424e404f", Source: "192.0.2.1"}},

		{Label: "Signature Missing", Data: sms, Sign: signNone, ExpectedRespStatus: 403},
		{Label: "Signature Wrong Token", Data: sms, Sign: signWrongToken, ExpectedRespStatus: 403},
		{Label: "Signature Over Host Header Instead Of Public URL", Data: sms, Sign: signHost, ExpectedRespStatus: 403},
		{Label: "Signature Then Param Added", Data: sms, Sign: signThenAdd, ExpectedRespStatus: 403},
		{Label: "Signature Leaving Out Unknown Params", Data: unknown, Sign: signKnownOnly, ExpectedRespStatus: 403},
		{Label: "Signature Over URL Only", Data: sms, Sign: signPublicNoParam, ExpectedRespStatus: 403},
		{Label: "Signature Without Query String", Query: "clinic=north", Data: sms, Sign: signWithoutQuery, ExpectedRespStatus: 403},
		{Label: "Signature Checked Before Missing Fields", Data: withForm(sms, map[string]string{"MessageSid": ""}),
			Sign: signNone, ExpectedRespStatus: 403},
		{Label: "Empty Auth Token Refuses Everything", Data: sms, Sign: signPublic,
			Config:             func(c *twilio.Config) { c.AuthToken = "" },
			ExpectedRespStatus: 500, ExpectedBodyContains: "internal error"},
		{Label: "Missing Public URL Refuses Everything", Data: sms, Sign: signHost,
			Config:             func(c *twilio.Config) { c.PublicURL = "" },
			ExpectedRespStatus: 500},

		{Label: "Method GET", Method: http.MethodGet, Sign: signNone, ExpectedRespStatus: 405},
		{Label: "Malformed Form", Data: "Body=%zz&From=%2B14155550100", Sign: signPublic,
			ExpectedRespStatus: 400, ExpectedBodyContains: "malformed"},
		{Label: "Malformed Query", Query: "a=%zz", Data: sms, Sign: signPublic, ExpectedRespStatus: 400},
		{Label: "JSON Body", ContentType: "application/json", Data: `{"Body":"hi"}`, Sign: signPublic, ExpectedRespStatus: 400},
		{Label: "No Content Type", ContentType: "-", Data: sms, Sign: signPublic, ExpectedRespStatus: 400},
		{Label: "Form With Charset", ContentType: formType + "; charset=utf-8", Data: sms, Sign: signPublic,
			ExpectedRespStatus: 200, ExpectedInbound: smsInbound},
		{Label: "Oversized", Data: sms + "&Pad=" + strings.Repeat("a", 70<<10), Sign: signPublic, ExpectedRespStatus: 413},
		{Label: "Oversized Chunked", Data: sms + "&Pad=" + strings.Repeat("a", 70<<10), Sign: signPublic,
			UnknownLength: true, ExpectedRespStatus: 413},
		{Label: "Chunked Within Limit", Data: sms, Sign: signPublic, UnknownLength: true,
			ExpectedRespStatus: 200, ExpectedInbound: smsInbound},
		{Label: "Oversized Under Small Limit", Data: sms, Sign: signPublic,
			Config: func(c *twilio.Config) { c.MaxBody = 100 }, ExpectedRespStatus: 413},
		{Label: "Missing MessageSid", Data: withForm(sms, map[string]string{"MessageSid": ""}), Sign: signPublic,
			ExpectedRespStatus: 400, ExpectedBodyContains: "MessageSid"},
		{Label: "Missing From", Data: withForm(sms, map[string]string{"From": ""}), Sign: signPublic,
			ExpectedRespStatus: 400, ExpectedBodyContains: "From"},
		{Label: "From Not A Phone Number", Data: withForm(sms, map[string]string{"From": "whatsapp:+14155550100"}),
			Sign: signPublic, ExpectedRespStatus: 400, ExpectedBodyContains: "not a phone number"},
		{Label: "From Alphanumeric", Data: withForm(sms, map[string]string{"From": "CLINIC"}),
			Sign: signPublic, ExpectedRespStatus: 400},
		{Label: "Sink Fails", Data: sms, Sign: signPublic, SinkErr: errors.New("database is locked"),
			ExpectedRespStatus: 500, ExpectedBodyContains: "internal error", ExpectedInbound: smsInbound},
		{Label: "Request ID From Caller", Data: sms, Sign: signPublic, RequestID: "req-42",
			ExpectedRespStatus: 200, ExpectedInbound: smsInbound},
	}
	var logs bytes.Buffer
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			cfg := testConfig(&logs)
			if tc.Config != nil {
				tc.Config(&cfg)
			}
			var got []engine.Inbound
			sink := func(_ context.Context, in engine.Inbound) error {
				got = append(got, in)
				return tc.SinkErr
			}
			method := tc.Method
			if method == "" {
				method = http.MethodPost
			}
			ct := tc.ContentType
			switch ct {
			case "":
				ct = formType
			case "-":
				ct = ""
			}
			r := request(t, method, "/webhooks/twilio", tc.Query, ct, tc.Data, tc.Sign)
			if tc.RequestID != "" {
				r.Header.Set("X-Request-Id", tc.RequestID)
			}
			if tc.UnknownLength {
				r.ContentLength = -1
			}
			w := httptest.NewRecorder()
			twilio.InboundHandler(cfg, "/webhooks/twilio", sink).ServeHTTP(w, r)

			if w.Code != tc.ExpectedRespStatus {
				t.Fatalf("status = %d, want %d; body %q", w.Code, tc.ExpectedRespStatus, w.Body.String())
			}
			if !strings.Contains(w.Body.String(), tc.ExpectedBodyContains) {
				t.Errorf("body %q does not contain %q", w.Body.String(), tc.ExpectedBodyContains)
			}
			if w.Code == 200 {
				if ctype := w.Header().Get("Content-Type"); !strings.HasPrefix(ctype, "text/xml") {
					t.Errorf("Content-Type = %q, want text/xml", ctype)
				}
				if w.Body.String() != emptyTwiML {
					t.Errorf("body = %q, want empty TwiML", w.Body.String())
				}
			}
			if tc.ExpectedInbound == nil {
				if len(got) != 0 {
					t.Fatalf("sink called %d times on a rejected request", len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("sink called %d times, want once", len(got))
			}
			reqID := got[0].RequestID
			if reqID == "" || w.Header().Get("X-Request-Id") != reqID {
				t.Errorf("request id %q, response header %q", reqID, w.Header().Get("X-Request-Id"))
			}
			if tc.RequestID != "" && reqID != tc.RequestID {
				t.Errorf("request id = %q, want the caller's %q", reqID, tc.RequestID)
			}
			got[0].RequestID = ""
			if diff := cmp.Diff(*tc.ExpectedInbound, got[0]); diff != "" {
				t.Errorf("inbound (-want +got):\n%s", diff)
			}
		})
	}
	// SECURITY #19: rejections and failures are logged, but never with a
	// number or message text.
	for _, secret := range []string{"4155550100", "415) 555", "INTAKE", "Café", testToken, "7946"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log output contains %q:\n%s", secret, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "missing signature") || !strings.Contains(logs.String(), "database is locked") {
		t.Errorf("log output lacks the rejections and failures it should record:\n%s", logs.String())
	}
}

// TestInboundTwiliotest drives the handler with twiliotest's signed webhooks,
// over a real HTTP connection to 127.0.0.1 as through a proxy.
func TestInboundTwiliotest(t *testing.T) {
	var got []engine.Inbound
	h := twilio.InboundHandler(testConfig(new(bytes.Buffer)), "", func(_ context.Context, in engine.Inbound) error {
		got = append(got, in)
		return nil
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	tests := []struct {
		Label              string
		SignedFor          string
		Params             url.Values
		ExpectedRespStatus int
		ExpectedText       string
	}{
		{"Receive Valid", inboundURL, url.Values{"Body": {"new"}, "From": {"+14155550123"}}, 200, "new"},
		{"Signed For The Server's Own Address", srv.URL + "/webhooks/twilio", url.Values{"Body": {"x"}}, 403, ""},
		{"Missing MessageSid", inboundURL, url.Values{"MessageSid": nil}, 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			got = nil
			req := twiliotest.SignedInbound(testToken, tc.SignedFor, tc.Params)
			resp, err := twiliotest.Deliver(t.Context(), srv.Client(), srv.URL+"/webhooks/twilio", req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.ExpectedRespStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.ExpectedRespStatus)
			}
			if tc.ExpectedText == "" {
				if len(got) != 0 {
					t.Fatalf("sink called on a rejected request")
				}
				return
			}
			if len(got) != 1 || got[0].Text != tc.ExpectedText || got[0].Address != "+14155550123" || got[0].Source != "127.0.0.1" {
				t.Fatalf("sink got %+v", got)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	delivered := readTestdata(t, "status_delivered.form")
	undelivered := readTestdata(t, "status_undelivered.form")
	tests := []struct {
		Label     string
		Method    string
		Path      string // the handler's path argument
		Data      string
		Sign      signing
		UpdateErr error

		ExpectedRespStatus int
		ExpectedStatus     *engine.DeliveryStatus
	}{
		{Label: "Delivered", Data: delivered, Sign: signPublic, ExpectedRespStatus: 200,
			ExpectedStatus: &engine.DeliveryStatus{Channel: engine.SMS, ProviderID: "SM1f0e8ae6ade43cb3c0ce4525424e404f", Status: "delivered"}},
		{Label: "Undelivered With Error Code", Data: undelivered, Sign: signPublic, ExpectedRespStatus: 200,
			ExpectedStatus: &engine.DeliveryStatus{Channel: engine.SMS, ProviderID: "SM2b3c4d5e6f708192a3b4c5d6e7f80912", Status: "undelivered", ErrorCode: "30003"}},
		{Label: "Explicit Path", Path: "/webhooks/twilio/status", Data: delivered, Sign: signPublic, ExpectedRespStatus: 200,
			ExpectedStatus: &engine.DeliveryStatus{Channel: engine.SMS, ProviderID: "SM1f0e8ae6ade43cb3c0ce4525424e404f", Status: "delivered"}},
		{Label: "Signed For Another Path", Path: "/webhooks/twilio/other", Data: delivered, Sign: signPublic, ExpectedRespStatus: 403},
		{Label: "Signature Missing", Data: delivered, Sign: signNone, ExpectedRespStatus: 403},
		{Label: "Signature Over Host Header", Data: delivered, Sign: signHost, ExpectedRespStatus: 403},
		{Label: "Signature Then Param Added", Data: delivered, Sign: signThenAdd, ExpectedRespStatus: 403},
		{Label: "Missing MessageStatus", Data: "MessageSid=SM1&AccountSid=AC1", Sign: signPublic, ExpectedRespStatus: 400},
		{Label: "Missing MessageSid", Data: "MessageStatus=sent&AccountSid=AC1", Sign: signPublic, ExpectedRespStatus: 400},
		{Label: "Malformed Form", Data: "MessageSid=%G1", Sign: signPublic, ExpectedRespStatus: 400},
		{Label: "Method GET", Method: http.MethodGet, Sign: signNone, ExpectedRespStatus: 405},
		{Label: "Update Fails", Data: delivered, Sign: signPublic, UpdateErr: errors.New("store down"), ExpectedRespStatus: 500,
			ExpectedStatus: &engine.DeliveryStatus{Channel: engine.SMS, ProviderID: "SM1f0e8ae6ade43cb3c0ce4525424e404f", Status: "delivered"}},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			var got []engine.DeliveryStatus
			update := func(_ context.Context, st engine.DeliveryStatus) error {
				got = append(got, st)
				return tc.UpdateErr
			}
			method := tc.Method
			if method == "" {
				method = http.MethodPost
			}
			r := request(t, method, "/webhooks/twilio/status", "", formType, tc.Data, tc.Sign)
			w := httptest.NewRecorder()
			twilio.StatusHandler(testConfig(new(bytes.Buffer)), tc.Path, update).ServeHTTP(w, r)
			if w.Code != tc.ExpectedRespStatus {
				t.Fatalf("status = %d, want %d; body %q", w.Code, tc.ExpectedRespStatus, w.Body.String())
			}
			if tc.ExpectedStatus == nil {
				if len(got) != 0 {
					t.Fatalf("update called on a rejected request")
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("update called %d times, want once", len(got))
			}
			if diff := cmp.Diff(*tc.ExpectedStatus, got[0]); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusTwiliotest(t *testing.T) {
	var got engine.DeliveryStatus
	h := twilio.StatusHandler(testConfig(new(bytes.Buffer)), "", func(_ context.Context, st engine.DeliveryStatus) error {
		got = st
		return nil
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, twiliotest.SignedStatus(testToken, statusURL, url.Values{
		"MessageSid": {"SM0123"}, "MessageStatus": {"failed"}, "ErrorCode": {"30006"}}))
	want := engine.DeliveryStatus{Channel: engine.SMS, ProviderID: "SM0123", Status: "failed", ErrorCode: "30006"}
	if w.Code != 200 || got != want {
		t.Fatalf("status %d, update got %+v, want %+v", w.Code, got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	good := twilio.Config{AccountSID: testSID, AuthToken: testToken, From: "+14155550199", PublicURL: publicURL}
	tests := []struct {
		Label         string
		Change        func(*twilio.Config)
		ExpectedError string
	}{
		{"OK", func(*twilio.Config) {}, ""},
		{"No Account", func(c *twilio.Config) { c.AccountSID = "" }, "AccountSID is required"},
		{"No Token", func(c *twilio.Config) { c.AuthToken = "" }, "AuthToken is required"},
		{"No From", func(c *twilio.Config) { c.From = "" }, "From is required"},
		{"No Public URL", func(c *twilio.Config) { c.PublicURL = "" }, "PublicURL is required"},
		{"Relative Public URL", func(c *twilio.Config) { c.PublicURL = "clinic.example.com" }, "PublicURL must be an absolute"},
		{"Public URL With Query", func(c *twilio.Config) { c.PublicURL += "/?a=1" }, "must not have a query"},
		{"Bad API URL", func(c *twilio.Config) { c.APIURL = "ftp://x" }, "APIURL must be an absolute"},
		{"Bad Callback Path", func(c *twilio.Config) { c.StatusCallbackPath = "status" }, "must start with /"},
		{"Unknown Region", func(c *twilio.Config) { c.Region = "XX" }, "not a known region"},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			c := good
			tc.Change(&c)
			err := c.Validate()
			if tc.ExpectedError == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.ExpectedError) {
				t.Fatalf("Validate() = %v, want %q", err, tc.ExpectedError)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatal("Validate() error contains the auth token")
			}
		})
	}
}
