package twilio_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/safeflow/safeflow/channels/twilio"
	"github.com/safeflow/safeflow/engine"
)

// FuzzInbound feeds the inbound handler arbitrary bodies and queries. When
// the body parses as a form it is signed correctly, so the fuzzer reaches
// the parsing of From and the call to the sink, not only the signature
// check. The handler must never panic, must answer one of its documented
// statuses, and must call the sink exactly when it answers 200.
func FuzzInbound(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.form"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), "", true)
	}
	f.Add("MessageSid=SM1&From=%2B1(415)555-0100&Body=hi", "a=1", true)
	f.Add("MessageSid=SM1&From=whatsapp%3A%2B1&Body=hi", "", true)
	f.Add("MessageSid=SM1&From=%2B999999999999999999&Body=", "", false)
	f.Add("From=;MessageSid=", "%", true)
	f.Fuzz(func(t *testing.T, body, query string, sign bool) {
		target := "http://10.0.0.5/webhooks/twilio"
		if query != "" {
			target += "?" + url.PathEscape(query)
		}
		r, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
		if err != nil {
			t.Skip()
		}
		r.RemoteAddr = "192.0.2.1:1234"
		r.Header.Set("Content-Type", formType)
		if form, err := url.ParseQuery(body); err == nil && sign {
			signed := inboundURL
			if r.URL.RawQuery != "" {
				signed += "?" + r.URL.RawQuery
			}
			r.Header.Set("X-Twilio-Signature", twilio.Signature(testToken, signed, form))
		}
		calls := 0
		sink := func(_ context.Context, in engine.Inbound) error {
			calls++
			if in.Channel != engine.SMS || !strings.HasPrefix(in.Address, "+") || in.ProviderID == "" {
				t.Errorf("sink got an unusable inbound: %+v", in)
			}
			return nil
		}
		w := httptest.NewRecorder()
		cfg := testConfig(new(strings.Builder))
		cfg.MaxBody = 4 << 10
		twilio.InboundHandler(cfg, "", sink).ServeHTTP(w, r)
		switch w.Code {
		case 200, 400, 403, 413:
		default:
			t.Fatalf("unexpected status %d", w.Code)
		}
		if (w.Code == 200) != (calls == 1) || calls > 1 {
			t.Fatalf("status %d with %d sink calls", w.Code, calls)
		}
	})
}
