// Package messengertest is a stand-in for Meta's Graph API and webhooks in
// tests: a Send API server on 127.0.0.1 that checks requests the way Graph
// does and answers like it, and builders for signed webhook payloads of
// every kind safeflow meets.
package messengertest

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/safeflow/safeflow/channels/messenger"
)

// Failure is a Graph error the server answers with: HTTP status plus the
// fields of {"error":{...}}.
type Failure struct {
	Status  int
	Code    int
	Subcode int
	Type    string
	Message string
}

// Failures Graph really answers, for FailNext.
var (
	// RateLimited is Graph's application rate limit (retryable).
	RateLimited = Failure{Status: 400, Code: 613, Type: "OAuthException", Message: "(#613) Calls to this api have exceeded the rate limit."}
	// TooManyRequests is a rate limit answered with HTTP 429 (retryable).
	TooManyRequests = Failure{Status: 429, Code: 4, Type: "OAuthException", Message: "(#4) Application request limit reached"}
	// Temporary is Graph's temporary send failure (retryable).
	Temporary = Failure{Status: 500, Code: 1200, Type: "FacebookApiException", Message: "(#1200) Temporary send message failure. Please try again later"}
	// Unavailable is the answer for a person who blocked the Page or left
	// Messenger (permanent).
	Unavailable = Failure{Status: 400, Code: 551, Subcode: 1545041, Type: "OAuthException", Message: "(#551) This person isn't available right now."}
	// OutsideWindow is the answer for a message after the standard
	// messaging window (permanent).
	OutsideWindow = Failure{Status: 400, Code: 10, Subcode: 2018278, Type: "OAuthException", Message: "(#10) This message is sent outside of allowed window."}
	// NoPermission is a permissions error (permanent).
	NoPermission = Failure{Status: 403, Code: 200, Subcode: 2018028, Type: "OAuthException", Message: "(#200) Cannot message users who are not admins, developers or testers of the app until pages_messaging permission is reviewed and the app is live."}
	// BadToken is Graph's answer to a wrong or expired page token.
	BadToken = Failure{Status: 400, Code: 190, Type: "OAuthException", Message: "Invalid OAuth access token - Cannot parse access token"}
)

// Sent is one message the server accepted.
type Sent struct {
	Version       string
	Recipient     string
	MessagingType string
	Tag           string
	Text          string
	QuickReplies  []SentQuickReply
	MessageID     string
}

// SentQuickReply is one quick reply of a Sent message.
type SentQuickReply struct {
	ContentType string `json:"content_type"`
	Title       string `json:"title"`
	Payload     string `json:"payload"`
}

// Server is a fake Graph API serving POST /{version}/me/messages.
type Server struct {
	// URL is the base URL, the value of Config.APIURL.
	URL string

	token string
	srv   *httptest.Server

	mu       sync.Mutex
	sent     []Sent
	requests int
	fail     []Failure
	down     bool
	blocked  map[string]bool
	closed   map[string]bool
	count    int
}

// NewServer starts a Send API server on 127.0.0.1 that accepts pageToken
// and stops it when the test ends.
func NewServer(t testing.TB, pageToken string) *Server {
	t.Helper()
	s := &Server{token: pageToken, blocked: map[string]bool{}, closed: map[string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Config returns a messenger.Config pointing at the server, with the page
// token it accepts and the given app secret.
func (s *Server) Config(appSecret string) messenger.Config {
	return messenger.Config{AppSecret: appSecret, PageToken: s.token, APIURL: s.URL}
}

// Client returns an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Messages returns the messages accepted so far, in order.
func (s *Server) Messages() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sent(nil), s.sent...)
}

// Requests counts the requests received, failed ones included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// FailNext makes the next len(f) requests fail with f, in order.
func (s *Server) FailNext(f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, f...)
}

// SetDown makes the server drop every connection without an answer (down
// true) or serve again (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Block makes psid unavailable, as when the person blocks the Page:
// messages to it get Unavailable.
func (s *Server) Block(psid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked[psid] = true
}

// CloseWindow ends psid's standard messaging window: RESPONSE and UPDATE
// messages to it get OutsideWindow; HUMAN_AGENT-tagged ones still pass.
func (s *Server) CloseWindow(psid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed[psid] = true
}

var (
	versionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)
	tags      = map[string]bool{"CONFIRMED_EVENT_UPDATE": true, "POST_PURCHASE_UPDATE": true, "ACCOUNT_UPDATE": true, "HUMAN_AGENT": true}
	types     = map[string]bool{"RESPONSE": true, "UPDATE": true, "MESSAGE_TAG": true}
)

