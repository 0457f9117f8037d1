package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
)

const keywordFlow = `
flow: clinic
trigger: { keywords: [GO] }
keywords:
  HELP: "Clinic help: call 555-0100."
  AGENT:
    say: "Connecting you."
    handoff: front-desk
  MENU:
    goto: menu
  BYE:
    say: "Goodbye."
    end: true
steps:
  q:
    ask:
      prompt: "Your name?"
      type: text
      save: name
      timeout: 24h
      remind_after: 4h
      reminder: "Reminder: your name?"
    next: menu
  menu:
    ask: { prompt: "Menu: what next?", type: text, save: choice }
    next: done
  done:
    say: "Done."
    end: true
`

const otherFlow = `
flow: other
trigger: { keywords: [REFILL] }
steps:
  r:
    ask: { prompt: "Which medicine?", type: text, save: med }
    next: fin
  fin:
    say: "Noted."
    end: true
`

func TestOptOut(t *testing.T) {
	h := newHarness(t, loadSet(t, keywordFlow, otherFlow), engine.SMS)
	steps := []struct {
		Label    string
		In       string
		Advance  time.Duration
		Expected []string
	}{
		{Label: "start", In: "GO", Expected: []string{sms("Your name?")}},
		{Label: "STOP in any case and with punctuation", In: " stop. ", Expected: []string{sms(txtOptOut)}},
		{Label: "a second STOP says nothing", In: "STOP"},
		{Label: "HELP is silent", In: "HELP"},
		{Label: "a flow keyword is silent", In: "AGENT"},
		{Label: "a trigger keyword is silent", In: "REFILL"},
		{Label: "an answer is silent", In: "Ana"},
		{Label: "a due reminder is silent", Advance: 5 * time.Hour},
		{Label: "START opts back in", In: "Start", Expected: []string{sms(txtOptIn)}},
		{Label: "the conversation goes on", In: "Ana", Expected: []string{sms("Menu: what next?")}},
	}
	for _, s := range steps {
		var out []*engine.Outbound
		if s.Advance > 0 {
			out = h.advance(s.Advance)
		} else {
			out = h.send(s.In)
		}
		h.want(s.Label, out, s.Expected...)
	}
	c := h.conv()
	if c.FlowID != "clinic" || c.Status != engine.Active || c.Vars["name"] != "Ana" {
		t.Errorf("conversation %s %s name=%v; want clinic, active, name Ana saved only after START", c.FlowID, c.Status, c.Vars["name"])
	}
	if n, m := len(h.events(engine.EventOptOut)), len(h.events(engine.EventOptIn)); n != 1 || m != 1 {
		t.Errorf("%d opt-out and %d opt-in events, want 1 and 1", n, m)
	}

	t.Run("the clinic cannot start a flow for an opted-out contact", func(t *testing.T) {
		h := newHarness(t, loadSet(t, keywordFlow), engine.SMS)
		h.send("UNSUBSCRIBE")
		if _, err := h.Engine.Start(context.Background(), "clinic", engine.SMS, h.Address, "", nil); err == nil {
			t.Error("Start succeeded for an opted-out contact")
		}
	})
}

func TestHelp(t *testing.T) {
	const noHelp = `
flow: plain
trigger: { keywords: [PLAIN] }
steps:
  q:
    ask: { prompt: "Your name?", type: text, save: name }
    next: fin
  fin: { say: "Bye.", end: true }
`
	tests := []struct {
		Label    string
		First    string // starts a conversation when set
		Help     string
		Expected string
	}{
		{"the flow's HELP text", "GO", "HELP", "Clinic help: call 555-0100."},
		{"the flow's HELP, any case", "GO", "help!", "Clinic help: call 555-0100."},
		{"no conversation: the default text", "", "HELP", txtHelp},
		{"a flow without HELP: the default text", "PLAIN", "Help", txtHelp},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, loadSet(t, keywordFlow, noHelp), engine.SMS)
			if tc.First != "" {
				h.send(tc.First)
			}
			h.want("help", h.send(tc.Help), sms(tc.Expected))
			if c := h.Current(); c != nil && c.Step != "q" {
				t.Errorf("HELP moved the conversation to %s", c.Step)
			}
		})
	}
}

