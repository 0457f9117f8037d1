package engine_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/engine/answer"
	"github.com/safeflow/safeflow/flows"
)

func TestSay(t *testing.T) {
	set := loadSet(t, `
flow: greet
language: en
steps:
  one:
    say: "Hello."
    next: many
  many:
    say: ["First.", "Second {{ 1 + 1 }}.", "Third."]
    next: bilingual
  bilingual:
    say: { en: "Welcome.", es: "Bienvenido." }
    next: english-only
  english-only:
    say: { en: "Only in English." }
    next: plain
  plain:
    say: "The same for everyone."
    next: neither
  neither:
    say: { fr: "Au revoir.", es: "Adiós." }
    end: true
`)
	tests := []struct {
		Label    string
		Language string
		Expected []string
	}{
		{"English, and the first language by code where there is no English", "en",
			[]string{"Hello.", "First.", "Second 2.", "Third.", "Welcome.", "Only in English.", "The same for everyone.", "Adiós."}},
		{"Spanish, with English where there is no Spanish", "es",
			[]string{"Hello.", "First.", "Second 2.", "Third.", "Bienvenido.", "Only in English.", "The same for everyone.", "Adiós."}},
		{"a language the flow lacks falls back to the flow's", "de",
			[]string{"Hello.", "First.", "Second 2.", "Third.", "Welcome.", "Only in English.", "The same for everyone.", "Adiós."}},
		{"French where there is French", "fr",
			[]string{"Hello.", "First.", "Second 2.", "Third.", "Welcome.", "Only in English.", "The same for everyone.", "Au revoir."}},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, set, engine.SMS)
			out := h.start("greet", map[string]any{"language": tc.Language})
			want := make([]string, len(tc.Expected))
			for i, s := range tc.Expected {
				want[i] = sms(s)
			}
			h.want("say", out, want...)
			if c := h.conv(); c.Status != engine.Ended {
				t.Errorf("status = %s, want ended after the last `say`", c.Status)
			}
		})
	}
}

// askCase is one input type: an answer it refuses and one it takes.
type askCase struct {
	Options  string // extra lines of the ask
	Bad      string
	Good     string
	Expected any
	Choices  string // the list SMS appends to the prompt
}

// askCases has a case for every input type; TestAskTypes fails when a type
// of flows.InputTypes has none.
var askCases = map[string]askCase{
	flows.TypeText:    {Options: "min: 2", Bad: "a", Good: "  Ana  ", Expected: "Ana"},
	flows.TypeNumber:  {Bad: "abc", Good: "101.5", Expected: 101.5},
	flows.TypeInteger: {Options: "min: 1\n      max: 10", Bad: "11", Good: "7", Expected: 7},
	flows.TypeYesNo:   {Bad: "maybe", Good: "yep", Expected: true},
	flows.TypeChoice: {Options: "choices: [Monday, Tuesday]", Bad: "purple", Good: "2", Expected: "Tuesday",
		Choices: "\nReply 1 for Monday or 2 for Tuesday."},
	flows.TypeDate:    {Bad: "blah", Good: "3/14/1985", Expected: time.Date(1985, 3, 14, 0, 0, 0, 0, time.UTC)},
	flows.TypeTime:    {Bad: "xyz", Good: "9:30 am", Expected: "09:30"},
	flows.TypePhone:   {Bad: "12", Good: "201-555-0123", Expected: "+12015550123"},
	flows.TypeEmail:   {Bad: "nope", Good: "ana@example.com", Expected: "ana@example.com"},
	flows.TypeZip:     {Bad: "12", Good: "02139", Expected: "02139"},
	flows.TypePattern: {Options: `pattern: "[A-Z]{2}[0-9]{4}"`, Bad: "ab", Good: "AB1234", Expected: "AB1234"},
}

