package messenger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/safeflow/safeflow/engine"
)

// Limits of the Send API for a text message with quick replies.
const (
	MaxTextRunes       = 2000
	MaxQuickReplies    = 13
	MaxQuickReplyTitle = 20
	MaxQuickReplyData  = 1000
)

// The messaging windows of Meta's Messenger policy, counted from the
// patient's last message to the Page.
const (
	// StandardWindow is how long a Page may answer freely.
	StandardWindow = 24 * time.Hour
	// HumanAgentWindow is how long a person at the Page (not a bot) may
	// answer with the HUMAN_AGENT tag, on Pages approved for it.
	HumanAgentWindow = 7 * 24 * time.Hour
)

// windowMargin keeps a send that starts just inside a window from arriving
// at Meta just outside it.
const windowMargin = time.Minute

var (
	// ErrOutsideWindow is returned for a message that Meta's policy does
	// not allow at this time; retrying cannot help until the patient writes
	// again.
	ErrOutsideWindow = fmt.Errorf("messenger: outside the Messenger messaging window: %w", engine.ErrPermanent)
	// ErrSensitive is returned for a message marked sensitive: those belong
	// on the secure chat, never on Messenger (SECURITY.md #4).
	ErrSensitive = fmt.Errorf("messenger: refusing to send a sensitive message on Messenger: %w", engine.ErrPermanent)
	// ErrInvalidMessage is returned for a message the Send API cannot take:
	// no recipient, no text, another channel, or a quick-reply payload over
	// the limit.
	ErrInvalidMessage = fmt.Errorf("messenger: message cannot be sent on Messenger: %w", engine.ErrPermanent)
)

// Sender delivers outbound messages through the Messenger Send API
// (POST {APIURL}/{APIVersion}/me/messages). It implements engine.Sender.
//
// Meta's policy decides when a Page may write. Inside the standard
// messaging window, 24 hours from the patient's last message, any message
// may be sent with messaging_type RESPONSE. Outside it, only message tags
// for their approved use cases are allowed, and none of them fits a clinic
// flow: ACCOUNT_UPDATE is for changes to account settings,
// CONFIRMED_EVENT_UPDATE for events the person signed up for,
// POST_PURCHASE_UPDATE for purchases, and tags may never carry promotional
// content. The one tag safeflow uses is HUMAN_AGENT, which lets a person
// at the clinic answer up to seven days after the patient's last message,
// on Pages Meta has approved for it (Config.HumanAgent). So:
//
//   - Send uses RESPONSE and leaves the window to Meta, which refuses a
//     late message with a permission error; that error is permanent.
//   - SendAt checks the window first and returns ErrOutsideWindow without
//     calling Meta when it is closed.
//   - SendAsAgent does the same for a reply typed by staff, using the
//     HUMAN_AGENT tag between 24 hours and 7 days when the Page may.
//
// A Sender never sends a message marked sensitive (ErrSensitive). Errors
// never contain the page token, the PSID or the message text.
type Sender struct {
	cfg      Config
	client   *http.Client
	now      func() time.Time
	endpoint string
}

// SenderOption changes a Sender.
type SenderOption func(*Sender)

// WithClock makes the Sender read the time from now, for the window
// checks.
func WithClock(now func() time.Time) SenderOption {
	return func(s *Sender) { s.now = now }
}

