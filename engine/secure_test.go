package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
)

// secureFlow has a sensitive segment between two non-sensitive parts. %s is
// replaced by extra `secure:` lines.
const secureFlow = `
flow: intake
trigger: { keywords: [INTAKE] }
secure:
  link_message: "Continue privately: {{ link }}"
  verify: { prompt: "Date of birth?", equals: dob }
  %s
steps:
  name:
    ask: { prompt: "First name?", type: text, save: first_name }
    next: dob
  dob:
    ask: { prompt: "Date of birth?", type: date, save: dob }
    next: reason
  reason:
    sensitive: true
    ask: { prompt: "What brings you in, {{ first_name }}?", type: text, save: reason }
    next: meds
  meds:
    sensitive: true
    ask: { prompt: "Any medicines?", type: text, save: meds }
    next: day
  day:
    ask: { prompt: "Which day?", type: choice, choices: [Monday, Tuesday], save: day }
    next: done
  done:
    say: "Booked for {{ day }}, {{ first_name }}."
    end: true
`

func intakeSet(t testing.TB, secureLines string) *flows.Set {
	return loadSet(t, strings.Replace(secureFlow, "%s", secureLines, 1))
}

// toSensitive runs the intake flow up to its first sensitive step.
func toSensitive(t *testing.T, h *harness) []*engine.Outbound {
	t.Helper()
	h.want("start", h.send("INTAKE"), h.on("First name?"))
	h.want("name", h.send("Ana"), h.on("Date of birth?"))
	return h.send("3/14/1985")
}

// on builds an expected line on the harness's own channel.
func (h *harness) on(text string) string { return string(h.Channel) + ": " + text }

func TestSensitiveStepSendsOnlyTheLink(t *testing.T) {
	h := newHarness(t, intakeSet(t, ""), engine.SMS)
	out := toSensitive(t, h)
	h.want("reaching the sensitive step", out, sms("Continue privately: "+link(1)))
	if !out[0].Link || out[0].Sensitive || out[0].Address != h.Address {
		t.Errorf("link message %+v: want Link, not sensitive, addressed to the contact", out[0])
	}
	c := h.conv()
	if c.Secure != engine.SecurePending || c.PromptSent || c.Step != "reason" {
		t.Errorf("secure %q, prompt sent %v, step %s; want pending, no prompt, at reason", c.Secure, c.PromptSent, c.Step)
	}
	links := h.Store.Links()
	if len(links) != 1 || links[0].ConversationID != c.ID || len(links[0].TokenHash) == 0 {
		t.Errorf("stored links %+v, want one hashed link bound to %s", links, c.ID)
	}
	if ev := h.events(engine.EventLinkIssued); len(ev) != 1 || ev[0].Outcome != "ok" {
		t.Errorf("link events %+v, want one issued", ev)
	}

	out = h.open("03/14/1985")
	h.want("opening the page", out, sec("What brings you in, Ana?"))
	if !out[0].Sensitive || out[0].Address != "" || out[0].Input != "text" {
		t.Errorf("secure prompt %+v: want sensitive, no address, input text", out[0])
	}
	h.want("answer", h.secure("itchy rash"), sec("Any medicines?"))
	h.want("return: origin", h.secure("ibuprofen"), sec(txtBackSMS), sms("Which day?\nReply 1 for Monday or 2 for Tuesday."))
	if c := h.conv(); c.Secure != engine.SecureNone || c.Vars["reason"] != "itchy rash" || c.Vars["meds"] != "ibuprofen" {
		t.Errorf("secure %q vars %v: want the segment closed and both answers saved", c.Secure, c.Vars)
	}
	if _, err := h.Send(context.Background(), engine.Secure, "hello"); !errors.Is(err, engine.ErrSecureClosed) {
		t.Errorf("a secure message after the segment: %v, want ErrSecureClosed", err)
	}
	h.want("back on SMS", h.send("2"), sms("Booked for Tuesday, Ana."))
}

