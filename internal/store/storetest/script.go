package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the clinic's zone must load on machines without zoneinfo

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/flows/diag"
	"github.com/safeflow/safeflow/internal/sim"
)

// A Script is one contact's whole conversation with an example flow: what
// the patient sends, when links are opened and time passes, and where the
// conversation must end up.
type Script struct {
	// Name is unique among the scripts; it prefixes provider message ids.
	Name    string
	Channel engine.Channel
	Address string
	// Start, when set, starts a flow at the clinic's initiative before the
	// turns; otherwise the first turn starts one.
	Start *Start
	Turns []Turn
	// WantStep and WantStatus are where the conversation must be after the
	// last turn: a script that no longer reaches them has drifted from its
	// flow and tests less than it claims.
	WantStep   string
	WantStatus engine.Status
	// Secrets are what must never be stored in plaintext: the patient's
	// texts and answers (as typed and as parsed), names, and addresses.
	Secrets []string
}

// Start begins a flow with variables, as the clinic does.
type Start struct {
	Flow string
	Vars map[string]any
}

// A Turn is one thing that happens in a script. Exactly one of its kinds
// applies: a message (Text, on Channel or the script's channel), the
// secure link being opened (Open, answering its check with Text), or time
// passing (Wait).
type Turn struct {
	Channel engine.Channel
	Text    string
	Open    bool
	Wait    time.Duration
}

// The helpers below keep the scripts readable.
func say(text string) Turn          { return Turn{Text: text} }
func secure(text string) Turn       { return Turn{Channel: engine.Secure, Text: text} }
func openLink(answer string) Turn   { return Turn{Open: true, Text: answer} }
func wait(d time.Duration) Turn     { return Turn{Wait: d} }
func date(y, m, d int) time.Time    { return time.Date(y, time.Month(m), d, 0, 0, 0, 0, Clinic) }
func secrets(s ...string) []string  { return s }
func vars(kv ...any) map[string]any { return pairs(kv) }

func pairs(kv []any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// Clinic is the clinic's time zone in every script.
var Clinic = mustZone("America/New_York")

// Epoch is when every script begins: a Monday morning at the clinic.
var Epoch = time.Date(2025, 3, 10, 9, 0, 0, 0, Clinic)

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// Scripts returns one script per example flow in examples/, each through
// its sensitive steps on the secure page, with the values a patient would
// least want to leak.
func Scripts() []Script {
	return []Script{
		{
			Name: "intake", Channel: engine.SMS, Address: "+12025550143",
			Turns: []Turn{
				say("Hi there"), say("yes"), say("Zebediah"), say("Quillfeather"), say("04/23/1985"),
				say("(201) 555-0147"), say("zeb.quill@example.org"),
				openLink("04/23/1985"),
				secure("persistent migraines and dizziness"), secure("Sumatriptanol 50mg daily"), secure("yes"),
				secure("ZQX4471902"),
				say("tues"),
			},
			WantStep: "done", WantStatus: engine.Ended,
			Secrets: secrets("+12025550143", "2025550143", "Zebediah", "Quillfeather", "04/23/1985", "1985-04-23",
				"(201) 555-0147", "+12015550147", "2015550147", "zeb.quill@example.org", "persistent migraines",
				"Sumatriptanol", "ZQX4471902"),
		},
		{
			Name: "confirm", Channel: engine.SMS, Address: "+13105550188",
			Start: &Start{Flow: "appointment-confirmation", Vars: vars(
				"appt_date", date(2025, 3, 12), "appt_time", "14:30", "doctor", "Dr. Okonkwo-Baptiste",
				"clinic_phone", "+15555550100")},
			Turns: []Turn{
				say("English"), wait(5 * time.Hour), say("reschedule"), say("3/21"), say("9:30 am"),
			},
			WantStep: "reschedule-requested", WantStatus: engine.HandedOff,
			Secrets: secrets("+13105550188", "3105550188", "Okonkwo-Baptiste"),
		},
		{
			Name: "survey", Channel: engine.SMS, Address: "+14155550166",
			Turns: []Turn{
				say("SURVEY"), wait(2 * time.Hour), say("2"), say("no"), say("yes"),
				openLink(""),
				secure("the receptionist mocked my hemorrhoid cream"),
			},
			WantStep: "sorry", WantStatus: engine.HandedOff,
			Secrets: secrets("+14155550166", "4155550166", "receptionist mocked", "hemorrhoid"),
		},
		{
			Name: "refill", Channel: engine.Messenger, Address: "PSID-8843321077",
			Turns: []Turn{
				say("REFILL"), say("11/02/1971"),
				openLink("11/02/1971"),
				secure("Atorvaquinol"), secure("40 mg nightly"), secure("yes"), secure("no"), secure("30"),
				say("other"), say("Brightwater Drugs 12 Elm St"), say("212 555 0199"),
			},
			WantStep: "done", WantStatus: engine.Ended,
			Secrets: secrets("PSID-8843321077", "8843321077", "11/02/1971", "1971-11-02", "Atorvaquinol", "40 mg nightly",
				"Brightwater Drugs", "212 555 0199", "+12125550199"),
		},
		{
			Name: "triage", Channel: engine.SMS, Address: "+16175550123",
			Turns: []Turn{
				say("SICK"), say("my child"),
				openLink(""),
				secure("fever and earache since Monday"), secure("yes"), secure("103.2"), secure("2"),
			},
			WantStep: "nurse-review", WantStatus: engine.HandedOff,
			Secrets: secrets("+16175550123", "6175550123", "earache since Monday"),
		},
	}
}

// Played is what a script produced.
type Played struct {
	ConversationID string
	// Out is every message the engine sent, in order.
	Out []*engine.Outbound
}

var examples struct {
	once sync.Once
	set  *flows.Set
	err  error
}

// Examples returns the flows in the repository's examples/ folder.
func Examples(tb testing.TB) *flows.Set {
	tb.Helper()
	examples.once.Do(func() {
		var root string
		root, examples.err = repoRoot()
		if examples.err != nil {
			return
		}
		files, err := filepath.Glob(filepath.Join(root, "examples", "*.yaml"))
		if err != nil || len(files) == 0 {
			examples.err = fmt.Errorf("no flows in %s/examples", root)
			return
		}
		var keep []string
		for _, f := range files {
			if flows.IsFlowFile(f) {
				keep = append(keep, f)
			}
		}
		examples.set, examples.err = loadSet(flows.LoadFiles(keep))
	})
	if examples.err != nil {
		tb.Fatalf("load examples: %v", examples.err)
	}
	return examples.set
}

// loadSet turns a set with errors into an error that shows them.
func loadSet(set *flows.Set, err error) (*flows.Set, error) {
	if err != nil {
		return nil, err
	}
	if set.Diags.Errors() > 0 {
		var b bytes.Buffer
		diag.WriteText(&b, set.Diags, set.Source, 10)
		return nil, errors.New(b.String())
	}
	return set, nil
}

// repoRoot finds the folder holding go.mod, above the test's folder.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working folder")
		}
		dir = parent
	}
}

