package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/server"
	"github.com/safeflow/safeflow/securechat"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		Label    string
		In       string
		Expected string
	}{
		{Label: "E164", In: "from +12015550142", Expected: "from [redacted]"},
		{Label: "Dashed", In: "call 201-555-0199 now", Expected: "call [redacted] now"},
		{Label: "Parens", In: "call (201) 555-0199", Expected: "call [redacted]"},
		{Label: "DateOfBirth", In: "dob 04/23/1985.", Expected: "dob [redacted]."},
		{Label: "ISODate", In: "dob 1985-04-23", Expected: "dob [redacted]"},
		{Label: "Email", In: "mail ann.smith@example.com", Expected: "mail [redacted]"},
		{Label: "SSN", In: "ssn 123-45-6789", Expected: "ssn [redacted]"},
		{Label: "PlainWords", In: "flow reload rejected; 5 files", Expected: "flow reload rejected; 5 files"},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			if got := server.Redact(tt.In); got != tt.Expected {
				t.Errorf("Redact(%q) = %q; want %q", tt.In, got, tt.Expected)
			}
		})
	}
}

func TestRedactingHandlerCoversEveryPlace(t *testing.T) {
	buf := &syncBuffer{}
	log := slog.New(server.NewRedactingHandler(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log.With("contact", "+12015550142").WithGroup("g").Debug("message from 201-555-0199",
		"err", errors.New("bad date 04/23/1985"),
		slog.Group("nested", "mail", "ann@example.com"),
		"list", []string{"1985-04-23"})
	out := buf.String()
	for _, secret := range []string{"2015550142", "555-0199", "04/23/1985", "ann@example.com", "1985-04-23"} {
		if strings.Contains(out, secret) {
			t.Errorf("log shows %q: %s", secret, out)
		}
	}
	if !json.Valid([]byte(strings.TrimSpace(out))) {
		t.Errorf("log line is not JSON: %s", out)
	}
}

// TestLogsCarryNoPersonalData drives a whole intake through the real
// webhook, the engine and the secure segment, with the log at debug level,
// and looks for the patient's data in every line (SECURITY.md #19).
func TestLogsCarryNoPersonalData(t *testing.T) {
	const token = "test-auth-token"
	ln := listen(t)
	cfg := devConfig(t, ln, examples)
	cfg.TwilioAuthToken = token
	cfg.Check() // fills in the dev public URL
	issuer, err := securechat.NewIssuer(securechat.Config{PublicURL: cfg.PublicURL, Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	rec, page := &recorder{}, &recorder{}
	r := start(t, ln, cfg, server.WithSender(engine.SMS, rec), server.WithSender(engine.Secure, page),
		server.WithLinkIssuer(issuer))

	const patient = "+12015550142"
	webhook := cfg.PublicURL + "/webhooks/twilio"
	sms := func(body string, sign bool) int {
		t.Helper()
		req := twiliotest.SignedInbound(token, webhook, url.Values{"From": {patient}, "Body": {body}})
		if !sign {
			req.Header.Set("X-Twilio-Signature", "forged")
		}
		resp, err := twiliotest.Deliver(context.Background(), nil, r.URL+"/webhooks/twilio", req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, answer := range []string{"INTAKE", "yes", "Annabel", "Smithers", "04/23/1985", "(201) 555-0199", "annabel.smithers@example.com"} {
		if code := sms(answer, true); code != http.StatusOK {
			t.Fatalf("webhook %q: %d", answer, code)
		}
	}
	if code := sms("my dob is 04/23/1985", false); code != http.StatusForbidden {
		t.Fatalf("forged webhook: %d; want 403", code)
	}
	link := rec.waitText(t, "/s/")
	if !link.Link {
		t.Fatalf("the message with the link is not marked as one: %+v", link)
	}

	// The secure page's part, as the secure chat will drive it.
	ctx := context.Background()
	if _, err := r.Engine.SecureOpened(ctx, link.ConversationID); err != nil {
		t.Fatal(err)
	}
	for i, answer := range []string{"stabbing pain in my left knee since the fall", "Lisinopril 10mg daily", "yes", "XQZ123456"} {
		in := engine.Inbound{Channel: engine.Secure, ConversationID: link.ConversationID, Text: answer,
			ProviderID: "secure-" + string(rune('a'+i))}
		if _, err := r.Engine.Handle(ctx, in); err != nil {
			t.Fatalf("secure answer %d: %v", i, err)
		}
	}
	page.waitText(t, "member ID")
	rec.waitText(t, "Which day would you like to come in?")
	linkToken := strings.Fields(link.Text[strings.Index(link.Text, "/s/")+3:])[0]

	log := r.Log.String()
	for _, want := range []string{`"msg":"request"`, `"msg":"twilio webhook rejected"`} {
		if !strings.Contains(log, want) {
			t.Fatalf("the log has no %s line; is it at debug level?\n%s", want, log)
		}
	}
	for _, secret := range []string{
		"2015550142", "201) 555", "555-0199", "5550199", // the contact and the callback number
		"04/23/1985", "1985-04-23", // the date of birth, as typed and as stored
		"annabel.smithers", "Annabel", "Smithers", // name and e-mail
		"stabbing", "knee", "Lisinopril", "XQZ123456", // answers in the sensitive steps
		linkToken,
	} {
		if strings.Contains(log, secret) {
			t.Errorf("the log shows %q", secret)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}

// Attributes given by With are redacted when a line is logged, and land
// where the logger's groups put them: before a group, outside it; after,
// inside, ahead of the line's own.
func TestRedactingHandlerKeepsWithAttributesInTheirGroups(t *testing.T) {
	buf := &syncBuffer{}
	log := slog.New(server.NewRedactingHandler(slog.NewJSONHandler(buf, nil)))
	log.With("outer", "+12015550142").WithGroup("g").With("inner", "ann@example.com", "n", 3).Info("hello", "own", "04/23/1985")
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(buf.String())), &line); err != nil {
		t.Fatalf("log line is not JSON: %v: %s", err, buf.String())
	}
	g, _ := line["g"].(map[string]any)
	if line["outer"] != "[redacted]" || g == nil || g["inner"] != "[redacted]" || g["n"] != 3.0 || g["own"] != "[redacted]" {
		t.Errorf("log line %s; want outer at the top, inner, n and own in g, each phone, address and date redacted", buf.String())
	}
	if i, j := strings.Index(buf.String(), `"inner"`), strings.Index(buf.String(), `"own"`); i < 0 || j < i {
		t.Errorf("log line %s; want the logger's attributes before the line's own", buf.String())
	}
}

// BenchmarkRequestLogger is what each webhook pays for its logger (three
// attributes) when it logs nothing, as most do.
func BenchmarkRequestLogger(b *testing.B) {
	log := slog.New(server.NewRedactingHandler(slog.NewJSONHandler(io.Discard, nil)))
	for b.Loop() {
		l := log.With("channel", "twilio", "webhook", "inbound", "request_id", "01JEV6Q3ZQ8W4Y3K2M5N7P9R1T")
		l.Debug("not logged")
	}
}
