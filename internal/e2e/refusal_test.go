package e2e

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/channels/messenger"
	"github.com/safeflow/safeflow/channels/messenger/messengertest"
	"github.com/safeflow/safeflow/channels/twilio"
	"github.com/safeflow/safeflow/channels/twilio/twiliotest"
	"github.com/safeflow/safeflow/engine"
)

// webhook is a raw request to the service, kept as bytes so that it can be
// sent again exactly as it was.
type webhook struct {
	Path   string
	Header http.Header
	Body   []byte
}

// twilioWebhook is the request Twilio sends for m, signed over the public
// URL and path.
func twilioWebhook(m sms) webhook {
	r := twiliotest.SignedInbound(authToken, publicURL+twilioPath, twilioForm(m))
	body, _ := io.ReadAll(r.Body)
	return webhook{Path: twilioPath, Header: r.Header.Clone(), Body: body}
}

// messengerWebhook is the request Meta sends for body, signed.
func messengerWebhook(body []byte) webhook {
	r := messengertest.SignedEvent(appSecret, body)
	return webhook{Path: messenger.Path, Header: r.Header.Clone(), Body: body}
}

func (h *harness) send(w webhook) (int, string) {
	h.t.Helper()
	return h.post(w.Path, w.Header.Get("Content-Type"), w.Header, w.Body)
}

// started begins a conversation for a patient on each channel and waits
// for its replies, so that refusals are tried against contacts and
// conversations that exist.
func started(h *harness, phone, psid string) {
	h.t.Helper()
	if code, body := h.sendSMS(sms{From: phone, Body: "INTAKE", MessageSid: h.newID("SM")}); code != 200 {
		h.t.Fatalf("Twilio webhook: %d %q", code, body)
	}
	if code, body := h.sendMessenger(messengertest.Body(messengertest.TextMessage(psid, "m_"+h.newID(""), "INTAKE"))); code != 200 {
		h.t.Fatalf("Messenger webhook: %d %q", code, body)
	}
	h.waitFor("the first replies", func() (bool, string) {
		return len(h.deliveredTo(engine.SMS, phone)) == 2 && len(h.deliveredTo(engine.Messenger, psid)) == 2, describe(h.allDelivered())
	})
}