func TestAskTypes(t *testing.T) {
	for _, typ := range flows.InputTypes() {
		tc, ok := askCases[typ]
		if !ok {
			t.Errorf("input type %q has no case in askCases", typ)
			continue
		}
		t.Run(typ, func(t *testing.T) {
			set := loadSet(t, fmt.Sprintf(`
flow: ask-test
trigger: { keywords: [GO] }
steps:
  q:
    ask:
      prompt: "Your answer?"
      type: %s
      save: v
      %s
    next: done
  done:
    say: "Got it."
    end: true
`, typ, tc.Options))
			h := newHarness(t, set, engine.SMS)
			prompt := "Your answer?" + tc.Choices
			out := h.send("GO")
			h.want("start", out, sms(prompt))
			if out[0].Input != typ {
				t.Errorf("prompt Input = %q, want %q", out[0].Input, typ)
			}
			h.want("bad answer", h.send(tc.Bad), sms(txtRetry), sms(prompt))
			if c := h.conv(); c.Vars["v"] != nil || c.Attempts != 1 || c.Step != "q" {
				t.Errorf("after a bad answer: vars %v, attempts %d, step %s; want nothing saved, 1 attempt, step q", c.Vars, c.Attempts, c.Step)
			}
			h.want("good answer", h.send(tc.Good), sms("Got it."))
			got := h.conv().Vars["v"]
			if want, isTime := tc.Expected.(time.Time); isTime {
				if g, ok := got.(time.Time); !ok || !g.Equal(want) {
					t.Errorf("saved %#v, want %v", got, want)
				}
			} else if !reflect.DeepEqual(got, tc.Expected) {
				t.Errorf("saved %#v, want %#v", got, tc.Expected)
			}
		})
	}
}

func TestChoiceOnMessenger(t *testing.T) {
	set := loadSet(t, `
flow: pick
trigger: { keywords: [GO] }
steps:
  q:
    ask:
      prompt: "Which day?"
      type: choice
      choices: [Monday, { value: wed, label: Wednesday, synonyms: [weds] }]
      save: day
    next: done
  done:
    say: "See you on {{ day }}."
    end: true
`)
	tests := []struct {
		Label           string
		Text, Payload   string
		ExpectedSaved   string
		ExpectedReplies []string
	}{
		{"quick reply payload wins over text", "whatever", "wed", "wed", []string{fb("See you on wed.")}},
		{"typed synonym", "WEDS", "", "wed", []string{fb("See you on wed.")}},
		{"typed number", "1", "", "Monday", []string{fb("See you on Monday.")}},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, set, engine.Messenger)
			out := h.send("GO")
			h.want("prompt", out, fb("Which day?"))
			wantChoices := []engine.OutChoice{{Title: "Monday", Payload: "Monday"}, {Title: "Wednesday", Payload: "wed"}}
			if !slices.Equal(out[0].Choices, wantChoices) {
				t.Errorf("quick replies = %v, want %v", out[0].Choices, wantChoices)
			}
			res, err := h.Engine.Handle(context.Background(), engine.Inbound{Channel: engine.Messenger,
				Address: h.Address, Text: tc.Text, Payload: tc.Payload, ProviderID: "mid-x"})
			if err != nil {
				t.Fatal(err)
			}
			h.want("answer", res.Out, tc.ExpectedReplies...)
			if got := h.conv().Vars["day"]; got != tc.ExpectedSaved {
				t.Errorf("saved %v, want %s", got, tc.ExpectedSaved)
			}
		})
	}
}

