package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// examplesDir holds the example flows the scripts walk.
const examplesDir = "../../examples"

func startService(t *testing.T, db string, d Delivery) *Service {
	t.Helper()
	svc, err := StartService(context.Background(), ServiceConfig{DB: db, FlowsDir: examplesDir, Delivery: d})
	if err != nil {
		t.Fatalf("StartService: %v", err)
	}
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return svc
}

func startEcho(t *testing.T) *EchoServer {
	t.Helper()
	e, err := StartEcho()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestExampleScriptsWalkToTheEnd runs every script once as one contact
// against the real service and checks, through what the sink received, that
// each took its planned path to its planned end.
func TestExampleScriptsWalkToTheEnd(t *testing.T) {
	for _, d := range []Delivery{DeliverDiscard, DeliverLoopback} {
		t.Run(strings.ReplaceAll(d.String(), " ", "_"), func(t *testing.T) {
			svc := startService(t, filepath.Join(t.TempDir(), "bench.db"), d)
			for _, sc := range ExampleScripts() {
				t.Run(sc.Name, func(t *testing.T) {
					res, err := Run(context.Background(), Config{
						Target: svc.Target(), Contacts: 1, Duration: 20 * time.Second,
						MaxMessages: sc.Messages(), Scripts: []Script{sc}, Start: svc.Start,
					})
					if err != nil {
						t.Fatal(err)
					}
					if res.Failed != 0 {
						t.Fatalf("%d webhooks failed, first: %v", res.Failed, res.FirstError)
					}
					if res.Messages != sc.Messages() || res.Conversations != 1 {
						t.Errorf("sent %d messages in %d conversations, want %d in 1", res.Messages, res.Conversations, sc.Messages())
					}
					if sc.Start != nil && res.Starts != 1 {
						t.Errorf("Starts = %d, want 1 for a clinic-started script", res.Starts)
					}
					if v := svc.Sink.Verify(context.Background(), res, 10*time.Second); !v.OK() {
						t.Errorf("Verify: %v", v)
					}
					if len(res.Latency) != res.Messages {
						t.Errorf("%d latency samples for %d messages", len(res.Latency), res.Messages)
					}
				})
			}
		})
	}
}

// TestVerifyNoticesAnotherPath walks scripts whose plan is wrong: Verify must
// say so, or a bench could report figures for conversations that went
// nowhere.
func TestVerifyNoticesAnotherPath(t *testing.T) {
	svc := startService(t, filepath.Join(t.TempDir(), "bench.db"), DeliverDiscard)
	good := ExampleScripts()[0]
	wrongEnd := good
	wrongEnd.Final = "a text the flow never sends"
	moreReplies := good
	moreReplies.Turns = append([]Turn(nil), good.Turns...)
	moreReplies.Turns[1].Replies++
	// Without the clinic's start the contact's "1" starts the default
	// flow instead, and the replies differ from the plan.
	unstarted := ExampleScripts()[2]
	tests := []struct {
		Label    string
		Script   Script
		Start    StartFunc
		Expected func(Verification) bool
	}{
		{"WrongLastReply", wrongEnd, svc.Start, func(v Verification) bool { return v.WrongEnd == 1 && !v.OK() }},
		{"FewerRepliesThanPlanned", moreReplies, svc.Start, func(v Verification) bool { return v.Missing == 1 && !v.OK() }},
		{"FlowNeverStarted", unstarted, nil, func(v Verification) bool { return !v.OK() }},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			res, err := Run(context.Background(), Config{
				Target: svc.Target(), Contacts: 1, Duration: 20 * time.Second,
				MaxMessages: tt.Script.Messages(), Scripts: []Script{tt.Script}, Start: tt.Start,
			})
			if err != nil {
				t.Fatal(err)
			}
			v := svc.Sink.Verify(context.Background(), res, 300*time.Millisecond)
			if !tt.Expected(v) {
				t.Errorf("Verify = %+v", v)
			}
		})
	}
}

