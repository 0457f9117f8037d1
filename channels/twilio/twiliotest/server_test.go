package twiliotest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/safeflow/safeflow/channels/twilio"
	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
)

const (
	sid   = "AC0123456789abcdef0123456789abcdef"
	token = "tok-0123456789"
)

func TestServer(t *testing.T) {
	okForm := url.Values{"To": {"+14155550100"}, "From": {"+14155550199"}, "Body": {"hello"},
		"StatusCallback": {"https://clinic.example.com/webhooks/twilio/status"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for name, vals := range okForm {
			f[name] = vals
		}
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	path := "/2010-04-01/Accounts/" + sid + "/Messages.json"
	tests := []struct {
		Label       string
		Method      string
		Path        string
		User, Pass  string
		ContentType string
		Form        url.Values
		Setup       func(*twiliotest.Server)

		ExpectedStatus   int
		ExpectedCode     int
		ExpectedRecorded int
	}{
		{Label: "Created", Form: okForm, ExpectedStatus: 201, ExpectedRecorded: 1},
		{Label: "Wrong Password", Form: okForm, Pass: "nope", ExpectedStatus: 401, ExpectedCode: 20003},
		{Label: "No Auth", Form: okForm, User: "-", ExpectedStatus: 401, ExpectedCode: 20003},
		{Label: "Other Account Path", Path: "/2010-04-01/Accounts/ACother/Messages.json", Form: okForm, ExpectedStatus: 404, ExpectedCode: 20404},
		{Label: "GET", Method: http.MethodGet, ExpectedStatus: 405, ExpectedCode: 20004},
		{Label: "JSON Body", ContentType: "application/json", Form: okForm, ExpectedStatus: 400, ExpectedCode: 20001},
		{Label: "Missing To", Form: with("To", ""), ExpectedStatus: 400, ExpectedCode: 21604},
		{Label: "Missing From", Form: with("From", ""), ExpectedStatus: 400, ExpectedCode: 21603},
		{Label: "Missing Body", Form: with("Body", ""), ExpectedStatus: 400, ExpectedCode: 21602},
		{Label: "To Not E.164", Form: with("To", "415-555-0100"), ExpectedStatus: 400, ExpectedCode: 21211},
		{Label: "Body 1600 Characters", Form: with("Body", strings.Repeat("é", 1600)), ExpectedStatus: 201, ExpectedRecorded: 1},
		{Label: "Body 1601 Characters", Form: with("Body", strings.Repeat("a", 1601)), ExpectedStatus: 400, ExpectedCode: 21617},
		{Label: "Relative Status Callback", Form: with("StatusCallback", "/status"), ExpectedStatus: 400, ExpectedCode: 21609},
		{Label: "Fail Next 400", Form: okForm, Setup: func(s *twiliotest.Server) { s.FailNext(1, 400) }, ExpectedStatus: 400, ExpectedCode: 21610},
		{Label: "Fail Next 503", Form: okForm, Setup: func(s *twiliotest.Server) { s.FailNext(2, 503) }, ExpectedStatus: 503, ExpectedCode: 20500},
		{Label: "Down", Form: okForm, Setup: func(s *twiliotest.Server) { s.SetDown(true) }, ExpectedStatus: 500, ExpectedCode: 20500},
		{Label: "Down Then Up", Form: okForm, Setup: func(s *twiliotest.Server) { s.SetDown(true); s.SetDown(false) }, ExpectedStatus: 201, ExpectedRecorded: 1},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			srv := twiliotest.NewServer(t, sid, token)
			if tc.Setup != nil {
				tc.Setup(srv)
			}
			method, p, ct := tc.Method, tc.Path, tc.ContentType
			if method == "" {
				method = http.MethodPost
			}
			if p == "" {
				p = path
			}
			if ct == "" {
				ct = "application/x-www-form-urlencoded"
			}
			req, _ := http.NewRequest(method, srv.URL+p, strings.NewReader(tc.Form.Encode()))
			req.Header.Set("Content-Type", ct)
			user, pass := sid, token
			if tc.Pass != "" {
				pass = tc.Pass
			}
			if tc.User != "-" {
				req.SetBasicAuth(user, pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var a map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
				t.Fatalf("answer is not JSON: %v", err)
			}
			if resp.StatusCode != tc.ExpectedStatus {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tc.ExpectedStatus, a)
			}
			if tc.ExpectedCode != 0 {
				if code, _ := a["code"].(float64); int(code) != tc.ExpectedCode || a["more_info"] == nil || a["message"] == "" {
					t.Errorf("error answer %v, want code %d", a, tc.ExpectedCode)
				}
			} else {
				if !regexp.MustCompile(`^SM[0-9a-f]{32}$`).MatchString(a["sid"].(string)) || a["status"] != "queued" ||
					a["account_sid"] != sid || a["direction"] != "outbound-api" {
					t.Errorf("created answer %v is not Twilio-shaped", a)
				}
			}
			msgs := srv.Messages()
			if len(msgs) != tc.ExpectedRecorded {
				t.Fatalf("recorded %d messages, want %d", len(msgs), tc.ExpectedRecorded)
			}
			if len(msgs) == 1 && (msgs[0].To != tc.Form.Get("To") || msgs[0].Body != tc.Form.Get("Body") ||
				msgs[0].StatusCallback != tc.Form.Get("StatusCallback") || msgs[0].SID != a["sid"]) {
				t.Errorf("recorded %+v", msgs[0])
			}
		})
	}
}