// TestWebhookRefusals sends webhooks the service must refuse: a wrong,
// missing or misplaced signature gets 403, a malformed body 400, and
// neither changes a single row of any table.
func TestWebhookRefusals(t *testing.T) {
	const phone, psid = "+12015550101", "7000000000000101"
	sign := func(token, u string, form url.Values) string { return twilio.Signature(token, u, form) }
	form := func(body string) url.Values {
		return url.Values{"From": {phone}, "To": {twilioFrom}, "Body": {body}, "MessageSid": {"SM" + strings.Repeat("ab", 16)},
			"AccountSid": {accountSID}, "NumMedia": {"0"}}
	}
	twilioReq := func(f url.Values, sig string) webhook {
		hd := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
		if sig != "" {
			hd.Set("X-Twilio-Signature", sig)
		}
		return webhook{Path: twilioPath, Header: hd, Body: []byte(f.Encode())}
	}
	event := messengertest.Body(messengertest.TextMessage(psid, "m_refused", "yes"))
	metaReq := func(body []byte, sig string) webhook {
		hd := http.Header{"Content-Type": {"application/json"}}
		if sig != "" {
			hd.Set(messenger.SignatureHeader, sig)
		}
		return webhook{Path: messenger.Path, Header: hd, Body: body}
	}
	metaSig := func(secret string, body []byte) string {
		return messengertest.SignedEvent(secret, body).Header.Get(messenger.SignatureHeader)
	}
	tests := []struct {
		Label          string
		Request        func(base string) webhook
		ExpectedStatus int
	}{
		{Label: "Twilio Wrong Token", ExpectedStatus: 403, Request: func(string) webhook {
			return twilioReq(form("yes"), sign("not-the-token", publicURL+twilioPath, form("yes")))
		}},
		{Label: "Twilio No Signature", ExpectedStatus: 403, Request: func(string) webhook { return twilioReq(form("yes"), "") }},
		{Label: "Twilio Signed For The Host Header", ExpectedStatus: 403, Request: func(base string) webhook {
			// An attacker who controls Host must not choose the URL signed.
			return twilioReq(form("yes"), sign(authToken, base+twilioPath, form("yes")))
		}},
		{Label: "Twilio Signed For Another Path", ExpectedStatus: 403, Request: func(string) webhook {
			return twilioReq(form("yes"), sign(authToken, publicURL+statusPath, form("yes")))
		}},
		{Label: "Twilio Body Changed After Signing", ExpectedStatus: 403, Request: func(string) webhook {
			return twilioReq(form("no"), sign(authToken, publicURL+twilioPath, form("yes")))
		}},
		{Label: "Twilio Parameter Added After Signing", ExpectedStatus: 403, Request: func(string) webhook {
			f := form("yes")
			sig := sign(authToken, publicURL+twilioPath, f)
			f.Set("Extra", "1")
			return twilioReq(f, sig)
		}},
		{Label: "Twilio Malformed Form", ExpectedStatus: 400, Request: func(string) webhook {
			w := twilioReq(nil, sign(authToken, publicURL+twilioPath, form("yes")))
			w.Body = []byte("Body=%zz&From=" + url.QueryEscape(phone))
			return w
		}},
		{Label: "Twilio JSON Body", ExpectedStatus: 400, Request: func(string) webhook {
			w := twilioReq(nil, sign(authToken, publicURL+twilioPath, url.Values{}))
			w.Header.Set("Content-Type", "application/json")
			w.Body = []byte(`{"Body":"yes"}`)
			return w
		}},
		{Label: "Twilio Signed Without MessageSid", ExpectedStatus: 400, Request: func(string) webhook {
			f := form("yes")
			f.Del("MessageSid")
			return twilioReq(f, sign(authToken, publicURL+twilioPath, f))
		}},
		{Label: "Twilio Signed From A Non Phone Sender", ExpectedStatus: 400, Request: func(string) webhook {
			f := form("yes")
			f.Set("From", "whatsapp:"+phone)
			return twilioReq(f, sign(authToken, publicURL+twilioPath, f))
		}},
		{Label: "Messenger Wrong Secret", ExpectedStatus: 403, Request: func(string) webhook {
			return metaReq(event, metaSig("not-the-secret", event))
		}},
		{Label: "Messenger No Signature", ExpectedStatus: 403, Request: func(string) webhook { return metaReq(event, "") }},
		{Label: "Messenger SHA1 Signature", ExpectedStatus: 403, Request: func(string) webhook {
			return metaReq(event, strings.Replace(metaSig(appSecret, event), "sha256=", "sha1=", 1))
		}},
		{Label: "Messenger Body Changed After Signing", ExpectedStatus: 403, Request: func(string) webhook {
			return metaReq(bytes.Replace(event, []byte(`"yes"`), []byte(`"no!"`), 1), metaSig(appSecret, event))
		}},
		{Label: "Messenger Signed Non JSON", ExpectedStatus: 400, Request: func(string) webhook {
			body := []byte("entry=1")
			return metaReq(body, metaSig(appSecret, body))
		}},
		{Label: "Messenger Signed Entry Not A List", ExpectedStatus: 400, Request: func(string) webhook {
			body := []byte(`{"object":"page","entry":{"id":"104356789012345"}}`)
			return metaReq(body, metaSig(appSecret, body))
		}},
		{Label: "Messenger Signed Truncated JSON", ExpectedStatus: 400, Request: func(string) webhook {
			body := event[:len(event)-3]
			return metaReq(body, metaSig(appSecret, body))
		}},
	}
	for _, kind := range storeKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			h := startService(t, kind, time.Now())
			started(h, phone, psid)
			for _, tc := range tests {
				t.Run(tc.Label, func(t *testing.T) {
					before, sent := h.rowCounts(), len(h.allDelivered())
					code, body := h.send(tc.Request(h.base))
					if code != tc.ExpectedStatus {
						t.Errorf("status %d %q, want %d", code, body, tc.ExpectedStatus)
					}
					assertUnchanged(t, before, h.rowCounts())
					if n := len(h.allDelivered()); n != sent {
						t.Errorf("the providers received %d new messages after a refused webhook", n-sent)
					}
				})
			}
		})
	}
}

