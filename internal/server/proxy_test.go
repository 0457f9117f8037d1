package server_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/server"
)

// Behind a trusted proxy, the audit log records the address the proxy
// names for a webhook's sender, not the proxy's own; anyone else's
// X-Forwarded-For is ignored.
func TestWebhookSourceBehindAProxy(t *testing.T) {
	const token = "test-auth-token"
	for _, tc := range []struct {
		name, trusted, want string
	}{
		{"TrustedProxy", "127.0.0.1", "203.0.113.7"},
		{"NoTrustedProxy", "", "127.0.0.1"},
		{"OtherProxyTrusted", "10.0.0.0/8", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := listen(t)
			cfg := devConfig(t, ln, examples)
			cfg.TwilioAuthToken = token
			cfg.TrustedProxies = tc.trusted
			cfg.Check()
			r := start(t, ln, cfg, server.WithSender(engine.SMS, &recorder{}))
			req := twiliotest.SignedInbound(token, cfg.PublicURL+"/webhooks/twilio", url.Values{
				"From": {"+12015550178"}, "Body": {"INTAKE"}, "MessageSid": {"SM00000000000000000000000000000078"}})
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			resp, err := twiliotest.Deliver(context.Background(), nil, r.URL+"/webhooks/twilio", req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("webhook: HTTP %d", resp.StatusCode)
			}
			records, err := r.Store.AuditRecords(context.Background(), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			var sources []string
			for _, rec := range records {
				if rec.Action == audit.MessageIn {
					sources = append(sources, rec.Source)
				}
			}
			if len(sources) != 1 || sources[0] != tc.want {
				t.Errorf("message.in sources %v, want [%s]", sources, tc.want)
			}
		})
	}
}
