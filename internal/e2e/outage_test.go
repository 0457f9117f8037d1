package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/safeflow/safeflow/channels/messenger/messengertest"
	"github.com/safeflow/safeflow/engine"
)

// patientScript is what each patient of the outage tests writes: the
// intake flow's first questions, each answered with one reply or two.
var patientScript = []string{"INTAKE", "yes", "Ana", "03/14/1985"}

// TestProviderOutage has patients write while a provider fails, then
// recovers: every reply reaches the provider after recovery, each once, and
// in the order the service wrote them for each patient.
func TestProviderOutage(t *testing.T) {
	tests := []struct {
		Label   string
		Channel engine.Channel
		// Fail starts the outage; Recover ends it (nil: it ends by itself).
		Fail    func(h *harness)
		Recover func(h *harness)
	}{
		{Label: "Twilio Down", Channel: engine.SMS,
			Fail: func(h *harness) { h.twilio.SetDown(true) }, Recover: func(h *harness) { h.twilio.SetDown(false) }},
		{Label: "Twilio Fails Next 500", Channel: engine.SMS,
			Fail: func(h *harness) { h.twilio.FailNext(3, 500) }},
		{Label: "Twilio Rate Limited", Channel: engine.SMS,
			Fail: func(h *harness) { h.twilio.FailNext(2, 429) }},
		{Label: "Messenger Drops Connections", Channel: engine.Messenger,
			Fail: func(h *harness) { h.messenger.SetDown(true) }, Recover: func(h *harness) { h.messenger.SetDown(false) }},
		{Label: "Messenger Temporary Failures", Channel: engine.Messenger,
			Fail: func(h *harness) {
				h.messenger.FailNext(messengertest.Temporary, messengertest.TooManyRequests, messengertest.RateLimited)
			}},
	}
	for _, kind := range storeKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			// The outages take turns on one service: each starts once the
			// one before has recovered and delivered everything.
			svc := startService(t, kind, time.Now())
			for _, tc := range tests {
				t.Run(tc.Label, func(t *testing.T) {
					h := svc.For(t)
					outage(h, tc.Channel, tc.Fail, tc.Recover)
				})
			}
		})
	}
}

// outage has three patients write the script while fail's outage lasts,
// ends it with recover (when not nil), and checks what each received.
func outage(h *harness, ch engine.Channel, fail, recover func(h *harness)) {
	t := h.t
	n := contactSeq.Add(3)
	var patients []string
	for i := range 3 {
		if ch == engine.SMS {
			patients = append(patients, fmt.Sprintf("+1201556%04d", n+int64(i)))
		} else {
			patients = append(patients, fmt.Sprintf("8%015d", n+int64(i)))
		}
	}
	requests := func() int {
		if ch == engine.SMS {
			return h.twilio.Requests()
		}
		return h.messenger.Requests()
	}
	delivered := func() int {
		n := 0
		for _, p := range patients {
			n += len(h.deliveredTo(ch, p))
		}
		return n
	}
	requestsBefore := requests()
	fail(h)
	// Every patient writes the whole script during the outage; the
	// webhooks succeed whatever the provider does.
	for _, text := range patientScript {
		for _, p := range patients {
			var code int
			var body string
			if ch == engine.SMS {
				code, body = h.sendSMS(sms{From: p, Body: text, MessageSid: h.newID("SM")})
			} else {
				code, body = h.sendMessenger(messengertest.Body(messengertest.TextMessage(p, "m_"+h.newID(""), text)))
			}
			if code != 200 {
				t.Fatalf("webhook during the outage: %d %q", code, body)
			}
		}
	}
	h.waitFor("delivery attempts to fail", func() (bool, string) {
		return requests()-requestsBefore >= 3, fmt.Sprintf("%d requests", requests()-requestsBefore)
	})
	if recover != nil {
		if got := delivered(); got != 0 {
			t.Errorf("%d messages got through a provider that is down", got)
		}
		recover(h)
	}
	for _, p := range patients {
		c := h.contact(ch, p)
		if c == nil {
			t.Fatalf("no contact stored for a patient who wrote")
		}
		var want []string
		for _, row := range h.outbox(c.ID, 0) {
			want = append(want, row.Text)
		}
		if len(want) < len(patientScript) {
			t.Fatalf("the service wrote %d replies to a patient who wrote %d messages", len(want), len(patientScript))
		}
		h.waitFor("every reply after recovery", func() (bool, string) {
			got := h.deliveredTo(ch, p)
			return len(got) >= len(want), fmt.Sprintf("%d of %d delivered; outbox %s", len(got), len(want), rowStates(h.outbox(c.ID, 0)))
		})
		var got []string
		for _, m := range h.deliveredTo(ch, p) {
			got = append(got, m.Text)
		}
		if !slices.Equal(got, want) {
			t.Errorf("a patient received, in this order:%s\nwant the outbox order, each once: %q", describe(h.deliveredTo(ch, p)), want)
		}
		h.waitFor("every outbox row to be marked sent", func() (bool, string) {
			rows := h.outbox(c.ID, 0)
			for _, r := range rows {
				if r.Status != "sent" {
					return false, rowStates(rows)
				}
			}
			return true, ""
		})
	}
	if sent := requests() - requestsBefore; sent <= delivered() {
		t.Errorf("the provider saw %d requests for %d messages: the outage never made a delivery fail", sent, delivered())
	}
}