func TestSMSAnswerToASensitiveStep(t *testing.T) {
	h := newHarness(t, intakeSet(t, ""), engine.SMS)
	toSensitive(t, h)
	h.want("before the page opens", h.send("chest pain since Monday"), sms(txtPointer))
	h.open("03/14/1985")
	h.want("while the page is open", h.send("still chest pain"), sms(txtPointer))
	c := h.conv()
	if c.Vars["reason"] != nil || c.Step != "reason" {
		t.Errorf("vars %v at %s: an SMS answer to a sensitive step was taken", c.Vars, c.Step)
	}
	for _, l := range h.Store.Transcript(c.ID) {
		if l.Inbound && strings.Contains(l.Text, "chest pain") && !l.Sensitive {
			t.Errorf("transcript line %q is not marked sensitive", l.Text)
		}
	}
	for _, o := range h.Store.Outbox() {
		if strings.Contains(o.Text, "chest") {
			t.Errorf("the SMS answer was echoed: %+v", o)
		}
	}
}

func TestLinkResendRateLimit(t *testing.T) {
	h := newHarness(t, intakeSet(t, ""), engine.SMS, engine.WithLinkResend(5*time.Minute, 2))
	toSensitive(t, h)
	steps := []struct {
		After    time.Duration
		Expected string
	}{
		{0, txtPointer},
		{5 * time.Minute, "Continue privately: " + link(2)},
		{time.Minute, txtPointer}, // too soon after the last link
		{5 * time.Minute, "Continue privately: " + link(3)},
		{5 * time.Minute, txtPointer}, // two re-sends are the most
		{time.Hour, txtPointer},
	}
	for i, s := range steps {
		h.Clock.Advance(s.After)
		h.want("message "+string(rune('1'+i)), h.send("hello?"), sms(s.Expected))
	}
	if n := h.Links.Count(); n != 3 {
		t.Errorf("%d links issued, want 3", n)
	}
}

func TestReturnToOrigin(t *testing.T) {
	tests := []struct {
		Label    string
		Channel  engine.Channel
		Expected []string
	}{
		{"SMS", engine.SMS, []string{sec(txtBackSMS), sms("Which day?\nReply 1 for Monday or 2 for Tuesday.")}},
		{"Messenger", engine.Messenger, []string{sec(txtBackFB), fb("Which day?")}},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, intakeSet(t, "return: origin"), tc.Channel)
			out := toSensitive(t, h)
			h.want("link", out, h.on("Continue privately: "+link(1)))
			h.open("3/14/1985")
			h.secure("itchy rash")
			out = h.secure("none")
			h.want("end of the segment", out, tc.Expected...)
			if out[1].Address != h.Address {
				t.Errorf("the next prompt is addressed to %q, want the contact", out[1].Address)
			}
		})
	}
}

func TestReturnStay(t *testing.T) {
	h := newHarness(t, intakeSet(t, "return: stay"), engine.SMS)
	toSensitive(t, h)
	h.open("3/14/1985")
	h.secure("itchy rash")
	h.want("end of the segment", h.secure("none"), sec("Which day?"))
	if c := h.conv(); c.Secure != engine.SecureOpen {
		t.Errorf("secure %q, want still open", c.Secure)
	}
	h.want("an SMS answer", h.send("Monday"), sms(txtPointer))
	if c := h.conv(); c.Vars["day"] != nil {
		t.Errorf("the SMS answer was saved: %v", c.Vars["day"])
	}
	h.want("the secure answer", h.secure("1"), sec("Booked for Monday, Ana."), sec(txtEnded))
}