// request is the Send API body as Graph reads it; unknown fields are
// refused, so a misspelt field fails the test instead of being dropped.
type request struct {
	Recipient *struct {
		ID string `json:"id"`
	} `json:"recipient"`
	MessagingType    string `json:"messaging_type"`
	Tag              string `json:"tag"`
	NotificationType string `json:"notification_type"`
	Message          *struct {
		Text         *string          `json:"text"`
		QuickReplies []SentQuickReply `json:"quick_replies"`
		Metadata     string           `json:"metadata"`
	} `json:"message"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	down := s.down
	var f *Failure
	if !down && len(s.fail) > 0 {
		f = &s.fail[0]
		s.fail = s.fail[1:]
	}
	s.mu.Unlock()

	if down {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if f != nil {
		graphError(w, *f)
		return
	}
	version, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if !versionRE.MatchString(version) || rest != "me/messages" {
		graphError(w, Failure{Status: 400, Code: 2500, Type: "OAuthException", Message: "Unknown path components: " + r.URL.Path})
		return
	}
	if r.Method != http.MethodPost {
		graphError(w, Failure{Status: 400, Code: 100, Type: "GraphMethodException", Message: "Unsupported get request."})
		return
	}
	token := r.URL.Query().Get("access_token")
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		token = bearer
	}
	switch {
	case token == "":
		graphError(w, Failure{Status: 400, Code: 2500, Type: "OAuthException", Message: "An active access token must be used to query information about the current user."})
		return
	case token != s.token:
		graphError(w, BadToken)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		graphError(w, *invalid("(#100) Content-Type must be application/json"))
		return
	}
	var req request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		graphError(w, *invalid("(#100) Invalid JSON in request body: " + err.Error()))
		return
	}
	sent, fail := check(req)
	if fail != nil {
		graphError(w, *fail)
		return
	}
	sent.Version = version

	s.mu.Lock()
	switch {
	case s.blocked[sent.Recipient]:
		fail = &Unavailable
	case s.closed[sent.Recipient] && sent.Tag != "HUMAN_AGENT":
		fail = &OutsideWindow
	default:
		s.count++
		sent.MessageID = fmt.Sprintf("m_test%016d", s.count)
		s.sent = append(s.sent, sent)
	}
	s.mu.Unlock()
	if fail != nil {
		graphError(w, *fail)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	json.NewEncoder(w).Encode(map[string]string{"recipient_id": sent.Recipient, "message_id": sent.MessageID})
}

// check validates a request the way the Send API documents it.
func check(req request) (Sent, *Failure) {
	var sent Sent
	if req.Recipient == nil || req.Recipient.ID == "" {
		return sent, invalid("(#100) The parameter recipient is required")
	}
	sent.Recipient = req.Recipient.ID
	if !types[req.MessagingType] {
		return sent, invalid("(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}")
	}
	sent.MessagingType = req.MessagingType
	switch {
	case req.MessagingType == "MESSAGE_TAG" && !tags[req.Tag]:
		return sent, invalid("(#100) Param tag must be a valid message tag when messaging_type is MESSAGE_TAG")
	case req.MessagingType != "MESSAGE_TAG" && req.Tag != "":
		return sent, invalid("(#100) Param tag is only allowed when messaging_type is MESSAGE_TAG")
	}
	sent.Tag = req.Tag
	if req.Message == nil || req.Message.Text == nil || *req.Message.Text == "" {
		return sent, invalid("(#100) Param message must have text or attachment")
	}
	text := *req.Message.Text
	if !utf8.ValidString(text) {
		return sent, invalid("(#100) Param message[text] must be valid UTF-8")
	}
	if utf8.RuneCountInString(text) > messenger.MaxTextRunes {
		return sent, invalid("(#100) Length of param message[text] must be less than or equal to 2000")
	}
	sent.Text = text
	qrs := req.Message.QuickReplies
	if len(qrs) > messenger.MaxQuickReplies {
		return sent, invalid("(#100) param message[quick_replies] must have at most 13 elements")
	}
	for i, q := range qrs {
		switch q.ContentType {
		case "text":
			if q.Title == "" || utf8.RuneCountInString(q.Title) > messenger.MaxQuickReplyTitle {
				return sent, invalid(fmt.Sprintf("(#100) param message[quick_replies][%d][title] must be 1 to 20 characters", i))
			}
			if q.Payload == "" || utf8.RuneCountInString(q.Payload) > messenger.MaxQuickReplyData {
				return sent, invalid(fmt.Sprintf("(#100) param message[quick_replies][%d][payload] must be 1 to 1000 characters", i))
			}
		case "user_phone_number", "user_email":
		default:
			return sent, invalid(fmt.Sprintf("(#100) param message[quick_replies][%d][content_type] must be one of {text, user_phone_number, user_email}", i))
		}
	}
	sent.QuickReplies = qrs
	return sent, nil
}

func invalid(msg string) *Failure {
	return &Failure{Status: 400, Code: 100, Type: "OAuthException", Message: msg}
}

var trace atomic.Int64

func graphError(w http.ResponseWriter, f Failure) {
	body := map[string]any{"message": f.Message, "type": f.Type, "code": f.Code, "fbtrace_id": fmt.Sprintf("AbCtrace%04d", trace.Add(1)%10000)}
	if f.Subcode != 0 {
		body["error_subcode"] = f.Subcode
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(f.Status)
	json.NewEncoder(w).Encode(map[string]any{"error": body})
}
