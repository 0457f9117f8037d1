// Package twiliotest provides a stand-in for Twilio in tests: an HTTP server
// on 127.0.0.1 that speaks the Messages API (authentication, validation,
// Twilio-shaped JSON answers and errors, injected outages), and helpers that
// build signed webhook requests the way Twilio sends them.
package twiliotest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/safeflow/safeflow/channels/twilio"
)

// MaxBody is the longest message body, in characters, Twilio accepts.
const MaxBody = 1600

// Message is one message the server accepted.
type Message struct {
	To             string
	From           string
	Body           string
	StatusCallback string
	SID            string
}

// Server is a fake Twilio Messages API for one account.
type Server struct {
	// URL is the base URL to use as twilio.Config.APIURL.
	URL string

	srv        *httptest.Server
	accountSID string
	authToken  string

	mu         sync.Mutex
	messages   []Message
	requests   int
	conns      int
	failLeft   int
	failStatus int
	down       bool
	delay      time.Duration
}

// NewServer starts a server for the account accountSID with auth token
// authToken; it is closed when the test ends.
func NewServer(t testing.TB, accountSID, authToken string) *Server {
	t.Helper()
	s := &Server{accountSID: accountSID, authToken: authToken}
	// httptest listens on 127.0.0.1 unless told otherwise.
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	s.srv.Start()
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Config returns a twilio.Config for this server's account, to which a test
// adds From and PublicURL.
func (s *Server) Config() twilio.Config {
	return twilio.Config{AccountSID: s.accountSID, AuthToken: s.authToken, APIURL: s.URL}
}

// Close shuts the server down; later requests fail to connect.
func (s *Server) Close() { s.srv.Close() }

// Messages returns the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Connections returns how many connections clients opened to the server.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Requests returns how many requests reached the server, answered or not.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// FailNext makes the next n requests fail with the HTTP status given and a
// Twilio-style error: 400 answers 21610 (unsubscribed recipient), 401 20003,
// 404 20404, 429 20429, 5xx 20500.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLeft, s.failStatus = n, status
}

// SetDown starts (true) or ends (false) an outage during which every request
// is answered 500.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetDelay makes every later answer wait d first, or until the client
// gives up, to test timeouts.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// apiError is the JSON body of a Twilio error answer.
type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(apiError{
		Code:     code,
		Message:  msg,
		MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		Status:   status,
	})
}

// injected answers the status FailNext asked for with a fitting code.
func injected(w http.ResponseWriter, status int) {
	switch {
	case status == http.StatusBadRequest:
		writeError(w, status, 21610, "Attempt to send to unsubscribed recipient")
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		writeError(w, status, 20003, "Authenticate")
	case status == http.StatusNotFound:
		writeError(w, status, 20404, "The requested resource was not found")
	case status == http.StatusTooManyRequests:
		writeError(w, status, 20429, "Too Many Requests")
	case status >= 500:
		writeError(w, status, 20500, "Internal Server Error")
	default:
		writeError(w, status, 20001, "Failure injected by twiliotest")
	}
}

var (
	messagesPath = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)/Messages\.json$`)
	e164         = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	down, delay := s.down, s.delay
	fail := 0
	if !down && s.failLeft > 0 {
		s.failLeft--
		fail = s.failStatus
	}
	s.mu.Unlock()
	if delay > 0 {
		// net/http notices a client hanging up only once the body is read.
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case down:
		writeError(w, http.StatusInternalServerError, 20500, "Internal Server Error")
		return
	case fail != 0:
		injected(w, fail)
		return
	}

	user, pass, ok := r.BasicAuth()
	if !ok || user != s.accountSID || pass != s.authToken {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	m := messagesPath.FindStringSubmatch(r.URL.Path)
	if m == nil || m[1] != s.accountSID {
		writeError(w, http.StatusNotFound, 20404,
			fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		// Twilio's own code for this case is not documented; 20001 is
		// this server's choice.
		writeError(w, http.StatusBadRequest, 20001, "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, 20001, "Malformed form body")
		return
	}
	f := r.PostForm
	msg := Message{
		To:             f.Get("To"),
		From:           f.Get("From"),
		Body:           f.Get("Body"),
		StatusCallback: f.Get("StatusCallback"),
	}
	switch {
	case msg.To == "":
		writeError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
		return
	case msg.From == "" && f.Get("MessagingServiceSid") == "":
		writeError(w, http.StatusBadRequest, 21603, "A 'From' phone number is required.")
		return
	case msg.Body == "" && f.Get("MediaUrl") == "":
		writeError(w, http.StatusBadRequest, 21602, "Message body is required.")
		return
	case !e164.MatchString(msg.To):
		// Twilio quotes the number back, which is why callers must not
		// copy its error text into logs unmasked.
		writeError(w, http.StatusBadRequest, 21211,
			fmt.Sprintf("Invalid 'To' Phone Number: %s", msg.To))
		return
	case utf8.RuneCountInString(msg.Body) > MaxBody:
		writeError(w, http.StatusBadRequest, 21617,
			"The concatenated message body exceeds the 1600 character limit.")
		return
	case msg.StatusCallback != "" && !absoluteURL(msg.StatusCallback):
		writeError(w, http.StatusBadRequest, 21609, "Invalid StatusCallback url")
		return
	}
	msg.SID = NewSID("SM")
	s.mu.Lock()
	s.messages = append(s.messages, msg)
	s.mu.Unlock()

	now := time.Now().UTC().Format(time.RFC1123Z)
	uri := fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s", s.accountSID, msg.SID)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"account_sid":           s.accountSID,
		"api_version":           "2010-04-01",
		"body":                  msg.Body,
		"date_created":          now,
		"date_sent":             nil,
		"date_updated":          now,
		"direction":             "outbound-api",
		"error_code":            nil,
		"error_message":         nil,
		"from":                  msg.From,
		"messaging_service_sid": nilIfEmpty(f.Get("MessagingServiceSid")),
		"num_media":             "0",
		"num_segments":          fmt.Sprint(Segments(msg.Body)),
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   msg.SID,
		"status":                "queued",
		"subresource_uris":      map[string]string{"media": uri + "/Media.json"},
		"to":                    msg.To,
		"uri":                   uri + ".json",
	})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func absoluteURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// NewSID returns a random Twilio-style SID: prefix ("SM", "AC", "MM")
// followed by 32 lower-case hex digits.
func NewSID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// gsmBasic and gsmExtended are the GSM 03.38 alphabet; a body using only
// these travels as 7-bit GSM, anything else as UCS-2.
const (
	gsmBasic    = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtended = "\f^{}\\[~]|€"
)

// Segments returns how many SMS segments Twilio bills body as: 160 GSM-7
// characters (153 when concatenated, extension characters counting twice)
// or 70 UTF-16 code units (67 when concatenated).
func Segments(body string) int {
	septets, gsm := 0, true
	for _, r := range body {
		switch {
		case strings.ContainsRune(gsmBasic, r):
			septets++
		case strings.ContainsRune(gsmExtended, r):
			septets += 2
		default:
			gsm = false
		}
	}
	single, multi, units := 160, 153, septets
	if !gsm {
		single, multi, units = 70, 67, 0
		for _, r := range body {
			units += utf8.RuneLen(r)/4 + 1 // runes outside the BMP take two UTF-16 units
		}
	}
	if units <= single {
		return 1
	}
	return (units + multi - 1) / multi
}