func TestForceSecure(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, intakeSet(t, ""), engine.SMS)
	h.send("INTAKE")
	res, err := h.Engine.ForceSecure(ctx, h.Conversation, "agent-7")
	if err != nil {
		t.Fatal(err)
	}
	h.want("force", res.Out, sms("Continue privately: "+link(1)))
	if ev := h.events(engine.EventSwitchSecure); len(ev) != 1 || ev[0].ActorID != "agent-7" {
		t.Errorf("switch events %+v, want one by agent-7", ev)
	}
	h.want("an SMS answer", h.send("Ana"), sms(txtPointer))
	// The date of birth is not known yet, so the knowledge check cannot
	// pass; the page is opened as an agent would let the patient in.
	res, err = h.Engine.SecureOpened(ctx, h.Conversation)
	if err != nil {
		t.Fatal(err)
	}
	h.want("opening the page asks the question there", res.Out, sec("First name?"))
	h.want("answer", h.secure("Ana"), sec("Date of birth?"))
	h.secure("3/14/1985")
	h.secure("itchy rash")
	h.want("after the sensitive steps", h.secure("none"), sec("Which day?"))
	res, err = h.Engine.ForceSecure(ctx, h.Conversation, "agent-7")
	if err != nil {
		t.Fatal(err)
	}
	h.want("forcing an open session again", res.Out)
	h.want("end", h.secure("2"), sec("Booked for Tuesday, Ana."), sec(txtEnded))
	if _, err := h.Engine.ForceSecure(ctx, h.Conversation, "agent-7"); !errors.Is(err, engine.ErrNoConversation) {
		t.Errorf("ForceSecure of an ended conversation: %v, want ErrNoConversation", err)
	}
}

func TestSecureClosed(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, intakeSet(t, ""), engine.SMS, engine.WithLinkResend(time.Minute, 3))
	toSensitive(t, h)
	h.open("3/14/1985")
	if _, err := h.Engine.SecureClosed(ctx, h.Conversation); err != nil {
		t.Fatal(err)
	}
	if c := h.conv(); c.Secure != engine.SecurePending || c.PromptSent {
		t.Errorf("secure %q prompt sent %v, want pending and the question to be asked again", c.Secure, c.PromptSent)
	}
	if _, err := h.Send(ctx, engine.Secure, "itchy rash"); !errors.Is(err, engine.ErrSecureClosed) {
		t.Errorf("a secure message after the close: %v, want ErrSecureClosed", err)
	}
	// At once, inside the resend window: the old link is spent, so a pointer
	// to it would strand the patient.
	h.want("an SMS message gets a fresh link", h.send("hello?"), sms("Continue privately: "+link(2)))
	h.want("reopening asks again", h.open("3/14/1985"), sec("What brings you in, Ana?"))
	h.want("answer", h.secure("itchy rash"), sec("Any medicines?"))
}

func TestSecureMessageErrors(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, intakeSet(t, ""), engine.SMS)
	toSensitive(t, h)
	if _, err := h.Send(ctx, engine.Secure, "itchy rash"); !errors.Is(err, engine.ErrSecureClosed) {
		t.Errorf("a secure message before the page opened: %v, want ErrSecureClosed", err)
	}
	_, err := h.Engine.Handle(ctx, engine.Inbound{Channel: engine.Secure, ConversationID: "cv-none", Text: "hi"})
	if !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("a secure message for an unknown conversation: %v, want ErrNotFound", err)
	}
	if c := h.conv(); c.Vars["reason"] != nil {
		t.Error("a refused secure message was saved")
	}
}