func TestAttempts(t *testing.T) {
	const withOnFail = `
flow: attempts
trigger: { keywords: [GO] }
steps:
  q:
    ask:
      prompt: "Your age?"
      type: integer
      save: years
      retry: "Please send a number, like 42."
      attempts: 2
      on_fail: callback
    next: q2
  q2:
    ask: { prompt: "Your zip?", type: zip, save: zip, attempts: 2, on_fail: callback }
    next: done
  done:
    say: "Thanks."
    end: true
  callback:
    say: "We'll call you."
    handoff: front-desk
`
	const defaultCap = `
flow: attempts
trigger: { keywords: [GO] }
steps:
  q:
    ask: { prompt: "Your age?", type: integer, save: years }
    next: done
  done:
    say: "Thanks."
    end: true
`
	type exchange struct {
		In       string
		Expected []string
	}
	tests := []struct {
		Label          string
		Flow           string
		Exchanges      []exchange
		ExpectedStatus engine.Status
		ExpectedQueue  string
		ExpectedGaveUp int
	}{
		{"on_fail after the set attempts, with the flow's retry text", withOnFail, []exchange{
			{"GO", []string{sms("Your age?")}},
			{"old", []string{sms("Please send a number, like 42.")}},
			{"very old", []string{sms("We'll call you.")}},
		}, engine.HandedOff, "front-desk", 1},
		{"a good answer resets the count", withOnFail, []exchange{
			{"GO", []string{sms("Your age?")}},
			{"old", []string{sms("Please send a number, like 42.")}},
			{"42", []string{sms("Your zip?")}},
			{"nowhere", []string{sms(txtRetry), sms("Your zip?")}},
			{"02139", []string{sms("Thanks.")}},
		}, engine.Ended, "", 0},
		{"without on_fail, three tries then a person takes over", defaultCap, []exchange{
			{"GO", []string{sms("Your age?")}},
			{"a", []string{sms(txtRetry), sms("Your age?")}},
			{"b", []string{sms(txtRetry), sms("Your age?")}},
			{"c", []string{sms(txtGaveUp)}},
			{"d", nil}, // handed off: the bot no longer re-asks
			{"42", nil},
		}, engine.HandedOff, "front-desk", 1},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, loadSet(t, tc.Flow), engine.SMS)
			for _, x := range tc.Exchanges {
				h.want(x.In, h.send(x.In), x.Expected...)
			}
			c := h.conv()
			if c.Status != tc.ExpectedStatus || c.Queue != tc.ExpectedQueue {
				t.Errorf("status %s, queue %q; want %s, %q", c.Status, c.Queue, tc.ExpectedStatus, tc.ExpectedQueue)
			}
			if n := len(h.events(engine.EventGaveUp)); n != tc.ExpectedGaveUp {
				t.Errorf("%d %s events, want %d", n, engine.EventGaveUp, tc.ExpectedGaveUp)
			}
		})
	}
}

func TestSet(t *testing.T) {
	set := loadSet(t, `
flow: calc
trigger: { keywords: [GO] }
steps:
  q:
    ask: { prompt: "How old are you?", type: integer, save: years }
    set:
      adult: years >= 18
      group: 'adult ? "adult" : "minor"'
    next: months
  months:
    set:
      months: years * 12
    next: show
  show:
    say: "{{ group }}, {{ months }} months."
    end: true
`)
	tests := []struct {
		Label    string
		Answer   string
		Expected string
		Adult    bool
	}{
		{"adult", "20", "adult, 240 months.", true},
		{"minor", "9", "minor, 108 months.", false},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, set, engine.SMS)
			h.send("GO")
			h.want("answer", h.send(tc.Answer), sms(tc.Expected))
			v := h.conv().Vars
			if v["adult"] != tc.Adult || v["group"] != tc.Label {
				t.Errorf("vars adult=%v group=%v, want %v and %s", v["adult"], v["group"], tc.Adult, tc.Label)
			}
		})
	}
}

func TestNextFirstMatch(t *testing.T) {
	set := loadSet(t, `
flow: route
trigger: { keywords: [GO] }
steps:
  q:
    ask: { prompt: "A number?", type: integer, save: n }
    next:
      - when: n > 10
        goto: big
      - when: n > 5
        goto: medium
      - goto: small
  big: { say: "big", end: true }
  medium: { say: "medium", end: true }
  small: { say: "small", end: true }
`)
	tests := []struct {
		Answer   string
		Expected string
	}{
		{"20", "big"}, // both guards hold: the first one wins
		{"11", "big"},
		{"10", "medium"},
		{"6", "medium"},
		{"5", "small"},
		{"-3", "small"},
	}
	for _, tc := range tests {
		t.Run(tc.Answer, func(t *testing.T) {
			h := newHarness(t, set, engine.SMS)
			h.send("GO")
			h.want("answer", h.send(tc.Answer), sms(tc.Expected))
		})
	}
}

func TestRuntimeExpressionError(t *testing.T) {
	set := loadSet(t, `
flow: fragile
trigger: { keywords: [GO] }
steps:
  q:
    ask: { prompt: "A number?", type: integer, save: n }
    set:
      ratio: 100 % n
    next:
      - when: 10 % n == 1
        goto: odd
      - goto: fallback
  odd:
    say: "odd"
    end: true
  fallback:
    say: "Fallback [{{ 7 % n }}]."
    end: true
`)
	tests := []struct {
		Label          string
		Answer         string
		Expected       string
		ExpectedErrors int
	}{
		{"no error", "3", "odd", 0},
		{"division by zero in set, when and template", "0", "Fallback []." /* the part renders as nothing */, 3},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, set, engine.SMS)
			h.send("GO")
			h.want("answer", h.send(tc.Answer), sms(tc.Expected))
			errs := h.events(engine.EventExprError)
			if len(errs) != tc.ExpectedErrors {
				t.Fatalf("%d %s events, want %d: %+v", len(errs), engine.EventExprError, tc.ExpectedErrors, errs)
			}
			for _, e := range errs {
				if e.Outcome != "failed" || e.Reason == "" || e.ConversationID == "" {
					t.Errorf("event %+v lacks an outcome, a reason or a conversation", e)
				}
			}
			c := h.conv()
			if c.Status != engine.Ended {
				t.Errorf("status %s, want ended: a failed expression must not leave the patient stuck", c.Status)
			}
			if _, set := c.Vars["ratio"]; set == (tc.ExpectedErrors > 0) {
				t.Errorf("ratio set = %v with %d errors", set, tc.ExpectedErrors)
			}
		})
	}
}