// NewSender returns a Sender for the Page in cfg. A nil client means a
// client with a 30-second timeout. Redirects are never followed, so the
// token in the query cannot travel to another host.
func NewSender(cfg Config, client *http.Client, opts ...SenderOption) *Sender {
	cfg = cfg.withDefaults()
	var c http.Client
	if client != nil {
		c = *client
	} else {
		c.Timeout = 30 * time.Second
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s := &Sender{cfg: cfg, client: &c, now: time.Now,
		endpoint: cfg.APIURL + "/" + url.PathEscape(cfg.APIVersion) + "/me/messages"}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Send delivers m with messaging_type RESPONSE and returns Meta's
// message_id. It does not know when the patient last wrote; Meta refuses a
// message outside the window and that refusal wraps engine.ErrPermanent.
// Other errors: ErrSensitive, ErrInvalidMessage, an *APIError (permanent
// for refusals such as a blocked or unavailable person, retryable for rate
// limits and server errors), or a retryable network error.
func (s *Sender) Send(ctx context.Context, m *engine.Outbound) (string, error) {
	return s.send(ctx, m, "RESPONSE", "")
}

// SendAt delivers m if the standard messaging window, counted from
// lastInbound (the time of the patient's last message), is still open, and
// returns ErrOutsideWindow otherwise. Its other errors are those of Send.
func (s *Sender) SendAt(ctx context.Context, m *engine.Outbound, lastInbound time.Time) (string, error) {
	if !s.within(lastInbound, StandardWindow) {
		return "", ErrOutsideWindow
	}
	return s.send(ctx, m, "RESPONSE", "")
}

// SendAsAgent delivers a reply written by a member of staff. Inside the
// standard window it is an ordinary RESPONSE; after it, and up to
// HumanAgentWindow from lastInbound, it goes with the HUMAN_AGENT tag when
// Config.HumanAgent is set. Otherwise it returns ErrOutsideWindow. Never
// use it for messages the flow writes: the tag is for people only.
func (s *Sender) SendAsAgent(ctx context.Context, m *engine.Outbound, lastInbound time.Time) (string, error) {
	switch {
	case s.within(lastInbound, StandardWindow):
		return s.send(ctx, m, "RESPONSE", "")
	case s.cfg.HumanAgent && s.within(lastInbound, HumanAgentWindow):
		return s.send(ctx, m, "MESSAGE_TAG", "HUMAN_AGENT")
	default:
		return "", ErrOutsideWindow
	}
}

func (s *Sender) within(last time.Time, window time.Duration) bool {
	return !last.IsZero() && s.now().Sub(last) < window-windowMargin
}

// The Send API request body.
type sendRequest struct {
	Recipient     recipient   `json:"recipient"`
	MessagingType string      `json:"messaging_type"`
	Tag           string      `json:"tag,omitempty"`
	Message       sendMessage `json:"message"`
}

type recipient struct {
	ID string `json:"id"`
}

type sendMessage struct {
	Text         string       `json:"text"`
	QuickReplies []quickReply `json:"quick_replies,omitempty"`
}

type quickReply struct {
	ContentType string `json:"content_type"`
	Title       string `json:"title"`
	Payload     string `json:"payload"`
}

// send checks m, splits text over the limit into several messages (the
// quick replies go with the last, where the question usually is) and
// returns the message_id of the last.
func (s *Sender) send(ctx context.Context, m *engine.Outbound, typ, tag string) (string, error) {
	if m == nil || m.Channel != engine.Messenger || m.Address == "" {
		return "", ErrInvalidMessage
	}
	if m.Sensitive {
		return "", ErrSensitive
	}
	qrs, err := quickReplies(m.Choices)
	if err != nil {
		return "", err
	}
	parts := splitText(m.Text, MaxTextRunes)
	if len(parts) == 0 {
		return "", ErrInvalidMessage
	}
	sc := scrubber(append([]string{s.cfg.PageToken, m.Address, m.Text}, parts...))
	var id string
	for i, p := range parts {
		req := sendRequest{Recipient: recipient{m.Address}, MessagingType: typ, Tag: tag, Message: sendMessage{Text: p}}
		if i == len(parts)-1 {
			req.Message.QuickReplies = qrs
		}
		if id, err = s.post(ctx, req, sc); err != nil {
			if len(parts) > 1 {
				return "", fmt.Errorf("part %d of %d: %w", i+1, len(parts), err)
			}
			return "", err
		}
	}
	return id, nil
}

// post makes one Send API call.
func (s *Sender) post(ctx context.Context, body sendRequest, sc scrubber) (string, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return "", fmt.Errorf("messenger: encode request: %w", ErrInvalidMessage)
	}
	q := url.Values{"access_token": {s.cfg.PageToken}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint+"?"+q.Encode(), bytes.NewReader(b))
	if err != nil {
		// Only a malformed APIURL gets here; the URL holds the token, so the
		// error is not passed on.
		return "", fmt.Errorf("messenger: bad Send API URL in configuration: %w", engine.ErrPermanent)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return "", networkError(ctx, err, sc)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", networkError(ctx, err, sc)
	}
	if resp.StatusCode/100 == 2 {
		var ok struct {
			MessageID string `json:"message_id"`
		}
		if json.Unmarshal(raw, &ok) != nil || ok.MessageID == "" {
			return "", &APIError{Status: resp.StatusCode, Message: "answer without a message_id"}
		}
		return ok.MessageID, nil
	}
	return "", apiError(resp.StatusCode, raw, sc)
}

// APIError is a refusal answered by the Graph API. Message is Meta's text
// with the token, the PSID and the message text removed.
type APIError struct {
	// Status is the HTTP status.
	Status int
	// Code, Subcode and Type are Graph's error.code, error.error_subcode
	// and error.type.
	Code, Subcode int
	Type          string
	Message       string
	// TraceID is Graph's fbtrace_id, for Meta support.
	TraceID string
	// Permanent is true when retrying cannot help.
	Permanent bool
}

// Error describes the refusal without any personal data.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "messenger: Send API answered HTTP %d", e.Status)
	if e.Code != 0 {
		fmt.Fprintf(&b, ", code %d", e.Code)
		if e.Subcode != 0 {
			fmt.Fprintf(&b, "/%d", e.Subcode)
		}
	}
	if e.Type != "" {
		fmt.Fprintf(&b, " (%s)", e.Type)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.TraceID != "" {
		b.WriteString(" [fbtrace_id " + e.TraceID + "]")
	}
	return b.String()
}

// Unwrap makes errors.Is(err, engine.ErrPermanent) true for permanent
// refusals.
func (e *APIError) Unwrap() error {
	if e.Permanent {
		return engine.ErrPermanent
	}
	return nil
}

func apiError(status int, raw []byte, sc scrubber) *APIError {
	var body struct {
		Error struct {
			Message   string `json:"message"`
			Type      string `json:"type"`
			Code      int    `json:"code"`
			Subcode   int    `json:"error_subcode"`
			FBTraceID string `json:"fbtrace_id"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &body) // a non-JSON answer (a proxy's HTML page) leaves the fields empty
	g := body.Error
	e := &APIError{Status: status, Code: g.Code, Subcode: g.Subcode, Type: sc.clean(g.Type, 40),
		Message: sc.clean(g.Message, 160), TraceID: sc.clean(g.FBTraceID, 40)}
	e.Permanent = permanent(status, g.Code)
	return e
}

// permanent classifies a Graph error by its code first, because Graph
// answers rate limits and refusals alike with HTTP 400, then by status.
func permanent(status, code int) bool {
	switch code {
	case 1, 2, 1200: // unknown or temporary failures: Meta says retry later
		return false
	case 4, 17, 32, 341, 613: // rate limits
		return false
	case 190:
		// An expired or revoked page token is safeflow's configuration, not
		// this message's fault: the message waits while an operator renews
		// the token, and the outbox gives up after its last attempt.
		return false
	case 10, 100, 200, 230, 551:
		// 10 and 200–299: not allowed (outside the window, the person does
		// not accept messages from the Page); 100: invalid parameter, such
		// as an unknown PSID; 551: this person isn't available right now
		// (blocked the Page or left).
		return true
	}
	if code > 200 && code < 300 {
		return true
	}
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500:
		return false
	case status >= 400:
		return true
	}
	return false
}

// netErr is a transport failure. Its text is scrubbed because net/http
// puts the full request URL, token included, into *url.Error.
type netErr struct {
	msg string
	err error
}

func (e *netErr) Error() string { return e.msg }
func (e *netErr) Unwrap() error { return e.err }

func networkError(ctx context.Context, err error, sc scrubber) error {
	if ctx.Err() != nil {
		return &netErr{msg: "messenger: send cancelled: " + ctx.Err().Error(), err: ctx.Err()}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &netErr{msg: "messenger: Send API unreachable: " + sc.clean(err.Error(), 200), err: err}
}

// scrubber holds the values that must never appear in an error: the page
// token, the PSID, the text and its parts.
type scrubber []string

// clean removes them from a text that came from outside (Meta's error
// message, a transport error), along with anything after access_token=,
// and cuts it to max runes.
func (s scrubber) clean(msg string, max int) string {
	for _, v := range s {
		// Values this short are too common to find meaningfully ("ok"
		// would shred every message) and carry no identity.
		if len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	if i := strings.Index(msg, "access_token="); i >= 0 {
		msg = msg[:i] + "access_token=[redacted]"
	}
	return truncate(strings.ToValidUTF8(msg, ""), max, "…")
}

// quickReplies turns choices into at most MaxQuickReplies quick replies,
// titles cut to MaxQuickReplyTitle characters. A choice with no payload
// sends its title, the value the patient would type.
func quickReplies(choices []engine.OutChoice) ([]quickReply, error) {
	var out []quickReply
	for _, c := range choices {
		if len(out) == MaxQuickReplies {
			// The patient can still type any other answer; the flow
			// checker warns about questions with more choices than this.
			break
		}
		title, payload := strings.TrimSpace(c.Title), c.Payload
		if payload == "" {
			payload = title
		}
		if title == "" {
			title = strings.TrimSpace(payload)
		}
		if title == "" {
			continue
		}
		if utf8.RuneCountInString(payload) > MaxQuickReplyData {
			return nil, ErrInvalidMessage
		}
		out = append(out, quickReply{ContentType: "text", Title: truncate(title, MaxQuickReplyTitle, "…"), Payload: payload})
	}
	return out, nil
}

// truncate cuts s to at most max runes, ending in ellipsis when cut. It
// never splits a UTF-8 sequence.
func truncate(s string, max int, ellipsis string) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	keep := max - utf8.RuneCountInString(ellipsis)
	i := 0
	for n := 0; n < keep; n++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return strings.TrimRightFunc(s[:i], unicode.IsSpace) + ellipsis
}

// splitText cuts s into pieces of at most max runes, preferring to break
// after a newline or a space in the second half of a piece. Blank text
// gives no pieces.
func splitText(s string, max int) []string {
	s = strings.TrimSpace(strings.ToValidUTF8(s, "\uFFFD"))
	var parts []string
	for s != "" {
		if utf8.RuneCountInString(s) <= max {
			parts = append(parts, s)
			break
		}
		// cut is the byte offset after max runes.
		cut := 0
		for n := 0; n < max; n++ {
			_, size := utf8.DecodeRuneInString(s[cut:])
			cut += size
		}
		head := s[:cut]
		if i := strings.LastIndexAny(head, "\n "); i > 0 && utf8.RuneCountInString(head[:i]) >= max/2 {
			cut = i + 1
		}
		parts = append(parts, strings.TrimSpace(s[:cut]))
		s = strings.TrimSpace(s[cut:])
	}
	return parts
}
