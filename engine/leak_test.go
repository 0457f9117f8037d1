package engine_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
)

// TestRefusesSensitiveValuesOnOrigin loads flows that pass validation, then
// marks a step or a variable sensitive in the loaded model, as a bug in the
// static check would leave it. The engine must still keep the value off SMS
// and record the refusal (SECURITY.md, requirement 5).
func TestRefusesSensitiveValuesOnOrigin(t *testing.T) {
	tests := []struct {
		Label  string
		Flow   string
		Flip   func(f *flows.Flow)
		Secret string
		// Script is what the patient sends: on SMS, or on the secure page
		// after "(open)".
		Script   []string
		Expected []string // the replies to the last message
		// Vars, when set, start the flow at the clinic's initiative.
		Vars map[string]any
	}{
		{
			Label: "a variable flipped to sensitive",
			Flow: `
flow: leak
trigger: { keywords: [GO] }
steps:
  q:
    ask: { prompt: "Your member id?", type: text, save: member }
    next: show
  show:
    say: "Thanks, member {{ member }}."
    next: fin
  fin: { say: "Done.", end: true }
`,
			Flip:     func(f *flows.Flow) { f.Variables["member"].Sensitive = true },
			Secret:   "ZX81234567",
			Script:   []string{"GO", "ZX81234567"},
			Expected: []string{sms("Done.")},
		},
		{
			Label: "a step flipped to sensitive: its answer is shown later",
			Flow: `
flow: leak
trigger: { keywords: [GO] }
steps:
  q:
    ask: { prompt: "Your member id?", type: text, save: member }
    next: show
  show:
    say: "Thanks, member {{ member }}."
    next: fin
  fin: { say: "Done.", end: true }
`,
			Flip:     func(f *flows.Flow) { f.Step("q").Sensitive = true },
			Secret:   "ZX81234567",
			Script:   []string{"GO", "(open)", "ZX81234567"},
			Expected: []string{sec(txtBackSMS), sms("Done.")},
		},
		{
			Label: "a step flipped to sensitive: a value computed from its answer",
			Flow: `
flow: leak
trigger: { keywords: [GO] }
steps:
  q:
    ask: { prompt: "What brings you in?", type: text, save: reason }
    set:
      summary: upper(reason)
    next: show
  show:
    say: "Noted: {{ summary }}."
    next: fin
  fin: { say: "Done.", end: true }
`,
			Flip:     func(f *flows.Flow) { f.Step("q").Sensitive = true },
			Secret:   "PERSISTENT COUGH",
			Script:   []string{"GO", "(open)", "persistent cough"},
			Expected: []string{sec(txtBackSMS), sms("Done.")},
		},
		{
			Label: "a step flipped to sensitive: its answer echoed through input",
			Flow: `
flow: leak
trigger: { keywords: [GO] }
steps:
  q:
    ask: { prompt: "Anything else?", type: text }
    next: show
  show:
    say: "You said: {{ input }}"
    next: fin
  fin: { say: "Done.", end: true }
`,
			Flip:     func(f *flows.Flow) { f.Step("q").Sensitive = true },
			Secret:   "persistent cough",
			Script:   []string{"GO", "(open)", "persistent cough"},
			Expected: []string{sec(txtBackSMS), sms("Done.")},
		},
		{
			Label: "a keyword shows a declared variable flipped to sensitive",
			Flow: `
flow: leak
vars:
  doctor: text
keywords:
  WHO: "Your doctor is {{ doctor }}."
steps:
  r:
    ask: { prompt: "Your zip?", type: zip, save: zip }
    next: fin
  fin: { say: "Done.", end: true }
`,
			Flip:     func(f *flows.Flow) { f.Variables["doctor"].Sensitive = true },
			Secret:   "Dr. Zebediah",
			Vars:     map[string]any{"doctor": "Dr. Zebediah"},
			Script:   []string{"WHO"},
			Expected: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			set := loadSet(t, tc.Flow)
			tc.Flip(set.Flow("leak"))
			var logs bytes.Buffer
			h := newHarness(t, set, engine.SMS, engine.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			var out []*engine.Outbound
			if tc.Vars != nil {
				h.start("leak", tc.Vars)
			}
			secure := false
			for _, m := range tc.Script {
				switch {
				case m == "(open)":
					out = h.open("")
					secure = true
				case secure:
					out = h.secure(m)
				default:
					out = h.send(m)
				}
			}
			h.want("last message", out, tc.Expected...)
			for _, o := range h.Store.Outbox() {
				if o.Channel != engine.Secure && strings.Contains(strings.ToLower(o.Text), strings.ToLower(tc.Secret)) {
					t.Errorf("the sensitive value went out on %s: %q", o.Channel, o.Text)
				}
			}
			refused := h.events(engine.EventRefused)
			if len(refused) != 1 || refused[0].Outcome != "denied" || refused[0].ConversationID == "" {
				t.Errorf("refusal events %+v, want one denied", refused)
			}
			for _, e := range refused {
				if strings.Contains(strings.ToLower(e.Reason), strings.ToLower(tc.Secret)) {
					t.Errorf("the refusal event repeats the value: %q", e.Reason)
				}
			}
			if !strings.Contains(logs.String(), "refused") {
				t.Errorf("the refusal was not logged: %q", logs.String())
			}
			if strings.Contains(strings.ToLower(logs.String()), strings.ToLower(tc.Secret)) {
				t.Errorf("the log shows the value: %q", logs.String())
			}
		})
	}
}