func TestEnd(t *testing.T) {
	const short = `
flow: short
trigger: { keywords: [GO] }
steps:
  bye:
    say: "Bye."
    end: true
`
	const deflt = `
flow: fallback
trigger: { default: true }
steps:
  hello:
    ask: { prompt: "How can we help?", type: text, save: what }
    next: done
  done:
    say: "Thanks."
    end: true
`
	tests := []struct {
		Label         string
		Flows         []string
		ExpectedAfter []string
	}{
		{"without a default flow, a later message gets the fallback text", []string{short}, []string{sms(txtNoFlow)}},
		{"with a default flow, a later message starts it", []string{short, deflt}, []string{sms("How can we help?")}},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, loadSet(t, tc.Flows...), engine.SMS)
			h.want("start", h.send("GO"), sms("Bye."))
			first := h.conv()
			if first.Status != engine.Ended {
				t.Fatalf("status %s, want ended", first.Status)
			}
			if ev := h.events(engine.EventEnded); len(ev) != 1 || ev[0].ConversationID != first.ID {
				t.Errorf("ended events %+v, want one for %s", ev, first.ID)
			}
			h.want("after the end", h.send("hello?"), tc.ExpectedAfter...)
		})
	}
}

func TestHandoff(t *testing.T) {
	set := loadSet(t, `
flow: desk
trigger: { keywords: [GO] }
steps:
  connect:
    say: "Connecting you."
    handoff: nurse
    next: after
  after:
    ask: { prompt: "Anything else?", type: text, save: more }
    next: bye
  bye:
    say: "Bye."
    end: true
`, `
flow: stuck
trigger: { keywords: [ASK] }
steps:
  q:
    ask: { prompt: "Your age?", type: integer, save: years, attempts: 1 }
    next: fin
  fin:
    say: "Thanks."
    end: true
`)
	ctx := context.Background()

	t.Run("the bot is silent until handed back, then moves on", func(t *testing.T) {
		h := newHarness(t, set, engine.SMS)
		h.want("start", h.send("GO"), sms("Connecting you."))
		c := h.conv()
		if c.Status != engine.HandedOff || c.Queue != "nurse" {
			t.Fatalf("status %s queue %q, want handed off to nurse", c.Status, c.Queue)
		}
		h.want("while handed off", h.send("hello?"))
		h.want("while handed off", h.send("anyone there"))
		if n := len(h.Store.Transcript(c.ID)); n != 4 {
			t.Errorf("transcript has %d lines, want 4: the patient's messages are kept", n)
		}
		res, err := h.Engine.HandBack(ctx, c.ID, "agent-7")
		if err != nil {
			t.Fatal(err)
		}
		h.want("hand back", res.Out, sms("Anything else?"))
		back := h.events(engine.EventHandBack)
		if len(back) != 1 || back[0].Actor != "agent" || back[0].ActorID != "agent-7" {
			t.Errorf("hand-back events %+v, want one by agent-7", back)
		}
		if _, err := h.Engine.HandBack(ctx, c.ID, "agent-7"); err == nil {
			t.Error("a second HandBack succeeded, want an error: the conversation is not handed off")
		}
		h.want("answer", h.send("no"), sms("Bye."))
		if _, err := h.Engine.HandBack(ctx, c.ID, "agent-7"); !errors.Is(err, engine.ErrNoConversation) {
			t.Errorf("HandBack of an ended conversation: %v, want ErrNoConversation", err)
		}
	})

	t.Run("after a failed question, hand back asks again", func(t *testing.T) {
		h := newHarness(t, set, engine.SMS)
		h.send("ASK")
		h.want("fail", h.send("old"), sms(txtGaveUp))
		res, err := h.Engine.HandBack(ctx, h.Conversation, "agent-7")
		if err != nil {
			t.Fatal(err)
		}
		h.want("hand back", res.Out, sms("Your age?"))
		h.want("answer", h.send("42"), sms("Thanks."))
	})

	t.Run("unknown conversation", func(t *testing.T) {
		h := newHarness(t, set, engine.SMS)
		if _, err := h.Engine.HandBack(ctx, "cv-none", "agent-7"); !errors.Is(err, engine.ErrNoConversation) {
			t.Errorf("HandBack: %v, want ErrNoConversation", err)
		}
	})
}