// assertUnchanged fails t when any table's row count differs.
func assertUnchanged(t *testing.T, before, after map[string]int) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(after)) {
		if before[name] != after[name] {
			t.Errorf("table %s has %d rows, had %d", name, after[name], before[name])
		}
	}
	if len(before) != len(after) {
		t.Errorf("the tables changed: %v, then %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
}

// TestReplayedWebhook sends webhooks a second time, as providers do when
// they retry: the copy is answered 200 and changes nothing.
func TestReplayedWebhook(t *testing.T) {
	const phone, psid = "+12015550102", "7000000000000102"
	tests := []struct {
		Label   string
		Channel engine.Channel
		Address string
		// First is the webhook sent twice; Again, when set, builds the copy.
		First func(h *harness) webhook
		Again func(h *harness, first webhook) webhook
	}{
		{Label: "Twilio Same Request", Channel: engine.SMS, Address: phone, First: func(h *harness) webhook {
			return twilioWebhook(sms{From: phone, Body: "yes", MessageSid: h.newID("SM")})
		}},
		{Label: "Twilio Same MessageSid Other Text", Channel: engine.SMS, Address: phone, First: func(h *harness) webhook {
			return twilioWebhook(sms{From: phone, Body: "Ana", MessageSid: "SM" + strings.Repeat("cd", 16)})
		}, Again: func(h *harness, _ webhook) webhook {
			// Signed by Twilio with the same id: a retry as it may look
			// after Twilio re-encodes it.
			return twilioWebhook(sms{From: phone, Body: "Bob", MessageSid: "SM" + strings.Repeat("cd", 16)})
		}},
		{Label: "Messenger Same Request", Channel: engine.Messenger, Address: psid, First: func(h *harness) webhook {
			return messengerWebhook(messengertest.Body(messengertest.TextMessage(psid, "m_"+h.newID(""), "yes")))
		}},
		{Label: "Messenger Same Mid In A Batch", Channel: engine.Messenger, Address: psid, First: func(h *harness) webhook {
			return messengerWebhook(messengertest.Body(messengertest.TextMessage(psid, "m_batch", "Ana")))
		}, Again: func(h *harness, _ webhook) webhook {
			return messengerWebhook(messengertest.Batch([]messengertest.Event{
				messengertest.TextMessage(psid, "m_batch", "Ana"), messengertest.ReadEvent(psid)}))
		}},
	}
	for _, kind := range storeKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			h := startService(t, kind, time.Now())
			started(h, phone, psid)
			for _, tc := range tests {
				t.Run(tc.Label, func(t *testing.T) {
					first := tc.First(h)
					c := h.contact(tc.Channel, tc.Address)
					rowsBefore := len(h.outbox(c.ID, 0))
					if code, body := h.send(first); code != 200 {
						t.Fatalf("first delivery: %d %q", code, body)
					}
					rows := h.outbox(c.ID, 0)
					if len(rows) == rowsBefore {
						t.Fatalf("the first delivery produced no reply; the replay would prove nothing")
					}
					h.waitFor("the replies to the first delivery", func() (bool, string) {
						return len(h.deliveredTo(tc.Channel, tc.Address)) == len(rows), describe(h.deliveredTo(tc.Channel, tc.Address))
					})
					before, delivered := h.rowCounts(), h.deliveredTo(tc.Channel, tc.Address)
					again := first
					if tc.Again != nil {
						again = tc.Again(h, first)
					}
					if code, body := h.send(again); code != 200 {
						t.Errorf("replayed delivery: %d %q, want 200", code, body)
					}
					assertUnchanged(t, before, h.rowCounts())
					if got := h.deliveredTo(tc.Channel, tc.Address); len(got) != len(delivered) {
						t.Errorf("the replay sent more messages: %s", describe(got[len(delivered):]))
					}
				})
			}
		})
	}
}

// TestSignatureVariants checks the requests the service must accept: a
// Twilio signature over the public URL with its default port written out
// (some Twilio setups sign that form), and Meta's subscription check.
func TestSignatureVariants(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			h := startService(t, kind, time.Now())
			t.Run("Twilio Explicit Default Port", func(t *testing.T) {
				h := h.For(t)
				const phone = "+12015550104"
				r := twiliotest.SignedInbound(authToken, "https://clinic.test:443"+twilioPath,
					twilioForm(sms{From: phone, Body: "INTAKE", MessageSid: h.newID("SM")}))
				resp, err := twiliotest.Deliver(h.ctx, h.client, h.base+twilioPath, r)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d, want 200", resp.StatusCode)
				}
				h.waitFor("the replies", func() (bool, string) {
					got := h.deliveredTo(engine.SMS, phone)
					return len(got) == 2, describe(got)
				})
			})
			verify := []struct {
				Label          string
				Mode, Token    string
				ExpectedStatus int
				ExpectedBody   string
			}{
				{Label: "Messenger Verification", Mode: "subscribe", Token: verifyToken, ExpectedStatus: 200, ExpectedBody: "1158201444"},
				{Label: "Messenger Verification Wrong Token", Mode: "subscribe", Token: "guess", ExpectedStatus: 403},
				{Label: "Messenger Verification Wrong Mode", Mode: "unsubscribe", Token: verifyToken, ExpectedStatus: 403},
			}
			for _, tc := range verify {
				t.Run(tc.Label, func(t *testing.T) {
					h := h.For(t)
					before := h.rowCounts()
					q := messengertest.VerificationRequest(tc.Mode, tc.Token, "1158201444").URL.RawQuery
					req, _ := http.NewRequestWithContext(h.ctx, http.MethodGet, h.base+messenger.Path+"?"+q, nil)
					code, body := h.do(req)
					if code != tc.ExpectedStatus || (tc.ExpectedBody != "" && body != tc.ExpectedBody) {
						t.Errorf("got %d %q, want %d %q", code, body, tc.ExpectedStatus, tc.ExpectedBody)
					}
					assertUnchanged(t, before, h.rowCounts())
				})
			}
		})
	}
}
