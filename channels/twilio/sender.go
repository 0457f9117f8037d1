package twilio

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/safeflow/safeflow/engine"
)

// Sender delivers SMS through Twilio's Messages API. It implements
// engine.Sender. Its errors never contain the recipient's number or the
// message text.
type Sender struct {
	cfg    Config
	client *http.Client
}

// NewSender returns a Sender for the account in cfg. A nil client means a
// client with a 30 second timeout; the context passed to Send bounds each
// call in any case.
func NewSender(cfg Config, client *http.Client) *Sender {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Sender{cfg: cfg.withDefaults(), client: client}
}

var _ engine.Sender = (*Sender)(nil)

// maxAnswer bounds how much of Twilio's answer is read.
const maxAnswer = 1 << 20

// Send posts m to the Messages API and returns the message SID Twilio
// assigned. An error wraps engine.ErrPermanent when Twilio refused the
// message for good (a 4xx other than 429: a bad number, an unsubscribed
// recipient, wrong credentials) or when m is not an SMS that may be sent;
// a *APIError carries Twilio's code. Rate limiting, 5xx answers, network
// failures and an expired ctx give plain errors, to be retried.
func (s *Sender) Send(ctx context.Context, m *engine.Outbound) (string, error) {
	switch {
	case m == nil:
		return "", fmt.Errorf("twilio: send: no message: %w", engine.ErrPermanent)
	case m.Channel != engine.SMS:
		return "", fmt.Errorf("twilio: send: message is for channel %q, not sms: %w", m.Channel, engine.ErrPermanent)
	case m.Sensitive:
		// Defence in depth: the engine routes sensitive steps to the
		// secure page; if one ever reaches here the carrier must not see it.
		return "", fmt.Errorf("twilio: send: refusing a sensitive message on SMS: %w", engine.ErrPermanent)
	case m.Address == "":
		return "", fmt.Errorf("twilio: send: message has no recipient: %w", engine.ErrPermanent)
	case m.Text == "":
		return "", fmt.Errorf("twilio: send: message has no text: %w", engine.ErrPermanent)
	}
	form := url.Values{
		"To":   {m.Address},
		"From": {s.cfg.From},
		"Body": {m.Text},
	}
	if s.cfg.PublicURL != "" {
		form.Set("StatusCallback", s.cfg.PublicURL+s.cfg.StatusCallbackPath)
	}
	endpoint := s.cfg.APIURL + "/2010-04-01/Accounts/" + url.PathEscape(s.cfg.AccountSID) + "/Messages.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("twilio: send: build request: %w: %w", err, engine.ErrPermanent)
	}
	req.SetBasicAuth(s.cfg.AccountSID, s.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "safeflow")
	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error names the endpoint, which holds no patient data.
		return "", fmt.Errorf("twilio: send: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return "", fmt.Errorf("twilio: send: read answer (HTTP %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", newAPIError(resp.StatusCode, body, m)
	}
	var created struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(body, &created); err != nil || created.SID == "" {
		// Twilio accepted the message, so a retry could send it twice;
		// a clinic would rather see one failure than a duplicate.
		return "", fmt.Errorf("twilio: send: HTTP %d answer without a message sid: %w", resp.StatusCode, engine.ErrPermanent)
	}
	return created.SID, nil
}

// APIError is an error answer from Twilio's API. Message is Twilio's text
// with phone numbers and the message body masked.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Code is Twilio's error code (21211, 21610...); 0 when the answer had
	// none.
	Code     int
	Message  string
	MoreInfo string
}

// Error describes the failure without the recipient or the text.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "twilio: send: HTTP %d", e.Status)
	if e.Code != 0 {
		fmt.Fprintf(&b, ", error %d", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.MoreInfo != "" {
		fmt.Fprintf(&b, " (%s)", e.MoreInfo)
	}
	return b.String()
}

// Permanent reports whether retrying cannot help: any 4xx except 429.
func (e *APIError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests
}

// Unwrap returns engine.ErrPermanent for a permanent failure, so that
// errors.Is(err, engine.ErrPermanent) holds.
func (e *APIError) Unwrap() error {
	if e.Permanent() {
		return engine.ErrPermanent
	}
	return nil
}

// numberLike matches anything that could be a phone number in Twilio's
// error text ("The 'To' number +15558675310 is not a valid phone number.").
var numberLike = regexp.MustCompile(`\+?\d[\d\s().-]{4,}\d`)

const maxErrorMessage = 200

func newAPIError(status int, body []byte, m *engine.Outbound) *APIError {
	e := &APIError{Status: status}
	var answer struct {
		// Twilio sends the code as a number; a string is tolerated.
		Code     json.RawMessage `json:"code"`
		Message  string          `json:"message"`
		MoreInfo string          `json:"more_info"`
	}
	if json.Unmarshal(body, &answer) != nil {
		// Not Twilio's JSON (a proxy's HTML page): the status says enough,
		// and unknown text is not worth the risk of echoing.
		return e
	}
	e.Code, _ = strconv.Atoi(strings.Trim(string(answer.Code), `"`))
	e.Message = redact(answer.Message, m)
	if u, err := url.Parse(answer.MoreInfo); err == nil && u.Scheme == "https" && u.RawQuery == "" {
		e.MoreInfo = answer.MoreInfo
	}
	return e
}

// redact masks the recipient, the text and anything number-like in msg.
func redact(msg string, m *engine.Outbound) string {
	if m.Address != "" {
		msg = strings.ReplaceAll(msg, m.Address, "[number]")
	}
	// A very short body ("Y") would mask ordinary letters of the message
	// and cannot identify anyone.
	if t := strings.TrimSpace(m.Text); len(t) >= 4 {
		msg = strings.ReplaceAll(msg, t, "[text]")
	}
	msg = numberLike.ReplaceAllString(msg, "[number]")
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxErrorMessage {
		msg = strings.ToValidUTF8(msg[:maxErrorMessage], "") + "..."
	}
	return msg
}