func TestWait(t *testing.T) {
	set := loadSet(t, `
flow: later
trigger: { keywords: [GO] }
steps:
  pause:
    wait: 2h
    next: q
  q:
    ask: { prompt: "How was your visit?", type: text, save: fb }
    next: done
  done:
    say: "Thanks."
    end: true
`)
	h := newHarness(t, set, engine.SMS)
	h.want("start", h.send("GO"))
	if c := h.conv(); c.Status != engine.Waiting || !c.TimerDue.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("status %s, timer %v; want waiting until %v", c.Status, c.TimerDue, t0.Add(2*time.Hour))
	}
	h.want("message while waiting", h.send("hello"))
	h.want("before the wait is over", h.advance(2*time.Hour-time.Minute))
	h.want("the wait is over", h.advance(time.Minute), sms("How was your visit?"))
	if c := h.conv(); c.Status != engine.Active || c.Step != "q" {
		t.Errorf("status %s at %s, want active at q", c.Status, c.Step)
	}
	if n := len(h.Store.Timers()); n != 0 {
		t.Errorf("%d timers left, want none", n)
	}
	h.want("answer", h.send("great"), sms("Thanks."))
}

func TestAskTimeout(t *testing.T) {
	const flow = `
flow: timed
trigger: { keywords: [GO] }
steps:
  q:
    ask:
      prompt: "Can you come?"
      type: yes_no
      save: coming
      timeout: 24h
      %s
    next: done
  done:
    say: "Thanks."
    end: true
  gone:
    say: "We didn't hear back."
    end: true
`
	type tick struct {
		After    time.Duration
		Answer   string // sent after the clock moves, when set
		Expected []string
	}
	tests := []struct {
		Label          string
		Options        string
		Ticks          []tick
		ExpectedStatus engine.Status
		ExpectedStep   string
	}{
		{"reminder at remind_after, then the on_timeout route", "remind_after: 4h\n      reminder: \"Reminder: can you come?\"\n      on_timeout: gone",
			[]tick{
				{After: 4*time.Hour - time.Minute},
				{After: time.Minute, Expected: []string{sms("Reminder: can you come?")}},
				{After: 20*time.Hour - time.Minute},
				{After: time.Minute, Expected: []string{sms("We didn't hear back.")}},
			}, engine.Ended, "gone"},
		{"reminder at half the timeout by default", "reminder: \"Reminder\"",
			[]tick{
				{After: 12*time.Hour - time.Minute},
				{After: time.Minute, Expected: []string{sms("Reminder")}},
			}, engine.Active, "q"},
		{"expiry without on_timeout ends the conversation", "",
			[]tick{{After: 24 * time.Hour}}, engine.Ended, "q"},
		{"an answer cancels the timers", "reminder: \"Reminder\"\n      on_timeout: gone",
			[]tick{
				{After: time.Hour, Answer: "yes", Expected: []string{sms("Thanks.")}},
				{After: 48 * time.Hour},
			}, engine.Ended, "done"},
		{"an answer after the reminder cancels the timeout", "remind_after: 1h\n      reminder: \"Reminder\"\n      on_timeout: gone",
			[]tick{
				{After: time.Hour, Expected: []string{sms("Reminder")}},
				{After: time.Hour, Answer: "yes", Expected: []string{sms("Thanks.")}},
				{After: 48 * time.Hour},
			}, engine.Ended, "done"},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, loadSet(t, fmt.Sprintf(flow, tc.Options)), engine.SMS)
			h.want("start", h.send("GO"), sms("Can you come?"))
			elapsed := time.Duration(0)
			for _, tk := range tc.Ticks {
				elapsed += tk.After
				out := h.advance(tk.After)
				if tk.Answer != "" {
					out = append(out, h.send(tk.Answer)...)
				}
				h.want(fmt.Sprintf("at +%s", elapsed), out, tk.Expected...)
				if c := h.conv(); c.Status == engine.Ended && len(h.Store.Timers()) != 0 {
					t.Errorf("at +%s: the conversation ended but timers are left: %+v", elapsed, h.Store.Timers())
				}
			}
			c := h.conv()
			if c.Status != tc.ExpectedStatus || c.Step != tc.ExpectedStep {
				t.Errorf("status %s at %s, want %s at %s", c.Status, c.Step, tc.ExpectedStatus, tc.ExpectedStep)
			}
			if c.Status == engine.Ended {
				if n := len(h.Store.Timers()); n != 0 {
					t.Errorf("%d timers left after the end: %+v", n, h.Store.Timers())
				}
				if !c.TimerDue.IsZero() {
					t.Errorf("TimerDue = %v after the end, want zero", c.TimerDue)
				}
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	set := loadSet(t, `
flow: notice
vars:
  doctor: text
steps:
  hi:
    say: "Your visit with {{ doctor }} is booked."
    next: bye
  bye:
    say: "Ask {{ doctor ?? 'the front desk' }} anything."
    end: true
`)
	ctx := context.Background()
	tests := []struct {
		Label, Flow, Step string
		Vars              map[string]any
		Expected          string
	}{
		{"unknown flow", "nope", "", nil, `no flow "nope"`},
		{"unknown step", "notice", "nope", nil, `has no step "nope"`},
		{"unknown variable", "notice", "", map[string]any{"doctr": "Dr. Lee"}, `has no variable "doctr"`},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, set, engine.SMS)
			_, err := h.Engine.Start(ctx, tc.Flow, engine.SMS, h.Address, tc.Step, tc.Vars)
			if err == nil || !strings.Contains(err.Error(), tc.Expected) {
				t.Errorf("Start: %v, want an error with %q", err, tc.Expected)
			}
			if len(h.Store.Outbox()) != 0 {
				t.Error("a failed Start sent messages")
			}
		})
	}
	t.Run("declared variables fill the templates", func(t *testing.T) {
		h := newHarness(t, set, engine.SMS)
		h.want("start", h.start("notice", map[string]any{"doctor": "Dr. Lee"}),
			sms("Your visit with Dr. Lee is booked."), sms("Ask Dr. Lee anything."))
	})
	t.Run("a declared variable not given reads as nil", func(t *testing.T) {
		h := newHarness(t, set, engine.SMS)
		h.want("start", h.start("notice", nil), sms("Your visit with  is booked."), sms("Ask the front desk anything."))
		if n := len(h.events(engine.EventExprError)); n != 0 {
			t.Errorf("%d expression errors, want none", n)
		}
	})
}

