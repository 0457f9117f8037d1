// Package twilio is safeflow's SMS channel over Twilio: webhook handlers that
// check X-Twilio-Signature and hand inbound messages to the engine, a status
// callback handler, and a Sender for Twilio's Messages API. The handlers are
// plain net/http handlers; the web framework wires them in internal/server.
package twilio

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/safeflow/safeflow/engine"
)

// Defaults for the optional Config fields.
const (
	DefaultAPIURL             = "https://api.twilio.com"
	DefaultInboundPath        = "/webhooks/twilio"
	DefaultStatusCallbackPath = "/webhooks/twilio/status"
	DefaultMaxBody            = 64 << 10
	DefaultRegion             = "US"
)

// emptyTwiML is the answer to an inbound message: replies go out through the
// outbox and the Messages API, never in the webhook response.
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// Config is the Twilio account and the public address safeflow is reached at.
// AuthToken is a secret: it comes from the environment or a file, and never
// appears in an error message or log.
type Config struct {
	AccountSID string
	AuthToken  string
	// From is the Twilio number (E.164) or alphanumeric sender messages go
	// out from.
	From string
	// APIURL is the Messages API base URL; DefaultAPIURL when empty.
	APIURL string
	// PublicURL is the configured public base URL of this service, such as
	// https://clinic.example.com. Webhook signatures are checked against it,
	// never against the Host header of the request.
	PublicURL string
	// StatusCallbackPath is where Twilio reports delivery status;
	// DefaultStatusCallbackPath when empty.
	StatusCallbackPath string
	// MaxBody limits a webhook body in bytes; DefaultMaxBody when zero.
	MaxBody int64
	// Region is the CLDR region a sender number without a country code is
	// read in; DefaultRegion when empty.
	Region string
	// Logger receives rejections and internal errors, never message text or
	// phone numbers; slog.Default() when nil.
	Logger *slog.Logger
}

// withDefaults returns c with every empty optional field set.
func (c Config) withDefaults() Config {
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	c.APIURL = strings.TrimRight(c.APIURL, "/")
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.StatusCallbackPath == "" {
		c.StatusCallbackPath = DefaultStatusCallbackPath
	}
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	c.Region = strings.ToUpper(c.Region)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports what is missing or wrong in c for receiving webhooks and
// sending messages. Its errors name the field, never its value.
func (c Config) Validate() error {
	var errs []error
	if c.AccountSID == "" {
		errs = append(errs, errors.New("twilio: AccountSID is required"))
	}
	if c.AuthToken == "" {
		errs = append(errs, errors.New("twilio: AuthToken is required"))
	}
	if c.From == "" {
		errs = append(errs, errors.New("twilio: From is required"))
	}
	if err := checkBaseURL("PublicURL", c.PublicURL); err != nil {
		errs = append(errs, err)
	}
	if c.APIURL != "" {
		if err := checkBaseURL("APIURL", c.APIURL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.StatusCallbackPath != "" && !strings.HasPrefix(c.StatusCallbackPath, "/") {
		errs = append(errs, errors.New("twilio: StatusCallbackPath must start with /"))
	}
	if c.Region != "" && !phonenumbers.GetSupportedRegions()[strings.ToUpper(c.Region)] {
		errs = append(errs, fmt.Errorf("twilio: Region %q is not a known region code", c.Region))
	}
	return errors.Join(errs...)
}

// checkBaseURL requires an absolute http(s) URL without query or fragment,
// since a path is appended to it.
func checkBaseURL(field, raw string) error {
	if raw == "" {
		return fmt.Errorf("twilio: %s is required", field)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("twilio: %s must be an absolute http or https URL", field)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("twilio: %s must not have a query or fragment", field)
	}
	return nil
}

// webhook holds what the inbound and status handlers share: the checks a
// request passes before its parameters are trusted.
type webhook struct {
	cfg  Config
	path string
	// invalid is why the configuration cannot check signatures; such a
	// handler refuses every request rather than accept unchecked ones.
	invalid error
	kind    string
}

func newWebhook(cfg Config, path, kind string) *webhook {
	cfg = cfg.withDefaults()
	w := &webhook{cfg: cfg, path: path, kind: kind}
	if cfg.AuthToken == "" {
		w.invalid = errors.New("AuthToken is empty")
	} else if err := checkBaseURL("PublicURL", cfg.PublicURL); err != nil {
		w.invalid = err
	} else if !strings.HasPrefix(path, "/") {
		w.invalid = errors.New("webhook path must start with /")
	}
	return w
}

// accept checks method, size, form and signature, and returns the verified
// POST parameters. When it returns false it has already answered.
func (h *webhook) accept(w http.ResponseWriter, r *http.Request, reqID string) (url.Values, bool) {
	log := h.cfg.Logger.With("channel", "twilio", "webhook", h.kind, "request_id", reqID)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil, false
	}
	if h.invalid != nil {
		log.Error("twilio webhook is not configured; refusing request", "err", h.invalid)
		internalError(w, reqID)
		return nil, false
	}
	if r.ContentLength > h.cfg.MaxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		http.Error(w, "expected a form body", http.StatusBadRequest)
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxBody)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return nil, false
		}
		http.Error(w, "malformed form body", http.StatusBadRequest)
		return nil, false
	}
	// The signed URL is the public one Twilio was configured with; the Host
	// header is the caller's to choose, and a proxy may rewrite it.
	signed := h.cfg.PublicURL + h.path
	if r.URL.RawQuery != "" {
		signed += "?" + r.URL.RawQuery
	}
	sig := r.Header.Get("X-Twilio-Signature")
	// Every POST parameter counts, known or not: Twilio adds parameters
	// without notice, and dropping one would break valid signatures while
	// ignoring one would let an attacker add unsigned ones.
	if !Valid(h.cfg.AuthToken, signed, r.PostForm, sig) {
		reason := "wrong signature"
		if sig == "" {
			reason = "missing signature"
		}
		log.Warn("twilio webhook rejected", "reason", reason, "source", remoteIP(r))
		http.Error(w, "forbidden", http.StatusForbidden)
		return nil, false
	}
	return r.PostForm, true
}