func TestFlowKeywords(t *testing.T) {
	set := loadSet(t, keywordFlow)
	tests := []struct {
		Label          string
		Word           string
		Expected       []string
		ExpectedStatus engine.Status
		ExpectedStep   string
	}{
		{"goto", "menu", []string{sms("Menu: what next?")}, engine.Active, "menu"},
		{"goto, with punctuation", "Menu!", []string{sms("Menu: what next?")}, engine.Active, "menu"},
		{"handoff", "AGENT", []string{sms("Connecting you.")}, engine.HandedOff, "q"},
		{"end", "bye", []string{sms("Goodbye.")}, engine.Ended, "q"},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, set, engine.SMS)
			h.send("GO")
			h.want(tc.Word, h.send(tc.Word), tc.Expected...)
			c := h.conv()
			if c.Status != tc.ExpectedStatus || c.Step != tc.ExpectedStep {
				t.Errorf("status %s at %s, want %s at %s", c.Status, c.Step, tc.ExpectedStatus, tc.ExpectedStep)
			}
			if c.Vars["name"] != nil {
				t.Errorf("the keyword was saved as an answer: %v", c.Vars["name"])
			}
		})
	}
	t.Run("goto wakes a handed-off conversation", func(t *testing.T) {
		h := newHarness(t, set, engine.SMS)
		h.send("GO")
		h.send("AGENT")
		h.want("menu", h.send("MENU"), sms("Menu: what next?"))
		if c := h.conv(); c.Status != engine.Active {
			t.Errorf("status %s, want active", c.Status)
		}
	})
}

func TestTriggerKeywords(t *testing.T) {
	set := loadSet(t, keywordFlow, otherFlow)
	h := newHarness(t, set, engine.SMS)
	h.want("trigger", h.send("go"), sms("Your name?"))
	first := h.conv()
	h.want("another trigger mid-flow", h.send("Refill"), sms("Which medicine?"))
	second := h.conv()
	if second.ID == first.ID || second.FlowID != "other" {
		t.Fatalf("conversation %s of %s, want a new one of `other`", second.ID, second.FlowID)
	}
	if old := h.Store.Conversation(first.ID); old.Status != engine.Ended {
		t.Errorf("the replaced conversation is %s, want ended", old.Status)
	}
	if n := len(h.Store.Timers()); n != 0 {
		t.Errorf("the replaced conversation left %d timers", n)
	}
	h.want("answer", h.send("statins"), sms("Noted."))
}

func TestDefaultFlow(t *testing.T) {
	const deflt = `
flow: welcome
trigger: { default: true }
steps:
  hi:
    say: "Hi! This is Sunny Clinic."
    ask: { prompt: "How can we help?", type: text, save: need }
    next: fin
  fin: { say: "Thanks.", end: true }
`
	t.Run("a new contact starts the default flow", func(t *testing.T) {
		h := newHarness(t, loadSet(t, deflt, otherFlow), engine.SMS)
		h.want("first message", h.send("hello there"), sms("Hi! This is Sunny Clinic."), sms("How can we help?"))
		c := h.conv()
		if c.FlowID != "welcome" || c.Vars["need"] != nil {
			t.Errorf("flow %s vars %v: want welcome, and the first message not taken as an answer", c.FlowID, c.Vars)
		}
	})
	t.Run("a trigger keyword wins over the default", func(t *testing.T) {
		h := newHarness(t, loadSet(t, deflt, otherFlow), engine.SMS)
		h.want("first message", h.send("REFILL"), sms("Which medicine?"))
	})
	t.Run("no default flow", func(t *testing.T) {
		h := newHarness(t, loadSet(t, otherFlow), engine.SMS)
		h.want("first message", h.send("hello there"), sms(txtNoFlow))
		if h.Current() != nil {
			t.Error("a conversation was opened without a flow")
		}
	})
}