func TestUnknownChannel(t *testing.T) {
	h := newHarness(t, loadSet(t, "flow: x\nsteps:\n  a: { say: hi, end: true }\n"), engine.SMS)
	_, err := h.Engine.Handle(context.Background(), engine.Inbound{Channel: "fax", Address: "+15550000", Text: "hi"})
	if err == nil {
		t.Fatal("Handle accepted a message on an unknown channel")
	}
	if strings.Contains(err.Error(), "+15550000") {
		t.Errorf("the error %q shows the contact's address", err)
	}
}

func TestObserver(t *testing.T) {
	set := loadSet(t, `
flow: seen
trigger: { keywords: [GO] }
steps:
  q:
    ask: { prompt: "A number?", type: integer, save: n, attempts: 1, on_fail: oops, timeout: 1h, on_timeout: late }
    next:
      - when: n > 5
        goto: big
      - goto: small
  big: { say: "big", end: true }
  small: { say: "small", end: true }
  oops: { say: "oops", end: true }
  late: { say: "late", end: true }
`)
	type seen struct {
		Step string
		Edge string // "start", or the edge's kind and guard
	}
	tests := []struct {
		Label    string
		Answer   string // empty: let the question time out
		Expected []seen
	}{
		{"guarded route", "9", []seen{{"q", "start"}, {"big", "next n > 5"}}},
		{"default route", "2", []seen{{"q", "start"}, {"small", "next "}}},
		{"failed answer", "many", []seen{{"q", "start"}, {"oops", "on fail"}}},
		{"timeout", "", []seen{{"q", "start"}, {"late", "on timeout"}}},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			var got []seen
			h := newHarness(t, set, engine.SMS, engine.WithObserver(func(_ *engine.Conversation, s *flows.Step, e *flows.Edge) {
				label := "start"
				if e != nil {
					if e.To != s {
						t.Errorf("edge to %s observed entering %s", e.To.ID, s.ID)
					}
					label = e.Label()
					if e.Kind == flows.EdgeNext {
						label = "next " + label
					}
				}
				got = append(got, seen{s.ID, label})
			}))
			h.send("GO")
			if tc.Answer == "" {
				h.advance(time.Hour)
			} else {
				h.send(tc.Answer)
			}
			if !slices.Equal(got, tc.Expected) {
				t.Errorf("observed %v, want %v", got, tc.Expected)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	set := loadSet(t, `
flow: opts
trigger: { keywords: [GO] }
steps:
  d:
    ask: { prompt: "Date?", type: date, save: d }
    next: p
  p:
    ask: { prompt: "Phone?", type: phone, save: p }
    next: fin
  fin: { say: "Thanks.", end: true }
`)
	tests := []struct {
		Label         string
		Options       []engine.Option
		Date, Phone   string
		ExpectedDate  time.Time
		ExpectedPhone string
	}{
		{"US defaults", nil, "3/4/1985", "201-555-0123", time.Date(1985, 3, 4, 0, 0, 0, 0, time.UTC), "+12015550123"},
		{"day first, British numbers", []engine.Option{engine.WithDateOrder(answer.DMY), engine.WithRegion("GB")},
			"3/4/1985", "020 7946 0018", time.Date(1985, 4, 3, 0, 0, 0, 0, time.UTC), "+442079460018"},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, set, engine.SMS, tc.Options...)
			h.send("GO")
			h.send(tc.Date)
			h.want("phone", h.send(tc.Phone), sms("Thanks."))
			v := h.conv().Vars
			if d, ok := v["d"].(time.Time); !ok || !d.Equal(tc.ExpectedDate) || v["p"] != tc.ExpectedPhone {
				t.Errorf("saved %v and %v, want %v and %s", v["d"], v["p"], tc.ExpectedDate, tc.ExpectedPhone)
			}
		})
	}
}

