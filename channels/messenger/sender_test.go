package messenger_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/safeflow/safeflow/channels/messenger"
	"github.com/safeflow/safeflow/channels/messenger/messengertest"
	"github.com/safeflow/safeflow/engine"
)

const pageToken = "EAAGpageTOKENsecret123456789"

func outbound(text string, choices ...engine.OutChoice) *engine.Outbound {
	return &engine.Outbound{Channel: engine.Messenger, Address: psid, Text: text, Choices: choices}
}

func newSender(t *testing.T, opts ...messenger.SenderOption) (*messenger.Sender, *messengertest.Server) {
	t.Helper()
	srv := messengertest.NewServer(t, pageToken)
	return messenger.NewSender(srv.Config(appSecret), srv.Client(), opts...), srv
}

func TestSendText(t *testing.T) {
	s, srv := newSender(t)
	id, err := s.Send(context.Background(), outbound("Hi! This is Sunny Clinic."))
	if err != nil {
		t.Fatal(err)
	}
	got := srv.Messages()
	want := []messengertest.Sent{{Version: messenger.DefaultAPIVersion, Recipient: psid, MessagingType: "RESPONSE",
		Text: "Hi! This is Sunny Clinic.", MessageID: id}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	if id == "" {
		t.Error("no message id returned")
	}
}

func TestSendConfig(t *testing.T) {
	srv := messengertest.NewServer(t, pageToken)
	cfg := srv.Config(appSecret)
	cfg.APIURL += "/"
	cfg.APIVersion = "v19.0"
	if _, err := messenger.NewSender(cfg, nil).Send(context.Background(), outbound("hello")); err != nil {
		t.Fatalf("trailing slash in APIURL or a nil client broke sending: %v", err)
	}
	if v := srv.Messages()[0].Version; v != "v19.0" {
		t.Errorf("version in path = %q, want v19.0", v)
	}
}

func TestQuickReplies(t *testing.T) {
	many := make([]engine.OutChoice, 15)
	for i := range many {
		many[i] = engine.OutChoice{Title: fmt.Sprintf("Slot %d", i+1), Payload: fmt.Sprintf("slot-%d", i+1)}
	}
	qr := func(title, payload string) messengertest.SentQuickReply {
		return messengertest.SentQuickReply{ContentType: "text", Title: title, Payload: payload}
	}
	cases := []struct {
		Label    string
		Choices  []engine.OutChoice
		Expected []messengertest.SentQuickReply
	}{
		{Label: "short titles pass unchanged", Choices: []engine.OutChoice{{Title: "Yes", Payload: "yes"}, {Title: "No", Payload: "no"}},
			Expected: []messengertest.SentQuickReply{qr("Yes", "yes"), qr("No", "no")}},
		{Label: "exactly 20 characters is kept", Choices: []engine.OutChoice{{Title: "abcdefghijklmnopqrst", Payload: "p"}},
			Expected: []messengertest.SentQuickReply{qr("abcdefghijklmnopqrst", "p")}},
		{Label: "long title cut to 20 with an ellipsis, payload whole", Choices: []engine.OutChoice{{Title: "Wednesday afternoon appointment", Payload: "wed-pm"}},
			Expected: []messengertest.SentQuickReply{qr("Wednesday afternoon…", "wed-pm")}},
		{Label: "accented title cut by characters, not bytes", Choices: []engine.OutChoice{{Title: "Miércoles por la mañana temprano", Payload: "mie"}},
			Expected: []messengertest.SentQuickReply{qr("Miércoles por la ma…", "mie")}},
		{Label: "emoji are never split", Choices: []engine.OutChoice{{Title: strings.Repeat("😀", 25), Payload: "e"}},
			Expected: []messengertest.SentQuickReply{qr(strings.Repeat("😀", 19)+"…", "e")}},
		{Label: "space before the cut is dropped", Choices: []engine.OutChoice{{Title: "Eighteen letters x and more", Payload: "x"}},
			Expected: []messengertest.SentQuickReply{qr("Eighteen letters x…", "x")}},
		{Label: "missing payload sends the title", Choices: []engine.OutChoice{{Title: "Monday"}},
			Expected: []messengertest.SentQuickReply{qr("Monday", "Monday")}},
		{Label: "missing title shows the payload", Choices: []engine.OutChoice{{Payload: "tue"}},
			Expected: []messengertest.SentQuickReply{qr("tue", "tue")}},
		{Label: "empty choice is dropped", Choices: []engine.OutChoice{{}, {Title: "Ok", Payload: "ok"}},
			Expected: []messengertest.SentQuickReply{qr("Ok", "ok")}},
		{Label: "at most 13", Choices: many, Expected: func() []messengertest.SentQuickReply {
			var out []messengertest.SentQuickReply
			for i := 1; i <= 13; i++ {
				out = append(out, qr(fmt.Sprintf("Slot %d", i), fmt.Sprintf("slot-%d", i)))
			}
			return out
		}()},
	}
	for _, c := range cases {
		t.Run(c.Label, func(t *testing.T) {
			s, srv := newSender(t)
			if _, err := s.Send(context.Background(), outbound("Which one?", c.Choices...)); err != nil {
				t.Fatal(err)
			}
			got := srv.Messages()[0].QuickReplies
			if diff := cmp.Diff(c.Expected, got); diff != "" {
				t.Errorf("quick replies (-want +got):\n%s", diff)
			}
			for _, q := range got {
				if n := utf8.RuneCountInString(q.Title); n > messenger.MaxQuickReplyTitle || !utf8.ValidString(q.Title) {
					t.Errorf("title %q: %d characters or invalid UTF-8", q.Title, n)
				}
			}
		})
	}
}

func TestLongTextIsSplit(t *testing.T) {
	para := strings.Repeat("word ", 300) // 1500 characters
	text := strings.TrimSpace(para + "\n" + para + "\n" + para)
	s, srv := newSender(t)
	id, err := s.Send(context.Background(), outbound(text, engine.OutChoice{Title: "Yes", Payload: "yes"}))
	if err != nil {
		t.Fatal(err)
	}
	got := srv.Messages()
	if len(got) < 3 {
		t.Fatalf("sent %d messages, want at least 3", len(got))
	}
	var joined []string
	for i, m := range got {
		if n := utf8.RuneCountInString(m.Text); n > messenger.MaxTextRunes {
			t.Errorf("part %d has %d characters", i, n)
		}
		if (len(m.QuickReplies) > 0) != (i == len(got)-1) {
			t.Errorf("part %d: quick replies must ride on the last part only", i)
		}
		if strings.HasSuffix(m.Text, "wor") {
			t.Errorf("part %d ends mid-word", i)
		}
		joined = append(joined, strings.Fields(m.Text)...)
	}
	if strings.Join(joined, " ") != strings.Join(strings.Fields(text), " ") {
		t.Error("the parts do not add up to the text")
	}
	if id != got[len(got)-1].MessageID {
		t.Errorf("returned id %q, want the last part's %q", id, got[len(got)-1].MessageID)
	}
}

func TestSendRefuses(t *testing.T) {
	tooLong := engine.OutChoice{Title: "x", Payload: strings.Repeat("p", messenger.MaxQuickReplyData+1)}
	cases := []struct {
		Label    string
		Message  *engine.Outbound
		Expected error
	}{
		{Label: "sensitive message", Message: &engine.Outbound{Channel: engine.Messenger, Address: psid, Text: "Your result", Sensitive: true}, Expected: messenger.ErrSensitive},
		{Label: "other channel", Message: &engine.Outbound{Channel: engine.SMS, Address: psid, Text: "hi"}, Expected: messenger.ErrInvalidMessage},
		{Label: "no recipient", Message: &engine.Outbound{Channel: engine.Messenger, Text: "hi"}, Expected: messenger.ErrInvalidMessage},
		{Label: "blank text", Message: &engine.Outbound{Channel: engine.Messenger, Address: psid, Text: "  \n"}, Expected: messenger.ErrInvalidMessage},
		{Label: "nil message", Message: nil, Expected: messenger.ErrInvalidMessage},
		{Label: "payload over 1000 characters", Message: outbound("pick", tooLong), Expected: messenger.ErrInvalidMessage},
	}
	for _, c := range cases {
		t.Run(c.Label, func(t *testing.T) {
			s, srv := newSender(t)
			_, err := s.Send(context.Background(), c.Message)
			if !errors.Is(err, c.Expected) || !errors.Is(err, engine.ErrPermanent) {
				t.Errorf("err = %v, want %v (permanent)", err, c.Expected)
			}
			if srv.Requests() != 0 {
				t.Errorf("a refused message reached the Send API")
			}
		})
	}
}

func TestSendErrors(t *testing.T) {
	cases := []struct {
		Label             string
		Setup             func(*messengertest.Server)
		ExpectedPermanent bool
		ExpectedCode      int
	}{
		{Label: "rate limit code 613", Setup: func(s *messengertest.Server) { s.FailNext(messengertest.RateLimited) }, ExpectedCode: 613},
		{Label: "HTTP 429", Setup: func(s *messengertest.Server) { s.FailNext(messengertest.TooManyRequests) }, ExpectedCode: 4},
		{Label: "temporary failure 1200", Setup: func(s *messengertest.Server) { s.FailNext(messengertest.Temporary) }, ExpectedCode: 1200},
		{Label: "HTTP 503 without a Graph body", Setup: func(s *messengertest.Server) {
			s.FailNext(messengertest.Failure{Status: 503})
		}},
		{Label: "expired page token waits for the operator", Setup: func(s *messengertest.Server) { s.FailNext(messengertest.BadToken) }, ExpectedCode: 190},
		{Label: "server down", Setup: func(s *messengertest.Server) { s.SetDown(true) }},
		{Label: "person unavailable 551", Setup: func(s *messengertest.Server) { s.Block(psid) }, ExpectedPermanent: true, ExpectedCode: 551},
		{Label: "outside the window, code 10", Setup: func(s *messengertest.Server) { s.CloseWindow(psid) }, ExpectedPermanent: true, ExpectedCode: 10},
		{Label: "permission error 200", Setup: func(s *messengertest.Server) { s.FailNext(messengertest.NoPermission) }, ExpectedPermanent: true, ExpectedCode: 200},
		{Label: "invalid parameter 100", Setup: func(s *messengertest.Server) {
			s.FailNext(messengertest.Failure{Status: 400, Code: 100, Subcode: 2018001, Type: "OAuthException", Message: "(#100) No matching user found"})
		}, ExpectedPermanent: true, ExpectedCode: 100},
		{Label: "unknown 4xx", Setup: func(s *messengertest.Server) { s.FailNext(messengertest.Failure{Status: 404}) }, ExpectedPermanent: true},
	}
	for _, c := range cases {
		t.Run(c.Label, func(t *testing.T) {
			s, srv := newSender(t)
			c.Setup(srv)
			_, err := s.Send(context.Background(), outbound("Hello there"))
			if err == nil {
				t.Fatal("send succeeded")
			}
			if got := errors.Is(err, engine.ErrPermanent); got != c.ExpectedPermanent {
				t.Errorf("permanent = %v, want %v (%v)", got, c.ExpectedPermanent, err)
			}
			var apiErr *messenger.APIError
			if c.ExpectedCode != 0 && (!errors.As(err, &apiErr) || apiErr.Code != c.ExpectedCode) {
				t.Errorf("err = %v, want an APIError with code %d", err, c.ExpectedCode)
			}
		})
	}
}

func TestWrongTokenConfigured(t *testing.T) {
	srv := messengertest.NewServer(t, pageToken)
	cfg := srv.Config(appSecret)
	cfg.PageToken = "EAAGwrongTOKEN987654321"
	_, err := messenger.NewSender(cfg, srv.Client()).Send(context.Background(), outbound("hello"))
	var apiErr *messenger.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 190 {
		t.Fatalf("err = %v, want Graph code 190", err)
	}
	if strings.Contains(err.Error(), cfg.PageToken) {
		t.Errorf("error shows the token: %v", err)
	}
}

func TestRetryAfterFailure(t *testing.T) {
	s, srv := newSender(t)
	srv.FailNext(messengertest.Temporary)
	if _, err := s.Send(context.Background(), outbound("hello")); err == nil {
		t.Fatal("first send should fail")
	}
	if _, err := s.Send(context.Background(), outbound("hello")); err != nil {
		t.Fatalf("retry failed: %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("recorded %d messages, want 1", n)
	}
}

// TestErrorsKeepSecrets: whatever goes wrong, the error names neither the
// page token, nor the PSID, nor the text; not even when Meta's own error
// message quotes them.
func TestErrorsKeepSecrets(t *testing.T) {
	const text = "Reminder for Jane Doe about the clinic visit"
	echoing := messengertest.Failure{Status: 400, Code: 100, Type: "OAuthException",
		Message: "(#100) bad request for " + psid + " with access_token=" + pageToken + " text=" + text}
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/steal?"+r.URL.RawQuery, http.StatusFound)
	}))
	defer redirect.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	cases := []struct {
		Label string
		Setup func(*messengertest.Server, *messenger.Config)
		Ctx   func() context.Context
	}{
		{Label: "Graph error quoting everything", Setup: func(s *messengertest.Server, _ *messenger.Config) { s.FailNext(echoing) }},
		{Label: "person unavailable", Setup: func(s *messengertest.Server, _ *messenger.Config) { s.Block(psid) }},
		{Label: "connection dropped", Setup: func(s *messengertest.Server, _ *messenger.Config) { s.SetDown(true) }},
		{Label: "connection refused", Setup: func(_ *messengertest.Server, c *messenger.Config) { c.APIURL = closedURL }},
		{Label: "redirect is not followed", Setup: func(_ *messengertest.Server, c *messenger.Config) { c.APIURL = redirect.URL }},
		{Label: "bad API URL", Setup: func(_ *messengertest.Server, c *messenger.Config) { c.APIURL = "http://[::1" }},
		{Label: "cancelled", Setup: func(*messengertest.Server, *messenger.Config) {}, Ctx: func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}},
		{Label: "timeout", Setup: func(*messengertest.Server, *messenger.Config) {}, Ctx: func() context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
			t.Cleanup(cancel)
			return ctx
		}},
	}
	for _, c := range cases {
		t.Run(c.Label, func(t *testing.T) {
			srv := messengertest.NewServer(t, pageToken)
			cfg := srv.Config(appSecret)
			c.Setup(srv, &cfg)
			ctx := context.Background()
			if c.Ctx != nil {
				ctx = c.Ctx()
			}
			_, err := messenger.NewSender(cfg, nil).Send(ctx, outbound(text))
			if err == nil {
				t.Fatal("send succeeded")
			}
			msg := fmt.Sprintf("%v %+v %#v", err, err, err)
			for _, secret := range []string{pageToken, psid, text, "Jane Doe"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error shows %q: %s", secret, msg)
				}
			}
			for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
				if strings.Contains(u.Error(), pageToken) {
					t.Errorf("wrapped error shows the token: %v", u)
				}
			}
		})
	}
}