func TestCheckIdentity(t *testing.T) {
	ctx := context.Background()
	const byName = `
flow: by-name
trigger: { keywords: [NAME] }
secure:
  verify: { prompt: "Your last name?", equals: last_name }
steps:
  q:
    ask: { prompt: "Last name?", type: text, save: last_name }
    next: s
  s:
    sensitive: true
    ask: { prompt: "Symptoms?", type: text, save: symptoms }
    next: fin
  fin: { say: "Thanks.", end: true }
`
	const noCheck = `
flow: no-check
trigger: { keywords: [FREE] }
steps:
  s:
    sensitive: true
    ask: { prompt: "Symptoms?", type: text, save: symptoms }
    next: fin
  fin: { say: "Thanks.", end: true }
`
	const byNumbers = `
flow: by-numbers
trigger: { keywords: [PIN] }
secure:
  verify: { prompt: "Your PIN?", equals: pin }
steps:
  q:
    ask: { prompt: "Choose a PIN", type: integer, save: pin }
    next: w
  w:
    ask: { prompt: "Your weight?", type: number, save: weight }
    next: s
  s:
    sensitive: true
    ask: { prompt: "Symptoms?", type: text, save: symptoms }
    next: fin
  fin: { say: "Thanks.", end: true }
`
	byWeight := strings.NewReplacer("flow: by-numbers", "flow: by-weight", "[PIN]", "[WEIGHT]", "equals: pin", "equals: weight").Replace(byNumbers)
	set := loadSet(t, strings.Replace(secureFlow, "%s", "", 1), byName, noCheck, byNumbers, byWeight)
	setups := map[string][]string{
		"dob":     {"INTAKE", "Ana", "3/14/1985"},
		"name":    {"NAME", "Lopez"},
		"nocheck": {"FREE"},
		"pin":     {"PIN", "4821", "150.5"},
		"weight":  {"WEIGHT", "4821", "150.5"},
	}
	tests := []struct {
		Label    string
		Setup    string
		Answer   string
		Expected bool
	}{
		{"same date, other form", "dob", "03/14/1985", true},
		{"same date in words", "dob", "March 14, 1985", true},
		{"another day", "dob", "3/15/1985", false},
		{"not a date", "dob", "Lopez", false},
		{"empty", "dob", "", false},
		{"name, other case and spaces", "name", "  lopez ", true},
		{"another name", "name", "Lopes", false},
		{"a flow without a check", "nocheck", "anything", true},
		{"whole number", "pin", "4821", true},
		{"another whole number", "pin", "4822", false},
		{"number", "weight", "150.5", true},
		{"another number", "weight", "150", false},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, set, engine.SMS)
			for _, m := range setups[tc.Setup] {
				h.send(m)
			}
			ok, err := h.Engine.CheckIdentity(ctx, h.Conversation, tc.Answer)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.Expected {
				t.Errorf("CheckIdentity(%q) = %v, want %v", tc.Answer, ok, tc.Expected)
			}
			if c := h.conv(); c.Secure == engine.SecureOpen {
				t.Error("the check opened the secure session by itself")
			}
		})
	}
	t.Run("unknown conversation", func(t *testing.T) {
		h := newHarness(t, set, engine.SMS)
		if _, err := h.Engine.CheckIdentity(ctx, "cv-none", "x"); !errors.Is(err, engine.ErrNoConversation) {
			t.Errorf("CheckIdentity: %v, want ErrNoConversation", err)
		}
	})
}

// failingIssuer cannot issue links.
type failingIssuer struct{}

func (failingIssuer) IssueLink(context.Context, engine.Tx, *engine.Conversation, time.Duration) (string, error) {
	return "", errors.New("the key service is down")
}

func TestLinkUnavailable(t *testing.T) {
	tests := []struct {
		Label  string
		Option engine.Option
	}{
		{"no issuer configured", engine.WithLinkIssuer(nil)},
		{"the issuer fails", engine.WithLinkIssuer(failingIssuer{})},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, intakeSet(t, ""), engine.SMS, tc.Option)
			h.want("sensitive step", toSensitive(t, h), sms(txtNoSecure))
			c := h.conv()
			if c.Status != engine.HandedOff || c.Secure != engine.SecureNone {
				t.Errorf("status %s secure %q, want handed off, no secure session", c.Status, c.Secure)
			}
			if ev := h.events(engine.EventLinkIssued); len(ev) != 1 || ev[0].Outcome != "failed" {
				t.Errorf("link events %+v, want one failed", ev)
			}
		})
	}
}