func TestFailNextCounts(t *testing.T) {
	srv := twiliotest.NewServer(t, sid, token)
	srv.FailNext(2, 500)
	form := url.Values{"To": {"+14155550100"}, "From": {"+14155550199"}, "Body": {"x"}}
	var got []int
	for range 3 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/2010-04-01/Accounts/"+sid+"/Messages.json", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(sid, token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got = append(got, resp.StatusCode)
	}
	if got[0] != 500 || got[1] != 500 || got[2] != 201 || srv.Requests() != 3 {
		t.Fatalf("statuses %v, requests %d; want 500 500 201, 3", got, srv.Requests())
	}
}

func TestSignedInbound(t *testing.T) {
	const u = "https://clinic.example.com/webhooks/twilio?x=1"
	r := twiliotest.SignedInbound(token, u, url.Values{"Body": {"Hello 🙂"}, "MessageSid": {"SMabc"}, "ToZip": nil, "NewField": {"a", "b"}})
	if err := r.ParseForm(); err != nil {
		t.Fatal(err)
	}
	f := r.PostForm
	for _, name := range []string{"AccountSid", "ApiVersion", "Body", "From", "To", "MessageSid", "NumMedia", "NumSegments", "SmsSid", "SmsStatus", "SmsMessageSid"} {
		if !f.Has(name) {
			t.Errorf("form lacks %s", name)
		}
	}
	switch {
	case f.Has("ToZip"):
		t.Error("a field given with no values was not removed")
	case f.Get("SmsSid") != "SMabc" || f.Get("SmsMessageSid") != "SMabc":
		t.Errorf("SmsSid %q does not follow MessageSid", f.Get("SmsSid"))
	case len(f["NewField"]) != 2:
		t.Errorf("repeated field %v", f["NewField"])
	case !twilio.Valid(token, u, f, r.Header.Get("X-Twilio-Signature")):
		t.Error("signature does not verify over the public URL and every field")
	case r.Header.Get("Content-Type") != "application/x-www-form-urlencoded":
		t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	st := twiliotest.SignedStatus(token, "https://clinic.example.com/s", url.Values{"MessageStatus": {"sent"}})
	_ = st.ParseForm()
	if st.PostForm.Get("MessageStatus") != "sent" || st.PostForm.Get("SmsStatus") != "sent" ||
		!twilio.Valid(token, "https://clinic.example.com/s", st.PostForm, st.Header.Get("X-Twilio-Signature")) {
		t.Errorf("status callback %v is not signed or not shaped like Twilio's", st.PostForm)
	}
}

func TestSegments(t *testing.T) {
	tests := []struct {
		Label    string
		Body     string
		Expected int
	}{
		{"Empty", "", 1},
		{"160 GSM", strings.Repeat("a", 160), 1},
		{"161 GSM", strings.Repeat("a", 161), 2},
		{"306 GSM", strings.Repeat("a", 306), 2},
		{"307 GSM", strings.Repeat("a", 307), 3},
		{"Extension Counts Twice", strings.Repeat("€", 80), 1},
		{"Extension Over", strings.Repeat("€", 81), 2},
		{"70 UCS-2", strings.Repeat("ж", 70), 1},
		{"71 UCS-2", strings.Repeat("ж", 71), 2},
		{"Emoji Takes Two Units", strings.Repeat("🙂", 35), 1},
		{"Emoji Over", strings.Repeat("🙂", 36), 2},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			if got := twiliotest.Segments(tc.Body); got != tc.Expected {
				t.Errorf("Segments() = %d, want %d", got, tc.Expected)
			}
		})
	}
}
