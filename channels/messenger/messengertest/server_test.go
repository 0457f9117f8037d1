package messengertest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/safeflow/safeflow/channels/messenger/messengertest"
)

const token = "EAAGtestPAGEtoken"

type graphAnswer struct {
	RecipientID string `json:"recipient_id"`
	MessageID   string `json:"message_id"`
	Error       *struct {
		Message   string `json:"message"`
		Type      string `json:"type"`
		Code      int    `json:"code"`
		FBTraceID string `json:"fbtrace_id"`
	} `json:"error"`
}

// TestServerChecksRequests: the fake refuses what Graph refuses, so a
// Sender that passes against it sends what Meta accepts.
func TestServerChecksRequests(t *testing.T) {
	qr := func(n int, title string) string {
		var parts []string
		for range n {
			parts = append(parts, `{"content_type":"text","title":"`+title+`","payload":"p"}`)
		}
		return `[` + strings.Join(parts, ",") + `]`
	}
	msg := func(message string) string {
		return `{"recipient":{"id":"123"},"messaging_type":"RESPONSE","message":` + message + `}`
	}
	cases := []struct {
		Label          string
		Path           string
		Token          string
		ContentType    string
		Body           string
		ExpectedStatus int
		ExpectedCode   int
	}{
		{Label: "valid text", Body: msg(`{"text":"hi"}`), ExpectedStatus: 200},
		{Label: "valid quick replies", Body: msg(`{"text":"hi","quick_replies":` + qr(13, "twenty characters ok") + `}`), ExpectedStatus: 200},
		{Label: "valid human agent tag", Body: `{"recipient":{"id":"123"},"messaging_type":"MESSAGE_TAG","tag":"HUMAN_AGENT","message":{"text":"hi"}}`, ExpectedStatus: 200},
		{Label: "wrong token", Token: "nope", Body: msg(`{"text":"hi"}`), ExpectedStatus: 400, ExpectedCode: 190},
		{Label: "no token", Token: "-", Body: msg(`{"text":"hi"}`), ExpectedStatus: 400, ExpectedCode: 2500},
		{Label: "wrong path", Path: "/v21.0/me/message", Body: msg(`{"text":"hi"}`), ExpectedStatus: 400, ExpectedCode: 2500},
		{Label: "no version", Path: "/me/messages", Body: msg(`{"text":"hi"}`), ExpectedStatus: 400, ExpectedCode: 2500},
		{Label: "form body", ContentType: "application/x-www-form-urlencoded", Body: "recipient=1", ExpectedStatus: 400, ExpectedCode: 100},
		{Label: "no recipient", Body: `{"messaging_type":"RESPONSE","message":{"text":"hi"}}`, ExpectedStatus: 400, ExpectedCode: 100},
		{Label: "no messaging type", Body: `{"recipient":{"id":"123"},"message":{"text":"hi"}}`, ExpectedStatus: 400, ExpectedCode: 100},
		{Label: "message tag without tag", Body: `{"recipient":{"id":"123"},"messaging_type":"MESSAGE_TAG","message":{"text":"hi"}}`, ExpectedStatus: 400, ExpectedCode: 100},
		{Label: "tag on a response", Body: `{"recipient":{"id":"123"},"messaging_type":"RESPONSE","tag":"ACCOUNT_UPDATE","message":{"text":"hi"}}`, ExpectedStatus: 400, ExpectedCode: 100},
		{Label: "unknown field", Body: `{"recipient":{"id":"123"},"messaging_type":"RESPONSE","message":{"text":"hi","quick_reply":[]}}`, ExpectedStatus: 400, ExpectedCode: 100},
		{Label: "empty text", Body: msg(`{"text":""}`), ExpectedStatus: 400, ExpectedCode: 100},
		{Label: "text of 2001 characters", Body: msg(`{"text":"` + strings.Repeat("é", 2001) + `"}`), ExpectedStatus: 400, ExpectedCode: 100},
		{Label: "text of 2000 characters", Body: msg(`{"text":"` + strings.Repeat("é", 2000) + `"}`), ExpectedStatus: 200},
		{Label: "14 quick replies", Body: msg(`{"text":"hi","quick_replies":` + qr(14, "x") + `}`), ExpectedStatus: 400, ExpectedCode: 100},
		{Label: "quick reply title of 21 characters", Body: msg(`{"text":"hi","quick_replies":` + qr(1, strings.Repeat("a", 21)) + `}`), ExpectedStatus: 400, ExpectedCode: 100},
		{Label: "quick reply without title", Body: msg(`{"text":"hi","quick_replies":[{"content_type":"text","payload":"p"}]}`), ExpectedStatus: 400, ExpectedCode: 100},
		{Label: "quick reply of unknown type", Body: msg(`{"text":"hi","quick_replies":[{"content_type":"button","title":"a","payload":"p"}]}`), ExpectedStatus: 400, ExpectedCode: 100},
	}
	for _, c := range cases {
		t.Run(c.Label, func(t *testing.T) {
			srv := messengertest.NewServer(t, token)
			path, tok, ct := c.Path, c.Token, c.ContentType
			if path == "" {
				path = "/v21.0/me/messages"
			}
			if tok == "" {
				tok = token
			}
			if ct == "" {
				ct = "application/json"
			}
			url := srv.URL + path
			if tok != "-" {
				url += "?access_token=" + tok
			}
			resp, err := srv.Client().Post(url, ct, strings.NewReader(c.Body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var a graphAnswer
			if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
				t.Fatalf("answer is not JSON: %v", err)
			}
			if resp.StatusCode != c.ExpectedStatus {
				t.Fatalf("status %d, want %d (%+v)", resp.StatusCode, c.ExpectedStatus, a.Error)
			}
			switch {
			case c.ExpectedStatus == 200:
				if a.RecipientID != "123" || a.MessageID == "" || len(srv.Messages()) != 1 {
					t.Errorf("success answer %+v, recorded %d", a, len(srv.Messages()))
				}
			default:
				if a.Error == nil || a.Error.Code != c.ExpectedCode || a.Error.FBTraceID == "" || a.Error.Type == "" {
					t.Errorf("error %+v, want Graph code %d with type and fbtrace_id", a.Error, c.ExpectedCode)
				}
				if len(srv.Messages()) != 0 {
					t.Error("a refused message was recorded")
				}
			}
		})
	}
}

func TestServerOutages(t *testing.T) {
	srv := messengertest.NewServer(t, token)
	post := func() (*http.Response, error) {
		return srv.Client().Post(srv.URL+"/v21.0/me/messages?access_token="+token, "application/json",
			strings.NewReader(`{"recipient":{"id":"123"},"messaging_type":"RESPONSE","message":{"text":"hi"}}`))
	}
	srv.FailNext(messengertest.Temporary, messengertest.RateLimited)
	for _, want := range []int{500, 400, 200} {
		resp, err := post()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("status %d, want %d", resp.StatusCode, want)
		}
	}
	srv.SetDown(true)
	if resp, err := post(); err == nil {
		resp.Body.Close()
		t.Error("a down server answered")
	}
	srv.SetDown(false)
	if resp, err := post(); err != nil {
		t.Errorf("server did not come back: %v", err)
	} else {
		resp.Body.Close()
	}
	if got := srv.Requests(); got != 5 {
		t.Errorf("requests = %d, want 5", got)
	}
}