func TestSensitiveSayStep(t *testing.T) {
	set := loadSet(t, `
flow: results
trigger: { keywords: [RESULTS] }
steps:
  name:
    ask: { prompt: "First name?", type: text, save: first_name }
    next: info
  info:
    sensitive: true
    say: "Your lab results are ready: all normal."
    next: questions
  questions:
    sensitive: true
    ask: { prompt: "Any questions?", type: text, save: questions }
    next: fin
  fin:
    say: "Thanks."
    end: true
`)
	ctx := context.Background()
	h := newHarness(t, set, engine.SMS)
	h.send("RESULTS")
	h.want("a sensitive say step", h.send("Ana"), sms(txtDefaultLink(1)))
	h.want("the page opens: the step runs and the flow goes on", h.open(""),
		sec("Your lab results are ready: all normal."), sec("Any questions?"))
	res, err := h.Engine.SecureOpened(ctx, h.Conversation)
	if err != nil {
		t.Fatal(err)
	}
	h.want("opened twice", res.Out)
	h.want("answer", h.secure("none"), sec(txtBackSMS), sms("Thanks."))
}

// txtDefaultLink is the link message of a flow without its own.
func txtDefaultLink(n int) string {
	return "To continue privately, tap " + link(n) + " (valid for 15 minutes)."
}

func TestSecureActionsOnUnknownConversation(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, intakeSet(t, ""), engine.SMS)
	actions := map[string]func() error{
		"SecureOpened": func() error { _, err := h.Engine.SecureOpened(ctx, "cv-none"); return err },
		"SecureClosed": func() error { _, err := h.Engine.SecureClosed(ctx, "cv-none"); return err },
		"ForceSecure":  func() error { _, err := h.Engine.ForceSecure(ctx, "cv-none", "agent-7"); return err },
	}
	for name, act := range actions {
		t.Run(name, func(t *testing.T) {
			if err := act(); !errors.Is(err, engine.ErrNoConversation) {
				t.Errorf("%s: %v, want ErrNoConversation", name, err)
			}
		})
	}
}

// Keywords are answered where they were written: HELP texted on SMS while
// the secure page is open is answered on SMS, as carriers require, and HELP
// typed on the page is answered on the page.
func TestKeywordAnsweredOnItsChannel(t *testing.T) {
	h := newHarness(t, intakeSet(t, "return: origin"), engine.SMS)
	toSensitive(t, h)
	h.open("3/14/1985")
	out := h.sendOn(engine.SMS, "HELP")
	if len(out) != 1 || out[0].Channel != engine.SMS {
		t.Fatalf("HELP on SMS while the page is open: got %v, want one SMS reply", channels(out))
	}
	out = h.secure("HELP")
	if len(out) != 1 || out[0].Channel != engine.Secure {
		t.Fatalf("HELP on the secure page: got %v, want one reply on the page", channels(out))
	}
}

func channels(out []*engine.Outbound) []engine.Channel {
	chs := make([]engine.Channel, len(out))
	for i, o := range out {
		chs[i] = o.Channel
	}
	return chs
}

// Opening the page of a conversation with no link out does nothing and
// says so: the page must not show a conversation that waits for nobody.
func TestSecureOpenedWithoutLink(t *testing.T) {
	h := newHarness(t, intakeSet(t, ""), engine.SMS)
	h.send("INTAKE")
	if _, err := h.Engine.SecureOpened(context.Background(), h.Conversation); !errors.Is(err, engine.ErrSecureClosed) {
		t.Fatalf("SecureOpened with no link out: %v, want ErrSecureClosed", err)
	}
	if c := h.conv(); c.Secure != engine.SecureNone {
		t.Errorf("secure state %q after a refused open, want none", c.Secure)
	}
}