func TestSendWindow(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		Label         string
		Agent         bool
		HumanAgent    bool
		Since         time.Duration // since the last inbound; -1 for never
		ExpectedType  string
		ExpectedTag   string
		ExpectedError error
	}{
		{Label: "bot within 24 hours", Since: 23 * time.Hour, ExpectedType: "RESPONSE"},
		{Label: "bot just inside the margin", Since: 24*time.Hour - 2*time.Minute, ExpectedType: "RESPONSE"},
		{Label: "bot at the edge, inside the margin, refused", Since: 24*time.Hour - 30*time.Second, ExpectedError: messenger.ErrOutsideWindow},
		{Label: "bot after 25 hours", Since: 25 * time.Hour, ExpectedError: messenger.ErrOutsideWindow},
		{Label: "bot never heard from the person", Since: -1, ExpectedError: messenger.ErrOutsideWindow},
		{Label: "bot after 2 days even on a Human Agent page", HumanAgent: true, Since: 48 * time.Hour, ExpectedError: messenger.ErrOutsideWindow},
		{Label: "agent within 24 hours answers normally", Agent: true, HumanAgent: true, Since: time.Hour, ExpectedType: "RESPONSE"},
		{Label: "agent after 2 days uses HUMAN_AGENT", Agent: true, HumanAgent: true, Since: 48 * time.Hour, ExpectedType: "MESSAGE_TAG", ExpectedTag: "HUMAN_AGENT"},
		{Label: "agent after 2 days without approval", Agent: true, Since: 48 * time.Hour, ExpectedError: messenger.ErrOutsideWindow},
		{Label: "agent after 8 days", Agent: true, HumanAgent: true, Since: 8 * 24 * time.Hour, ExpectedError: messenger.ErrOutsideWindow},
	}
	for _, c := range cases {
		t.Run(c.Label, func(t *testing.T) {
			srv := messengertest.NewServer(t, pageToken)
			cfg := srv.Config(appSecret)
			cfg.HumanAgent = c.HumanAgent
			s := messenger.NewSender(cfg, srv.Client(), messenger.WithClock(func() time.Time { return now }))
			var last time.Time
			if c.Since >= 0 {
				last = now.Add(-c.Since)
			}
			if c.Since > messenger.StandardWindow {
				srv.CloseWindow(psid) // Meta itself would refuse RESPONSE now
			}
			send := s.SendAt
			if c.Agent {
				send = s.SendAsAgent
			}
			_, err := send(context.Background(), outbound("We have an opening on Friday."), last)
			if c.ExpectedError != nil {
				if !errors.Is(err, c.ExpectedError) || !errors.Is(err, engine.ErrPermanent) {
					t.Fatalf("err = %v, want %v", err, c.ExpectedError)
				}
				if srv.Requests() != 0 {
					t.Error("a message outside the window reached Meta")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := srv.Messages()[0]
			if m.MessagingType != c.ExpectedType || m.Tag != c.ExpectedTag {
				t.Errorf("messaging_type %q tag %q, want %q %q", m.MessagingType, m.Tag, c.ExpectedType, c.ExpectedTag)
			}
		})
	}
}

func TestSendAtRefusesSensitive(t *testing.T) {
	s, srv := newSender(t)
	m := outbound("Your test result")
	m.Sensitive = true
	if _, err := s.SendAt(context.Background(), m, time.Now()); !errors.Is(err, messenger.ErrSensitive) {
		t.Errorf("err = %v, want ErrSensitive", err)
	}
	if _, err := s.SendAsAgent(context.Background(), m, time.Now()); !errors.Is(err, messenger.ErrSensitive) {
		t.Errorf("agent: err = %v, want ErrSensitive", err)
	}
	if srv.Requests() != 0 {
		t.Error("a sensitive message reached Meta")
	}
}

// TestSenderIsEngineSender keeps Sender usable as the engine's sender.
func TestSenderIsEngineSender(t *testing.T) {
	var _ engine.Sender = messenger.NewSender(messenger.Config{}, nil)
}
