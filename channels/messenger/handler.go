package messenger

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/safeflow/safeflow/engine"
)

// Received is the body of a 200 answer to a webhook POST, as Meta's
// examples answer.
const Received = "EVENT_RECEIVED"

// Handler returns the webhook handler for one Page, answering both methods
// Meta uses on the callback URL:
//
//   - GET is the subscription check. The challenge is echoed as text/plain
//     only when hub.mode is "subscribe" and hub.verify_token equals
//     cfg.VerifyToken; anything else gets 403.
//   - POST carries events. The body is limited to cfg.MaxBody (413 beyond
//     it), and its X-Hub-Signature-256 is checked over the raw bytes before
//     any parsing (403 when missing or wrong). A malformed body gets 400; an
//     object other than "page" is acknowledged and ignored. Text messages,
//     quick replies and postbacks become one engine.Inbound each, handed to
//     sink in the order Meta sent them; echoes, deliveries, reads,
//     reactions, edits and unsends are ignored. A sink error answers 500 so
//     that Meta delivers the batch again; messages already handled are then
//     skipped by the engine, which remembers each ProviderID.
//
// A message holding only attachments (a photo, a sticker, a location) is
// passed on with empty Text: the engine treats it as no answer and asks
// again, and nothing in the attachment is read or fetched. Passing a
// placeholder such as "[attachment]" instead would be accepted as the
// answer to a free-text question.
func Handler(cfg Config, sink engine.Sink) http.Handler {
	return &handler{cfg: cfg.withDefaults(), sink: sink}
}

type handler struct {
	cfg  Config
	sink engine.Sink
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.verify(w, r)
	case http.MethodPost:
		h.receive(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		plain(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// verify answers Meta's subscription check.
func (h *handler) verify(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	challenge := q.Get("hub.challenge")
	if q.Get("hub.mode") != "subscribe" || challenge == "" || !sameSecret(q.Get("hub.verify_token"), h.cfg.VerifyToken) {
		h.cfg.Logger.Warn("messenger: webhook verification refused", "source", source(r))
		plain(w, http.StatusForbidden, "forbidden")
		return
	}
	plain(w, http.StatusOK, challenge)
}

// sameSecret compares in constant time, hashing first so that not even the
// length of the configured token leaks. An empty configured token matches
// nothing.
func sameSecret(got, want string) bool {
	if want == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// receive handles a POST of events.
func (h *handler) receive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.cfg.Logger.Warn("messenger: webhook body too large", "limit", h.cfg.MaxBody, "source", source(r))
			plain(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		plain(w, http.StatusBadRequest, "unreadable body")
		return
	}
	// The signature is over the bytes as Meta sent them: checking it before
	// parsing means nothing an attacker writes is ever decoded.
	if !Valid(h.cfg.AppSecret, body, r.Header.Get(SignatureHeader)) {
		h.cfg.Logger.Warn("messenger: webhook signature missing or wrong", "source", source(r))
		plain(w, http.StatusForbidden, "forbidden")
		return
	}
	msgs, err := parse(body)
	if err != nil {
		h.cfg.Logger.Warn("messenger: malformed webhook body", "source", source(r))
		plain(w, http.StatusBadRequest, "malformed body")
		return
	}
	src, reqID := source(r), requestID(w, r)
	for i := range msgs {
		msgs[i].Source, msgs[i].RequestID = src, reqID
		if err := h.sink(r.Context(), msgs[i]); err != nil {
			h.cfg.Logger.Error("messenger: inbound message not handled; Meta will retry", "err", err, "request_id", reqID)
			plain(w, http.StatusInternalServerError, "internal error")
			return
		}
	}
	plain(w, http.StatusOK, Received)
}

func plain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// source is the peer's IP address, for the audit log.
func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// requestID takes the request id from the request, or from the response
// when a middleware (echo's RequestID) has already set one there.
func requestID(w http.ResponseWriter, r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" {
		return id
	}
	return w.Header().Get("X-Request-Id")
}

// The webhook body, as far as safeflow reads it. Fields of other event
// kinds (delivery, read, reaction, optin, referral...) are not decoded:
// an event with neither a message nor a postback is ignored.
type webhook struct {
	Object string  `json:"object"`
	Entry  []entry `json:"entry"`
}

type entry struct {
	ID        string      `json:"id"`
	Messaging []messaging `json:"messaging"`
}

type messaging struct {
	Sender    party       `json:"sender"`
	Recipient party       `json:"recipient"`
	Timestamp json.Number `json:"timestamp"`
	Message   *message    `json:"message"`
	Postback  *postback   `json:"postback"`
}

type party struct {
	ID string `json:"id"`
}

type message struct {
	MID        string `json:"mid"`
	Text       string `json:"text"`
	IsEcho     bool   `json:"is_echo"`
	IsDeleted  bool   `json:"is_deleted"`
	QuickReply *struct {
		Payload string `json:"payload"`
	} `json:"quick_reply"`
	Attachments []struct {
		Type string `json:"type"`
	} `json:"attachments"`
}

type postback struct {
	MID     string `json:"mid"`
	Title   string `json:"title"`
	Payload string `json:"payload"`
}

// errMalformed is returned by parse for a body that is not a webhook.
var errMalformed = errors.New("malformed webhook body")

// parse turns a verified webhook body into inbound messages, in order. It
// returns no messages and no error for objects other than "page" (the same
// app may be subscribed to Instagram or other objects).
func parse(body []byte) ([]engine.Inbound, error) {
	var wh webhook
	if err := json.Unmarshal(body, &wh); err != nil {
		return nil, errMalformed
	}
	if wh.Object != "page" {
		return nil, nil
	}
	var out []engine.Inbound
	for _, e := range wh.Entry {
		for _, m := range e.Messaging {
			if in, ok := inbound(e.ID, m); ok {
				out = append(out, in)
			}
		}
	}
	return out, nil
}

// inbound converts one messaging event; ok is false for events safeflow
// ignores.
func inbound(pageID string, m messaging) (engine.Inbound, bool) {
	psid := m.Sender.ID
	// The Page itself is never a patient: echoes normally say is_echo, and
	// a sender equal to the Page id catches any that do not.
	if psid == "" || psid == pageID {
		return engine.Inbound{}, false
	}
	in := engine.Inbound{Channel: engine.Messenger, Address: psid}
	switch {
	case m.Message != nil:
		msg := m.Message
		if msg.IsEcho || msg.IsDeleted {
			return engine.Inbound{}, false
		}
		if msg.Text == "" && msg.QuickReply == nil && len(msg.Attachments) == 0 {
			return engine.Inbound{}, false
		}
		in.Text = msg.Text
		if msg.QuickReply != nil {
			in.Payload = msg.QuickReply.Payload
		}
		in.ProviderID = msg.MID
		if in.ProviderID == "" {
			in.ProviderID = stableID("message", psid, m.Timestamp.String(), "")
		}
	case m.Postback != nil:
		in.Text, in.Payload = m.Postback.Title, m.Postback.Payload
		in.ProviderID = m.Postback.MID
		if in.ProviderID == "" {
			in.ProviderID = stableID("postback", psid, m.Timestamp.String(), m.Postback.Payload)
		}
	default:
		return engine.Inbound{}, false
	}
	return in, true
}

// stableID derives a de-duplication key for an event that carries no mid,
// from fields that stay the same when Meta redelivers it.
func stableID(kind, psid, timestamp, payload string) string {
	h := sha256.New()
	for _, s := range []string{kind, psid, timestamp, payload} {
		io.WriteString(h, s)
		h.Write([]byte{0})
	}
	return kind + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}