// Play runs a script on st with its own engine over set, a clock that
// starts at Epoch and moves only when the script waits, and test links.
func Play(ctx context.Context, tb testing.TB, st engine.Store, set engine.Flows, sc Script) *Played {
	tb.Helper()
	clock := sim.NewClock(Epoch)
	// A base per script keeps the token hashes of two scripts played on
	// one store apart.
	links := &sim.Links{Base: "https://secure.clinic.test/" + sc.Name}
	eng := engine.New(set, st, engine.WithClock(clock.Now), engine.WithLinkIssuer(links), engine.WithLocation(Clinic))
	p := &Played{}
	track := func(res *engine.Result) {
		if res == nil {
			return
		}
		p.Out = append(p.Out, res.Out...)
		if res.Conversation != nil {
			p.ConversationID = res.Conversation.ID
		}
	}
	if sc.Start != nil {
		res, err := eng.Start(ctx, sc.Start.Flow, sc.Channel, sc.Address, "", sc.Start.Vars)
		if err != nil {
			tb.Fatalf("%s: start %s: %v", sc.Name, sc.Start.Flow, err)
		}
		track(res)
	}
	for i, turn := range sc.Turns {
		switch {
		case turn.Wait > 0:
			clock.Advance(turn.Wait)
			results, err := eng.Tick(ctx)
			if err != nil {
				tb.Fatalf("%s: turn %d: tick: %v", sc.Name, i+1, err)
			}
			for _, r := range results {
				track(r)
			}
		case turn.Open:
			ok, err := eng.CheckIdentity(ctx, p.ConversationID, turn.Text)
			if err != nil || !ok {
				tb.Fatalf("%s: turn %d: identity check: passed %v, error %v", sc.Name, i+1, ok, err)
			}
			res, err := eng.SecureOpened(ctx, p.ConversationID)
			if err != nil {
				tb.Fatalf("%s: turn %d: open secure page: %v", sc.Name, i+1, err)
			}
			track(res)
		default:
			ch := turn.Channel
			if ch == "" {
				ch = sc.Channel
			}
			in := engine.Inbound{Channel: ch, Text: turn.Text, ProviderID: fmt.Sprintf("%s-%d", sc.Name, i+1)}
			if ch == engine.Secure {
				in.ConversationID = p.ConversationID
			} else {
				in.Address = sc.Address
			}
			res, err := eng.Handle(ctx, in)
			if err != nil {
				tb.Fatalf("%s: turn %d: handle: %v", sc.Name, i+1, err)
			}
			track(res)
		}
	}
	if p.ConversationID == "" {
		tb.Fatalf("%s: no conversation started", sc.Name)
	}
	conv := Load(ctx, tb, st, p.ConversationID)
	if conv.Step != sc.WantStep || conv.Status != sc.WantStatus {
		tb.Fatalf("%s: the conversation ended at step %q (%s), want %q (%s): the script no longer follows its flow",
			sc.Name, conv.Step, conv.Status, sc.WantStep, sc.WantStatus)
	}
	return p
}

// Load reads one conversation in its own transaction.
func Load(ctx context.Context, tb testing.TB, st engine.Store, id string) *engine.Conversation {
	tb.Helper()
	var conv *engine.Conversation
	err := st.Tx(ctx, func(tx engine.Tx) error {
		var err error
		conv, err = tx.Conversation(ctx, id)
		return err
	})
	if err != nil {
		tb.Fatalf("load conversation %s: %v", id, err)
	}
	return conv
}