func TestLanguageSelection(t *testing.T) {
	set := loadSet(t, `
flow: bilingual
language: en
trigger: { keywords: [HOLA] }
steps:
  lang:
    ask:
      prompt: { en: "English or Spanish?", es: "¿Inglés o español?" }
      type: choice
      choices:
        - { value: en, label: English }
        - { value: es, label: Español, synonyms: [spanish] }
        - { value: fr, label: Français }
      save: language
    next: day
  day:
    ask:
      prompt: { en: "Which day?", es: "¿Qué día?" }
      type: choice
      choices:
        - { value: mon, label: { en: Monday, es: Lunes } }
        - { value: tue, label: { en: Tuesday, es: Martes } }
      save: day
    next: fin
  fin:
    say: { en: "See you ({{ contact.language }}).", es: "Hasta pronto ({{ contact.language }})." }
    end: true
`)
	t.Run("saving `language` switches the conversation and the contact", func(t *testing.T) {
		h := newHarness(t, set, engine.SMS)
		h.send("HOLA")
		h.want("choose", h.send("spanish"), sms("¿Qué día?\nResponda 1 para Lunes o 2 para Martes."))
		h.want("answer", h.send("lunes"), sms("Hasta pronto (es)."))
		if c := h.conv(); c.Language != "es" {
			t.Errorf("conversation language %q, want es", c.Language)
		}
		if ct := h.Store.Contact(h.conv().ContactID); ct == nil || ct.Language != "es" {
			t.Errorf("contact %+v, want its language saved as es", ct)
		}
		h.want("the next conversation", h.send("HOLA"), sms("¿Inglés o español?\nResponda 1 para English, 2 para Español o 3 para Français."))
	})
	t.Run("a language the flow does not speak is saved but not used", func(t *testing.T) {
		h := newHarness(t, set, engine.SMS)
		h.send("HOLA")
		h.want("choose", h.send("3"), sms("Which day?\nReply 1 for Monday or 2 for Tuesday."))
		if c := h.conv(); c.Vars["language"] != "fr" || c.Language != "en" {
			t.Errorf("language var %v, conversation %q; want fr saved and en kept", c.Vars["language"], c.Language)
		}
	})
}

func TestDeduplication(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, loadSet(t, keywordFlow), engine.SMS)
	msg := func(ch engine.Channel, text, id string) *engine.Result {
		t.Helper()
		res, err := h.Engine.Handle(ctx, engine.Inbound{Channel: ch, Address: h.Address, Text: text, ProviderID: id})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := msg(engine.SMS, "GO", "SM1")
	if first.Duplicate || len(first.Out) != 1 {
		t.Fatalf("first message: duplicate=%v, %d replies", first.Duplicate, len(first.Out))
	}
	if res := msg(engine.SMS, "Ana", "SM2"); len(res.Out) != 1 {
		t.Fatalf("answer: %d replies", len(res.Out))
	}
	events := len(h.Store.Events())
	outbox := len(h.Store.Outbox())
	res := msg(engine.SMS, "Ana", "SM2")
	if !res.Duplicate || len(res.Out) != 0 {
		t.Errorf("replayed message: duplicate=%v, %d replies; want a duplicate and no reply", res.Duplicate, len(res.Out))
	}
	if len(h.Store.Events()) != events || len(h.Store.Outbox()) != outbox {
		t.Error("a replayed message wrote events or messages")
	}
	if res.Conversation != nil {
		t.Errorf("a duplicate returned a conversation")
	}
	if c := h.Store.Conversation(first.Conversation.ID); c.Step != "menu" {
		t.Errorf("the replay moved the flow to %s, want it still at menu", c.Step)
	}
	if res := msg(engine.Messenger, "hi", "SM2"); res.Duplicate {
		t.Error("the same id on another channel was taken for a duplicate")
	}
	if a, b := msg(engine.SMS, "HELP", ""), msg(engine.SMS, "HELP", ""); a.Duplicate || b.Duplicate {
		t.Error("messages without a provider id were taken for duplicates")
	}
}