// conversation is one scripted exchange. Lines are sent on the contact's
// channel; "(open)" opens the secure page with the answer after a colon;
// "sec:" sends on the secure page; "(wait 2h)" moves the clock on.
type conversation struct {
	Label   string
	Channel engine.Channel
	Start   string // a flow started by the clinic, when set
	Vars    map[string]any
	Lines   []string
	// Sensitive lists every sensitive answer given, and anything the patient
	// typed on SMS while a sensitive question waited.
	Sensitive      []string
	ExpectedStatus engine.Status
}

// TestNoSensitiveValueLeavesOnOrigin runs whole conversations through the
// example flows and others and scans every message sent on SMS or Messenger
// for every sensitive answer (SECURITY.md, requirement 5).
func TestNoSensitiveValueLeavesOnOrigin(t *testing.T) {
	files, err := flows.FindFiles([]string{"../examples"}, flows.IsFlowFile)
	if err != nil {
		t.Fatal(err)
	}
	examples, err := flows.LoadFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	if examples.Diags.Errors() > 0 {
		t.Fatalf("the examples do not load: %v", examples.Diags.Err())
	}
	stay := loadSet(t, strings.Replace(secureFlow, "%s", "return: stay", 1))

	convs := []struct {
		Set *flows.Set
		conversation
	}{
		{examples, conversation{Label: "new patient intake", Channel: engine.SMS,
			Lines: []string{"hi", "yes", "Ana", "Lopez", "3/14/1985", "201-555-0123", "ana@example.com",
				"my elbow itches", "(open):03/14/1985", "sec:itchy rash on elbow", "sec:lisinopril 10mg",
				"sec:yes", "sec:ZX81234567", "weds"},
			Sensitive: []string{"itchy rash on elbow", "lisinopril 10mg", "ZX81234567", "my elbow itches"}, ExpectedStatus: engine.Ended}},
		{examples, conversation{Label: "new patient intake on Messenger", Channel: engine.Messenger,
			Lines: []string{"INTAKE", "yes", "Ana", "Lopez", "3/14/1985", "201-555-0123", "ana@example.com",
				"(open):3/14/1985", "sec:wheezing at night", "sec:albuterol inhaler", "sec:no", "Tuesday"},
			Sensitive: []string{"wheezing at night", "albuterol inhaler"}, ExpectedStatus: engine.Ended}},
		{examples, conversation{Label: "symptom triage, self care", Channel: engine.SMS,
			Lines: []string{"SICK", "1", "(open):", "sec:sore throat and cough", "sec:yes", "sec:101.7",
				"sec:4", "yes", "2"},
			Sensitive: []string{"sore throat and cough", "101.7"}, ExpectedStatus: engine.Ended}},
		{examples, conversation{Label: "symptom triage, nurse review", Channel: engine.SMS,
			Lines:     []string{"TRIAGE", "2", "(open):", "sec:stiff neck and rash", "sec:yes", "sec:103.2", "sec:2"},
			Sensitive: []string{"stiff neck and rash", "103.2"}, ExpectedStatus: engine.HandedOff}},
		{examples, conversation{Label: "prescription refill", Channel: engine.SMS,
			Lines: []string{"REFILL", "4/23/1985", "atorvastatin please", "(open):04/23/1985", "sec:atorvastatin",
				"sec:20 mg nightly", "sec:yes", "sec:no", "sec:30", "2"},
			Sensitive: []string{"atorvastatin", "20 mg nightly"}, ExpectedStatus: engine.Ended}},
		{examples, conversation{Label: "post-visit survey with a private comment", Channel: engine.SMS,
			Lines: []string{"SURVEY", "(wait 2h)", "5", "yes", "yes", "(open):",
				"sec:my knee still hurts after the injection"},
			Sensitive: []string{"my knee still hurts after the injection"}, ExpectedStatus: engine.Ended}},
		{examples, conversation{Label: "appointment confirmation in Spanish", Channel: engine.SMS,
			Start: "appointment-confirmation",
			Vars: map[string]any{"appt_date": time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC), "appt_time": "10:30",
				"doctor": "Dr. Lee", "clinic_phone": "+15555550100"},
			Lines: []string{"2", "1"}, ExpectedStatus: engine.Ended}},
		{stay, conversation{Label: "return: stay", Channel: engine.SMS,
			Lines: []string{"INTAKE", "Ana", "3/14/1985", "(open):3/14/1985", "sec:migraine with aura",
				"sec:sumatriptan", "Monday", "sec:1"},
			Sensitive: []string{"migraine with aura", "sumatriptan"}, ExpectedStatus: engine.Ended}},
	}
	for _, c := range convs {
		t.Run(c.Label, func(t *testing.T) {
			h := newHarness(t, c.Set, c.Channel)
			if c.Start != "" {
				h.start(c.Start, c.Vars)
			}
			for _, line := range c.Lines {
				switch {
				case strings.HasPrefix(line, "(open):"):
					h.open(strings.TrimPrefix(line, "(open):"))
				case strings.HasPrefix(line, "sec:"):
					h.secure(strings.TrimPrefix(line, "sec:"))
				case strings.HasPrefix(line, "(wait "):
					d, err := time.ParseDuration(strings.TrimSuffix(strings.TrimPrefix(line, "(wait "), ")"))
					if err != nil {
						t.Fatal(err)
					}
					h.advance(d)
				default:
					h.send(line)
				}
			}
			if got := h.conv().Status; got != c.ExpectedStatus {
				t.Errorf("the conversation is %s, want %s: the script did not run as planned", got, c.ExpectedStatus)
			}
			secureOut, originOut := 0, 0
			for _, o := range h.Store.Outbox() {
				if o.Channel == engine.Secure {
					secureOut++
					continue
				}
				originOut++
				if o.Sensitive {
					t.Errorf("a message marked sensitive went out on %s", o.Channel)
				}
				body := strings.ToLower(o.Text)
				for _, s := range c.Sensitive {
					if strings.Contains(body, strings.ToLower(s)) {
						t.Errorf("the sensitive answer %q went out on %s: %q", s, o.Channel, o.Text)
					}
				}
			}
			if ev := h.events(engine.EventRefused); len(ev) > 0 {
				t.Errorf("messages of a valid flow were refused: %+v", ev)
			}
			if originOut == 0 || (len(c.Sensitive) > 0 && secureOut == 0) {
				t.Errorf("%d origin and %d secure messages: the scan saw too little", originOut, secureOut)
			}
		})
	}
}
