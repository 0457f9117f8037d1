package twiliotest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/safeflow/safeflow/channels/twilio"
)

// SignedInbound builds the request Twilio sends to publicURL (the full
// webhook URL as configured in Twilio's console) for an incoming SMS: a form
// with the fields Twilio sends (AccountSid, ApiVersion, Body, From, To,
// MessageSid, NumMedia, NumSegments, SmsSid, SmsStatus, From*/To* geography,
// ...), signed with authToken in X-Twilio-Signature. params overrides or
// adds fields; a name given with no values removes that field. SmsSid and
// SmsMessageSid follow MessageSid unless given. The request can be served
// to a handler directly or sent elsewhere with Deliver.
func SignedInbound(authToken, publicURL string, params url.Values) *http.Request {
	sid := NewSID("SM")
	if v := params.Get("MessageSid"); v != "" {
		sid = v
	}
	body := params.Get("Body")
	form := url.Values{
		"AccountSid":       {NewSID("AC")},
		"ApiVersion":       {"2010-04-01"},
		"Body":             {body},
		"From":             {"+14155550100"},
		"FromCity":         {"SAN FRANCISCO"},
		"FromCountry":      {"US"},
		"FromState":        {"CA"},
		"FromZip":          {"94105"},
		"MessageSid":       {sid},
		"NumMedia":         {"0"},
		"NumSegments":      {fmt.Sprint(Segments(body))},
		"ReferralNumMedia": {"0"},
		"SmsMessageSid":    {sid},
		"SmsSid":           {sid},
		"SmsStatus":        {"received"},
		"To":               {"+14155550199"},
		"ToCity":           {"SAN FRANCISCO"},
		"ToCountry":        {"US"},
		"ToState":          {"CA"},
		"ToZip":            {"94105"},
	}
	return signed(authToken, publicURL, merge(form, params))
}

// SignedStatus builds the status callback Twilio sends to publicURL when an
// outbound message changes state, signed with authToken. params overrides or
// adds fields (MessageSid, MessageStatus, ErrorCode...), as in SignedInbound.
func SignedStatus(authToken, publicURL string, params url.Values) *http.Request {
	sid := NewSID("SM")
	if v := params.Get("MessageSid"); v != "" {
		sid = v
	}
	status := "delivered"
	if v := params.Get("MessageStatus"); v != "" {
		status = v
	}
	form := url.Values{
		"AccountSid":    {NewSID("AC")},
		"ApiVersion":    {"2010-04-01"},
		"From":          {"+14155550199"},
		"MessageSid":    {sid},
		"MessageStatus": {status},
		"SmsSid":        {sid},
		"SmsStatus":     {status},
		"To":            {"+14155550100"},
	}
	return signed(authToken, publicURL, merge(form, params))
}

// merge applies params over form; an empty value list deletes the name.
func merge(form, params url.Values) url.Values {
	for name, values := range maps.All(params) {
		if len(values) == 0 {
			form.Del(name)
			continue
		}
		form[name] = append([]string(nil), values...)
	}
	return form
}

func signed(authToken, publicURL string, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, publicURL, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("User-Agent", "TwilioProxy/1.1")
	r.Header.Set("Accept", "*/*")
	r.Header.Set("I-Twilio-Idempotency-Token", NewSID(""))
	r.Header.Set("X-Twilio-Signature", twilio.Signature(authToken, publicURL, form))
	return r
}

// Deliver posts the webhook r to target instead of the public URL it was
// signed for, as when Twilio reaches the service through a proxy: same
// headers and body, the target's address. The caller closes the response
// body.
func Deliver(ctx context.Context, client *http.Client, target string, r *http.Request) (*http.Response, error) {
	if client == nil {
		client = http.DefaultClient
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, fmt.Errorf("twiliotest: read webhook body: %w", err)
	}
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("twiliotest: deliver: %w", err)
	}
	out.Header = r.Header.Clone()
	return client.Do(out)
}
