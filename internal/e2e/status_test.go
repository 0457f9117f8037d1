package e2e

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/safeflow/safeflow/channels/twilio"
	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
	"github.com/safeflow/safeflow/engine"
)

// TestStatusCallbacks sends Twilio's delivery reports for the messages the
// service sent: a signed report updates the message's outbox row, a report
// with a bad signature is refused with 403 and changes nothing.
func TestStatusCallbacks(t *testing.T) {
	const phone = "+12015550103"
	for _, kind := range storeKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			h := startService(t, kind, time.Now())
			if code, body := h.sendSMS(sms{From: phone, Body: "INTAKE", MessageSid: h.newID("SM")}); code != 200 {
				t.Fatalf("Twilio webhook: %d %q", code, body)
			}
			h.waitFor("two replies", func() (bool, string) {
				return len(h.twilio.Messages()) == 2, describe(h.allDelivered())
			})
			c := h.contact(engine.SMS, phone)
			h.waitFor("both outbox rows to be marked sent", func() (bool, string) {
				rows := h.outbox(c.ID, 0)
				return len(rows) == 2 && rows[0].Status == "sent" && rows[1].Status == "sent", rowStates(rows)
			})
			rows := h.outbox(c.ID, 0)
			msgs := h.twilio.Messages()
			for i, m := range msgs {
				if m.StatusCallback != publicURL+statusPath {
					t.Errorf("message %d asks for status callbacks at %q, want %q", i, m.StatusCallback, publicURL+statusPath)
				}
				if rows[i].ProviderID != m.SID {
					t.Errorf("outbox row %d has provider id %q, want Twilio's SID %q", i, rows[i].ProviderID, m.SID)
				}
			}
			status := func(sid, st string) url.Values {
				return url.Values{"MessageSid": {sid}, "MessageStatus": {st}, "To": {phone}, "From": {twilioFrom}, "AccountSid": {accountSID}}
			}
			badSig := func(sid, st string) webhook {
				f := status(sid, st)
				return webhook{Path: statusPath, Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"},
					"X-Twilio-Signature": {twilio.Signature("not-the-token", publicURL+statusPath, f)}}, Body: []byte(f.Encode())}
			}
			signedForInbound := func(sid, st string) webhook {
				r := twiliotest.SignedStatus(authToken, publicURL+twilioPath, status(sid, st))
				return webhook{Path: statusPath, Header: r.Header.Clone(), Body: []byte(status(sid, st).Encode())}
			}
			steps := []struct {
				Label          string
				Send           func() (int, string)
				ExpectedStatus int
				// ExpectedRows are the two rows' statuses afterwards.
				ExpectedRows [2]string
				Unchanged    bool
			}{
				{Label: "Bad Signature", Send: func() (int, string) { return h.send(badSig(msgs[0].SID, "delivered")) },
					ExpectedStatus: 403, ExpectedRows: [2]string{"sent", "sent"}, Unchanged: true},
				{Label: "Signed For The Inbound Path", Send: func() (int, string) { return h.send(signedForInbound(msgs[0].SID, "delivered")) },
					ExpectedStatus: 403, ExpectedRows: [2]string{"sent", "sent"}, Unchanged: true},
				{Label: "Delivered", Send: func() (int, string) { return h.sendStatus(status(msgs[0].SID, "delivered")) },
					ExpectedStatus: 200, ExpectedRows: [2]string{"delivered", "sent"}},
				{Label: "Undelivered With Error Code", Send: func() (int, string) {
					p := status(msgs[1].SID, "undelivered")
					p.Set("ErrorCode", "30003")
					return h.sendStatus(p)
				}, ExpectedStatus: 200, ExpectedRows: [2]string{"delivered", "undelivered"}},
				{Label: "Unknown MessageSid", Send: func() (int, string) { return h.sendStatus(status(twiliotest.NewSID("SM"), "delivered")) },
					ExpectedStatus: 200, ExpectedRows: [2]string{"delivered", "undelivered"}, Unchanged: true},
				{Label: "Missing MessageStatus", Send: func() (int, string) {
					p := status(msgs[0].SID, "")
					p["MessageStatus"], p["SmsStatus"] = nil, nil
					return h.sendStatus(p)
				}, ExpectedStatus: 400, ExpectedRows: [2]string{"delivered", "undelivered"}, Unchanged: true},
			}
			for _, st := range steps {
				before := h.rowCounts()
				code, body := st.Send()
				if code != st.ExpectedStatus {
					t.Errorf("%s: status %d %q, want %d", st.Label, code, body, st.ExpectedStatus)
				}
				rows := h.outbox(c.ID, 0)
				if got := [2]string{rows[0].Status, rows[1].Status}; got != st.ExpectedRows {
					t.Errorf("%s: outbox rows are %v, want %v", st.Label, got, st.ExpectedRows)
				}
				if st.Unchanged {
					assertUnchanged(t, before, h.rowCounts())
				}
			}
		})
	}
}
