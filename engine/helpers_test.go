package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/internal/sim"
)

// t0 is when every test conversation starts: a Monday morning.
var t0 = time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)

// Texts safeflow writes itself, as a patient reads them in English.
const (
	txtOptOut   = "You're unsubscribed and will get no more messages. Reply START to subscribe again."
	txtOptIn    = "You're subscribed again. Reply HELP for help or STOP to opt out."
	txtHelp     = "Reply STOP to opt out. For help, please call the clinic."
	txtNoFlow   = "Sorry, we didn't understand that. Reply HELP for help."
	txtRetry    = "Sorry, I didn't understand that."
	txtGaveUp   = "Sorry, I couldn't understand. Someone from the clinic will reply here soon."
	txtPointer  = "This part of our chat is private. Please answer on the secure page from the link we sent you."
	txtBackSMS  = "Thank you. This private part is done; we'll continue by text message."
	txtBackFB   = "Thank you. This private part is done; we'll continue on Messenger."
	txtEnded    = "This chat has ended. You can close this page."
	txtNoSecure = "Sorry, our secure chat is not available right now. Someone from the clinic will contact you."
)

// link is the n-th link the simulator issues.
func link(n int) string { return fmt.Sprintf("https://secure.clinic.test/s/link-%d", n) }

// loadSet loads flow sources as one clinic's folder and fails the test when
// any of them has an error.
func loadSet(t testing.TB, srcs ...string) *flows.Set {
	t.Helper()
	files := make(map[string][]byte, len(srcs))
	for i, s := range srcs {
		files[fmt.Sprintf("flow%d.yaml", i)] = []byte(s)
	}
	set := flows.NewSet(files)
	if set.Diags.Errors() > 0 {
		var b strings.Builder
		for _, d := range set.Diags {
			fmt.Fprintln(&b, d)
		}
		t.Fatalf("the test flows do not load:\n%s", b.String())
	}
	return set
}

// harness is one simulated contact with helpers that fail the test on
// errors.
type harness struct {
	*sim.Sim
	t   testing.TB
	ctx context.Context
}

func newHarness(t testing.TB, fl engine.Flows, ch engine.Channel, opts ...engine.Option) *harness {
	return &harness{Sim: sim.New(fl, ch, t0, opts...), t: t, ctx: context.Background()}
}

// send delivers text on the contact's own channel and returns the replies.
func (h *harness) send(text string) []*engine.Outbound {
	h.t.Helper()
	return h.sendOn(h.Channel, text)
}

// secure delivers text typed on the secure page.
func (h *harness) secure(text string) []*engine.Outbound {
	h.t.Helper()
	return h.sendOn(engine.Secure, text)
}

func (h *harness) sendOn(ch engine.Channel, text string) []*engine.Outbound {
	h.t.Helper()
	res, err := h.Send(h.ctx, ch, text)
	if err != nil {
		h.t.Fatalf("send %q on %s: %v", text, ch, err)
	}
	return res.Out
}

// open opens the secure page, passing the identity check with answer.
func (h *harness) open(answer string) []*engine.Outbound {
	h.t.Helper()
	res, err := h.OpenLink(h.ctx, answer)
	if err != nil {
		h.t.Fatalf("open the secure link: %v", err)
	}
	return res.Out
}

// advance moves the clock on and fires due timers.
func (h *harness) advance(d time.Duration) []*engine.Outbound {
	h.t.Helper()
	out, err := h.Advance(h.ctx, d)
	if err != nil {
		h.t.Fatalf("advance %s: %v", d, err)
	}
	return out
}

// start begins a flow at the clinic's initiative.
func (h *harness) start(flowID string, vars map[string]any) []*engine.Outbound {
	h.t.Helper()
	res, err := h.Start(h.ctx, flowID, "", vars)
	if err != nil {
		h.t.Fatalf("start %s: %v", flowID, err)
	}
	return res.Out
}

// conv returns the contact's current conversation, failing when there is
// none.
func (h *harness) conv() *engine.Conversation {
	h.t.Helper()
	c := h.Current()
	if c == nil {
		h.t.Fatal("the contact has no conversation")
	}
	return c
}

// events returns the stored events with the given action.
func (h *harness) events(action string) []engine.Event {
	var out []engine.Event
	for _, e := range h.Store.Events() {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// texts lists the bodies of messages, each prefixed with its channel.
func texts(out []*engine.Outbound) []string {
	s := make([]string, len(out))
	for i, o := range out {
		s[i] = string(o.Channel) + ": " + o.Text
	}
	return s
}

// want compares replies with "channel: text" lines.
func (h *harness) want(step string, got []*engine.Outbound, want ...string) {
	h.t.Helper()
	if g := texts(got); !slices.Equal(g, want) {
		h.t.Errorf("%s: got replies\n\t%s\nwant\n\t%s", step, strings.Join(g, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// sms and sec build the expected "channel: text" lines.
func sms(text string) string { return "sms: " + text }
func sec(text string) string { return "secure: " + text }
func fb(text string) string  { return "messenger: " + text }