// HandOff gives a conversation to staff at once (a secure link that locked
// after failed identity checks does this): the bot stays quiet until an
// agent hands it back, and the hand-off is recorded.
func TestHandOff(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, intakeSet(t, ""), engine.SMS)
	toSensitive(t, h)
	if _, err := h.Engine.HandOff(ctx, h.Conversation, "front-desk", "secure-link-lock"); err != nil {
		t.Fatal(err)
	}
	if c := h.conv(); c.Status != engine.HandedOff || c.Queue != "front-desk" {
		t.Fatalf("status %q queue %q, want handed off to front-desk", c.Status, c.Queue)
	}
	if out := h.send("hello?"); len(out) != 0 {
		t.Errorf("the bot answered a handed-off conversation: %v", channels(out))
	}
	if ev := h.events(engine.EventHandoff); len(ev) != 1 || ev[0].ActorID != "secure-link-lock" {
		t.Errorf("handoff events %+v, want one by secure-link-lock", ev)
	}
	if _, err := h.Engine.HandOff(ctx, "no-such-conversation", "front-desk", "x"); !errors.Is(err, engine.ErrNoConversation) {
		t.Errorf("hand off an unknown conversation: %v, want ErrNoConversation", err)
	}
}

// SECURITY.md #6: a patient who volunteers a date of birth or an SSN on SMS
// where the question does not ask for one is moved to the secure page (fail
// closed); a date asked for on purpose is taken as the answer.
func TestIdentityGuard(t *testing.T) {
	const flow = `
flow: guard
trigger: { keywords: [GO] }
secure:
  link_message: "Continue privately: {{ link }}"
steps:
  ask-note:
    ask: { prompt: "Anything we should know?", type: text, save: note }
    next: ask-day
  ask-day:
    ask: { prompt: "Which date suits you?", type: date, save: day }
    next: done
  done:
    say: "Thanks."
    end: true
`
	tests := []struct {
		Label        string
		Guard        bool
		Answer       string
		ExpectedLink bool
	}{
		{"date of birth in free text", true, "my dob is 3/14/1985", true},
		{"ISO date in free text", true, "born 1985-03-14", true},
		{"SSN in free text", true, "ssn 123-45-6789", true},
		{"plain answer", true, "I use a wheelchair", false},
		{"phone number is not an SSN", true, "call 201-555-0123", false},
		{"guard off", false, "my dob is 3/14/1985", false},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t, loadSet(t, flow), engine.SMS, engine.WithIdentityGuard(tc.Guard))
			h.send("GO")
			out := h.send(tc.Answer)
			gotLink := len(out) == 1 && out[0].Link
			if gotLink != tc.ExpectedLink {
				t.Fatalf("replies %v (link %v), want a link: %v", channels(out), gotLink, tc.ExpectedLink)
			}
			if !tc.ExpectedLink {
				return
			}
			c := h.conv()
			if _, saved := c.Vars["note"]; saved || c.Step != "ask-note" || !c.StaySecure {
				t.Errorf("after the volunteered data: vars %v step %q stay secure %v; want nothing saved, still at ask-note, secure", c.Vars, c.Step, c.StaySecure)
			}
			if len(h.events(engine.EventSwitchSecure)) != 1 {
				t.Error("the switch to the secure page was not recorded")
			}
			for _, o := range out {
				if strings.Contains(o.Text, "1985") || strings.Contains(o.Text, "6789") {
					t.Errorf("the reply on %s repeats the volunteered value", o.Channel)
				}
			}
			h.want("the question is asked again on the page", h.open(""), sec("Anything we should know?"))
			h.want("a date asked for on the page", h.secure("a wheelchair"), sec("Which date suits you?"))
		})
	}
	t.Run("a date asked for on SMS is an answer", func(t *testing.T) {
		h := newHarness(t, loadSet(t, flow), engine.SMS, engine.WithIdentityGuard(true))
		h.send("GO")
		h.want("note", h.send("nothing"), sms("Which date suits you?"))
		h.want("the date", h.send("3/14/2027"), sms("Thanks."))
	})
}