func TestRunStopsAtItsDuration(t *testing.T) {
	echo := startEcho(t)
	began := time.Now()
	res, err := Run(context.Background(), Config{Target: echo.Target(), Contacts: 4, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("a 300ms run took %v", took)
	}
	if res.Messages == 0 || res.Failed != 0 {
		t.Errorf("Messages = %d, Failed = %d (%v); want some and none", res.Messages, res.Failed, res.FirstError)
	}
	if res.Rate() <= 0 {
		t.Errorf("Rate = %v", res.Rate())
	}
}

func TestRunStopsAtMaxMessages(t *testing.T) {
	echo := startEcho(t)
	res, err := Run(context.Background(), Config{Target: echo.Target(), Contacts: 4, Duration: 20 * time.Second, MaxMessages: 25})
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != 25 {
		t.Errorf("Messages = %d, want exactly 25", res.Messages)
	}
}

func TestRunEndsWithItsContext(t *testing.T) {
	echo := startEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	if _, err := Run(ctx, Config{Target: echo.Target(), Contacts: 2, Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("a run whose context ended after 200ms took %v", took)
	}
}

func TestPacedRunKeepsItsRate(t *testing.T) {
	echo := startEcho(t)
	res, err := Run(context.Background(), Config{Target: echo.Target(), Contacts: 4, Duration: time.Second, Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	// 200/s for one second is 200 webhooks. Pacing must never send more;
	// on a busy machine a late worker may send fewer.
	if res.Messages < 100 || res.Messages > 204 {
		t.Errorf("a run paced at 200/s for 1s sent %d webhooks", res.Messages)
	}
}

// A warm-up runs before the measured part and is counted apart: the rate
// and latencies cover the measured second only.
func TestPacedRunWarmsUpApart(t *testing.T) {
	echo := startEcho(t)
	res, err := Run(context.Background(), Config{Target: echo.Target(), Contacts: 4, Duration: time.Second,
		Warmup: 500 * time.Millisecond, Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	// 200/s: about 100 webhooks in the warm-up, about 200 measured.
	if res.WarmupMessages < 50 || res.WarmupMessages > 104 {
		t.Errorf("the 500 ms warm-up at 200/s counted %d webhooks", res.WarmupMessages)
	}
	if res.Messages < 100 || res.Messages > 204 {
		t.Errorf("the measured second at 200/s counted %d webhooks", res.Messages)
	}
	if len(res.WarmupLatency) != res.WarmupMessages || len(res.Latency) != res.Messages {
		t.Errorf("%d warm-up and %d measured latencies for %d and %d webhooks",
			len(res.WarmupLatency), len(res.Latency), res.WarmupMessages, res.Messages)
	}
	if r := res.Rate(); r < 100 || r > 230 {
		t.Errorf("measured rate %.0f/s, want about 200/s: the warm-up must not count", r)
	}
}

func TestRunCountsFailedWebhooks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "internal error", http.StatusInternalServerError)
	}))
	defer srv.Close()
	target := Target{URL: srv.URL + webhookPath, SignedURL: benchPublicURL + webhookPath, AuthToken: "t", Number: benchNumber}
	res, err := Run(context.Background(), Config{Target: target, Contacts: 2, Duration: 20 * time.Second, MaxMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != 0 || res.Failed != 10 {
		t.Errorf("Messages = %d, Failed = %d; want 0 and 10", res.Messages, res.Failed)
	}
	if res.FirstError == nil || !strings.Contains(res.FirstError.Error(), "HTTP 500") {
		t.Errorf("FirstError = %v, want the HTTP status", res.FirstError)
	}
	if res.Conversations != 0 {
		t.Errorf("Conversations = %d; a failed webhook must abandon its conversation", res.Conversations)
	}
}

func TestRunRefusesUnboundedOrRemoteRuns(t *testing.T) {
	ok := Target{URL: "http://127.0.0.1:1/webhooks/twilio", AuthToken: "t"}
	tests := []struct {
		Label    string
		Config   Config
		Expected string
	}{
		{"RemoteHost", Config{Target: Target{URL: "http://example.com/webhooks/twilio", AuthToken: "t"}, Contacts: 1, Duration: time.Second}, "loopback"},
		{"HostNameNotIP", Config{Target: Target{URL: "http://localhost:8080/", AuthToken: "t"}, Contacts: 1, Duration: time.Second}, "loopback"},
		{"PrivateAddress", Config{Target: Target{URL: "http://10.0.0.1/", AuthToken: "t"}, Contacts: 1, Duration: time.Second}, "loopback"},
		{"HTTPS", Config{Target: Target{URL: "https://127.0.0.1/", AuthToken: "t"}, Contacts: 1, Duration: time.Second}, "http://"},
		{"NoToken", Config{Target: Target{URL: ok.URL}, Contacts: 1, Duration: time.Second}, "auth token"},
		{"NoContacts", Config{Target: ok, Duration: time.Second}, "contacts"},
		{"TooManyContacts", Config{Target: ok, Contacts: MaxContacts + 1, Duration: time.Second}, "contacts"},
		{"NoDuration", Config{Target: ok, Contacts: 1}, "duration"},
		{"TooLong", Config{Target: ok, Contacts: 1, Duration: MaxDuration + time.Second}, "duration"},
		{"NegativeRate", Config{Target: ok, Contacts: 1, Duration: time.Second, Rate: -1}, "rate"},
		{"NegativeMax", Config{Target: ok, Contacts: 1, Duration: time.Second, MaxMessages: -1}, "max messages"},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			_, err := Run(context.Background(), tt.Config)
			if err == nil || !strings.Contains(err.Error(), tt.Expected) {
				t.Errorf("Run = %v, want an error about %q", err, tt.Expected)
			}
		})
	}
}

func TestNextAddressIsANewUSNumber(t *testing.T) {
	e164 := regexp.MustCompile(`^\+1[2-9][0-9]{2}555[0-9]{4}$`)
	seen := map[string]bool{}
	for range 20_000 {
		a := nextAddress()
		if !e164.MatchString(a) {
			t.Fatalf("nextAddress = %q, not a +1 NXX 555 XXXX number", a)
		}
		if a[4:6] == "11" {
			t.Fatalf("nextAddress = %q uses an N11 service code", a)
		}
		if seen[a] {
			t.Fatalf("nextAddress repeated %q", a)
		}
		seen[a] = true
	}
}

func TestSelectScripts(t *testing.T) {
	all := ExampleScripts()
	tests := []struct {
		Label    string
		Names    []string
		Expected []string
		Err      string
	}{
		{"NoNamesSelectAll", nil, []string{"intake-minor", "intake-callback", "appointment-kept", "survey-review"}, ""},
		{"NamesKeepTheirOrder", []string{"survey-review", "intake-minor"}, []string{"survey-review", "intake-minor"}, ""},
		{"UnknownNameListsTheKnownOnes", []string{"intake-mnior"}, nil, "choose from intake-minor, intake-callback"},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			got, err := SelectScripts(all, tt.Names)
			if tt.Err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.Err) {
					t.Fatalf("err = %v, want %q", err, tt.Err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range got {
				names = append(names, s.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.Expected, ",") {
				t.Errorf("got %v, want %v", names, tt.Expected)
			}
		})
	}
}

func TestScriptReplies(t *testing.T) {
	for _, c := range []struct {
		s    Script
		want int
	}{
		{Script{Turns: []Turn{{"INTAKE", 2}, {"yes", 1}}}, 3},
		{Script{Start: &Start{Replies: 2}, Turns: []Turn{{"5", 1}}}, 3},
		{Script{Start: &Start{}}, 0},
	} {
		if got := c.s.Replies(); got != c.want {
			t.Errorf("%+v: %d replies, want %d", c.s, got, c.want)
		}
	}
}