func TestAskWithEnd(t *testing.T) {
	set := loadSet(t, `
flow: last
trigger: { keywords: [GO] }
steps:
  q:
    ask: { prompt: "Any last words?", type: text, save: words }
    set:
      shout: upper(words)
    end: true
`)
	h := newHarness(t, set, engine.SMS)
	h.send("GO")
	h.want("answer", h.send("bye now"))
	if c := h.conv(); c.Status != engine.Ended || c.Vars["shout"] != "BYE NOW" {
		t.Errorf("status %s shout %v: want the set applied, then the end", c.Status, c.Vars["shout"])
	}
}

// removableFlows serves a set from which a flow can be taken away, as a
// reload that deletes a file does.
type removableFlows struct {
	*flows.Set
	removed string
}

func (f *removableFlows) Flow(id string) *flows.Flow {
	if id == f.removed {
		return nil
	}
	return f.Set.Flow(id)
}

func (f *removableFlows) Version(id, hash string) *flows.Flow {
	if id == f.removed {
		return nil
	}
	return f.Set.Version(id, hash)
}

func TestFlowRemovedMidConversation(t *testing.T) {
	fl := &removableFlows{Set: loadSet(t, `
flow: gone
trigger: { keywords: [GO] }
steps:
  q:
    ask: { prompt: "Your name?", type: text, save: name }
    next: fin
  fin: { say: "Thanks.", end: true }
`)}
	h := newHarness(t, fl, engine.SMS)
	h.send("GO")
	fl.removed = "gone"
	h.want("answer after the removal", h.send("Ana"), sms(txtNoFlow))
	c := h.conv()
	if c.Status != engine.Ended || c.Vars["name"] != nil {
		t.Errorf("status %s vars %v: want ended, nothing saved", c.Status, c.Vars)
	}
	if ev := h.events(engine.EventEnded); len(ev) != 1 || ev[0].Reason != "the flow no longer exists" {
		t.Errorf("ended events %+v", ev)
	}
}