// InboundHandler returns the handler Twilio posts incoming SMS to. path is
// the route it is mounted at (DefaultInboundPath when empty); the signature
// is checked against cfg.PublicURL + path. It answers 405 to anything but
// POST, 413 to a body over cfg.MaxBody, 400 to a malformed form, 403 to a
// missing or wrong signature, 400 to a signed request without MessageSid or
// a usable From, 500 when sink fails (Twilio retries, and the engine ignores
// a MessageSid it has seen), and otherwise 200 with empty TwiML. sink is
// called once per accepted request and never for a rejected one.
func InboundHandler(cfg Config, path string, sink engine.Sink) http.Handler {
	if path == "" {
		path = DefaultInboundPath
	}
	h := newWebhook(cfg, path, "inbound")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqID := requestID(w, r)
		form, ok := h.accept(w, r, reqID)
		if !ok {
			return
		}
		in, err := parseInbound(form, h.cfg.Region)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		in.Source = remoteIP(r)
		in.RequestID = reqID
		if err := sink(r.Context(), in); err != nil {
			h.cfg.Logger.Error("twilio inbound: engine failed", "channel", "twilio",
				"request_id", reqID, "message_sid", in.ProviderID, "err", err)
			internalError(w, reqID)
			return
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, emptyTwiML)
	})
}

// parseInbound turns verified webhook parameters into an Inbound. Its
// errors are safe to show: they never quote the parameters.
func parseInbound(form url.Values, region string) (engine.Inbound, error) {
	sid := form.Get("MessageSid")
	if sid == "" {
		return engine.Inbound{}, errors.New("MessageSid is missing")
	}
	from := form.Get("From")
	if from == "" {
		return engine.Inbound{}, errors.New("From is missing")
	}
	// A sender we cannot write to as a phone number (an alphanumeric ID, a
	// WhatsApp address) is refused with 400 so that it shows in Twilio's
	// debugger instead of vanishing.
	addr, ok := normalizeNumber(from, region)
	if !ok {
		return engine.Inbound{}, errors.New("From is not a phone number")
	}
	return engine.Inbound{
		Channel:    engine.SMS,
		Address:    addr,
		Text:       form.Get("Body"),
		ProviderID: sid,
	}, nil
}

// normalizeNumber returns s in E.164 form, reading a number without a
// country code in region.
func normalizeNumber(s, region string) (e164 string, ok bool) {
	if len(s) > 40 {
		return "", false
	}
	// phonenumbers digs a number out of any text ("whatsapp:+1415..."); only
	// a bare number is taken as an SMS address.
	if strings.Trim(s, "0123456789 +-.()") != "" {
		return "", false
	}
	// phonenumbers is a port of Java code; a panic on an odd input must
	// cost one request, not the process.
	defer func() {
		if recover() != nil {
			e164, ok = "", false
		}
	}()
	num, err := phonenumbers.Parse(s, region)
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		return "", false
	}
	return phonenumbers.Format(num, phonenumbers.E164), true
}

// StatusHandler returns the handler Twilio posts delivery status callbacks
// to. path is the route it is mounted at (cfg.StatusCallbackPath when
// empty). It applies the same checks as InboundHandler, answers 400 when
// MessageSid or MessageStatus is missing, 500 when update fails (Twilio
// retries), and otherwise 200 with an empty body.
func StatusHandler(cfg Config, path string, update func(context.Context, engine.DeliveryStatus) error) http.Handler {
	cfg = cfg.withDefaults()
	if path == "" {
		path = cfg.StatusCallbackPath
	}
	h := newWebhook(cfg, path, "status")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqID := requestID(w, r)
		form, ok := h.accept(w, r, reqID)
		if !ok {
			return
		}
		st := engine.DeliveryStatus{
			Channel:    engine.SMS,
			ProviderID: form.Get("MessageSid"),
			Status:     form.Get("MessageStatus"),
			ErrorCode:  form.Get("ErrorCode"),
		}
		switch {
		case st.ProviderID == "":
			http.Error(w, "MessageSid is missing", http.StatusBadRequest)
			return
		case st.Status == "":
			http.Error(w, "MessageStatus is missing", http.StatusBadRequest)
			return
		}
		if err := update(r.Context(), st); err != nil {
			h.cfg.Logger.Error("twilio status: update failed", "channel", "twilio",
				"request_id", reqID, "message_sid", st.ProviderID, "err", err)
			internalError(w, reqID)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// requestID returns the request's id: the one a middleware already put on
// the response, else the caller's X-Request-Id, else a new one, which is
// then echoed on the response so the caller can quote it.
func requestID(w http.ResponseWriter, r *http.Request) string {
	if id := w.Header().Get("X-Request-Id"); id != "" {
		return id
	}
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 128 {
		id = rand.Text()
	}
	w.Header().Set("X-Request-Id", id)
	return id
}

// remoteIP is the peer's address without its port. Behind a proxy the
// server wiring is expected to have set RemoteAddr from a trusted header.
func remoteIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

func internalError(w http.ResponseWriter, reqID string) {
	http.Error(w, "internal error (request id "+reqID+")", http.StatusInternalServerError)
}
