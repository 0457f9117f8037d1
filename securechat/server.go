// Package securechat is safeflow's secure web chat: the one-time links that
// move the sensitive steps of a conversation off SMS and Messenger (Issuer),
// the optional knowledge check before any content, the chat page with its
// live updates (Server), and the push of secure messages to open pages
// (Hub, the engine.Sender of the Secure channel).
//
// Everything is served under /s/ with net/http handlers:
//
//	GET  /s/{token}       a page with a "Continue" button; it never uses up the link
//	POST /s/{token}       the knowledge check, if any, then redemption: a session
//	                      cookie and a redirect to /s/chat (no token in the URL)
//	GET  /s/chat          the chat page
//	POST /s/chat/send     an answer, typed or chosen
//	GET  /s/chat/events   new messages, as server-sent events
//	POST /s/chat/end      ends the session and clears the site's data
//	GET  /s/static/{file} the page's script and style sheet
package securechat

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/internal/audit"
)

// Store is what the secure chat needs from storage; internal/store's
// *Store implements it. Methods that change something and take an
// audit.Record append it in the same transaction. Lookups return
// engine.ErrNotFound for what does not exist.
type Store interface {
	// SecureLinkByHash returns a link by its token's hash, whether it was
	// redeemed and whether it is locked.
	SecureLinkByHash(ctx context.Context, tokenHash []byte) (link engine.SecureLink, redeemed, locked bool, err error)
	// RedeemSecureLink redeems a link (unredeemed, unexpired at now, not
	// locked) and opens a session for its conversation, or returns
	// engine.ErrNotFound and changes nothing.
	RedeemSecureLink(ctx context.Context, tokenHash, sessionHash []byte, now, sessionExpires time.Time, rec audit.Record) (conversationID string, err error)
	// FailSecureLink counts a failed check and locks the link at
	// maxFailures; engine.ErrNotFound for a redeemed or locked link.
	FailSecureLink(ctx context.Context, tokenHash []byte, maxFailures int, rec audit.Record) (failures int, locked bool, err error)
	// TouchSecureSession returns a live session's conversation and first
	// transcript position, and records activity at now.
	TouchSecureSession(ctx context.Context, idHash []byte, now time.Time, idle time.Duration) (conversationID string, firstLine int64, err error)
	// SecureSession is TouchSecureSession without recording activity.
	SecureSession(ctx context.Context, idHash []byte, now time.Time, idle time.Duration) (conversationID string, firstLine int64, err error)
	// EndSecureSession removes a session and returns its conversation.
	EndSecureSession(ctx context.Context, idHash []byte, rec audit.Record) (conversationID string, err error)
	// ExpireSecureSessions removes timed-out sessions and returns the
	// conversations left without one.
	ExpireSecureSessions(ctx context.Context, now time.Time, idle time.Duration, rec audit.Record) ([]string, error)
	// SecureTranscript calls fn with up to limit secure-channel lines of a
	// conversation after position after, in order.
	SecureTranscript(ctx context.Context, conversationID string, after int64, limit int, fn func(n int64, line engine.TranscriptLine)) error
	// LatestSecureOutbound returns the last secure message of a
	// conversation, with its choices and input type.
	LatestSecureOutbound(ctx context.Context, conversationID string) (*engine.Outbound, error)
	// ConversationState returns a conversation without its sealed fields.
	ConversationState(ctx context.Context, id string) (*engine.Conversation, error)
	// Notify tells the other nodes (PostgreSQL NOTIFY); a no-op on one node.
	Notify(ctx context.Context, channel, payload string) error
	// Audit appends records to the audit log in their own transaction.
	Audit(ctx context.Context, records ...audit.Record) error
}

// Audit actions of secure sessions. Links use the audit package's link
// actions (link.opened, link.redeemed, link.failed, link.expired,
// link.locked).
const (
	ActionSessionEnded   = "secure.session.ended"
	ActionSessionRefused = "secure.session.refused"
)

// SessionCookie is the name of the secure session's cookie. The __Host-
// prefix makes browsers accept it only when Secure, with Path=/ and no
// Domain, so that no other host of the domain can set or read it.
const SessionCookie = "__Host-sf_session"

// csrfCookie carries the double-submit token of the link pages, before
// there is a session.
const csrfCookie = "__Host-sf_csrf"

// contentSecurityPolicy allows only the page's own script, style and
// images, no inline code, no framing and forms only to itself.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// historyLimit bounds the lines a page or one stream update reads at once.
const historyLimit = 500

// maxAnswer bounds a typed answer, in characters.
const maxAnswer = 1000

//go:embed web
var web embed.FS

var pages = template.Must(template.New("").ParseFS(web, "web/*.html"))

// Server serves the secure web chat.
type Server struct {
	cfg        Config
	st         Store
	eng        *engine.Engine
	flows      engine.Flows
	hub        *Hub
	https      bool
	cop        *http.CrossOriginProtection
	ipLimit    *limiter
	tokenLimit *limiter
	static     fs.FS
	routes     []Route
	mux        *http.ServeMux
	// lastSweep is when a request last ended timed-out sessions, in
	// nanoseconds of cfg.Now.
	lastSweep atomic.Int64
}

// Route is one endpoint of the secure chat.
type Route struct {
	Method string
	// Pattern is the path as a net/http ServeMux pattern, such as /s/{token}.
	Pattern string
	// Handler serves the route, security headers included.
	Handler http.Handler
}

// New returns the secure chat server over a store, the engine and the
// flows the engine runs (for the knowledge check's prompt). It fails when
// cfg.PublicURL is missing or not https outside dev mode.
func New(cfg Config, st Store, eng *engine.Engine, fl engine.Flows) (*Server, error) {
	cfg, origin, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, st: st, eng: eng, flows: fl, https: origin.Scheme == "https",
		cop:        http.NewCrossOriginProtection(),
		ipLimit:    newLimiter(cfg.IPRate, cfg.IPBurst),
		tokenLimit: newLimiter(cfg.TokenRate, cfg.TokenBurst),
		hub:        NewHub(st.Notify, cfg.Log),
	}
	// Behind a proxy the Host header may not be the public one.
	if err := s.cop.AddTrustedOrigin(origin.String()); err != nil {
		return nil, fmt.Errorf("secure chat: %w", err)
	}
	s.static, _ = fs.Sub(web, "web/static") // a constant, valid path
	s.routes = []Route{
		{http.MethodGet, "/s/{token}", http.HandlerFunc(s.getLink)},
		{http.MethodPost, "/s/{token}", http.HandlerFunc(s.postLink)},
		{http.MethodGet, "/s/chat", http.HandlerFunc(s.chatPage)},
		{http.MethodPost, "/s/chat/send", http.HandlerFunc(s.send)},
		{http.MethodGet, "/s/chat/events", http.HandlerFunc(s.events)},
		{http.MethodPost, "/s/chat/end", http.HandlerFunc(s.end)},
		{http.MethodGet, "/s/static/{file}", http.HandlerFunc(s.staticFile)},
	}
	mux := http.NewServeMux()
	for i := range s.routes {
		s.routes[i].Handler = s.secure(s.routes[i].Handler)
		mux.Handle(s.routes[i].Method+" "+s.routes[i].Pattern, s.routes[i].Handler)
	}
	// Anything else under /s/ gets the mux's 404 or 405, with the headers.
	s.mux = http.NewServeMux()
	s.mux.Handle("/", s.secure(mux))
	return s, nil
}

// Hub returns the server's hub: the engine.Sender for the Secure channel.
func (s *Server) Hub() *Hub { return s.hub }

// Routes returns the endpoints, each wrapped with the security headers.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// ServeHTTP serves every path under /s/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type ctxKey struct{}

// secure sets the headers every secure response carries (SECURITY.md #11)
// and gives the request an id.
func (s *Server) secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		if r.TLS != nil || s.https {
			// Behind a proxy that ends TLS, the browser still saw https.
			hd.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		hd.Del("Server")
		hd.Del("X-Powered-By")
		if r.Context().Value(ctxKey{}) != nil {
			h.ServeHTTP(w, r)
			return
		}
		id := r.Header.Get("X-Request-Id")
		if len(id) == 0 || len(id) > 64 || !wellFormedID(id) {
			id = newToken()[:16]
		}
		hd.Set("X-Request-Id", id)
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

// wellFormedID reports whether a request id from a proxy is safe to log.
func wellFormedID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(ctxKey{}).(string)
	return id
}

// record makes an audit record of a request on the secure chat.
func (s *Server) record(r *http.Request, action, outcome, reason, conversationID, contactID string) audit.Record {
	return audit.Record{Time: s.cfg.Now(), Actor: audit.Actor{Type: audit.ActorContact, ID: contactID}, Source: s.cfg.ClientIP(r),
		Action: action, Object: "secure_link", Conversation: conversationID, Channel: string(engine.Secure),
		Outcome: outcome, Reason: reason, RequestID: requestID(r)}
}

// audit appends a record on its own. A failure is logged: the refusal it
// records has happened anyway.
func (s *Server) audit(ctx context.Context, rec audit.Record) {
	if err := s.st.Audit(ctx, rec); err != nil {
		s.cfg.Log.Error("secure chat: audit", "action", rec.Action, "conversation", rec.Conversation, "err", err.Error())
	}
}

// crossOrigin refuses a state-changing request sent by another site. Old
// browsers without Sec-Fetch-Site send "Origin: null" on our own forms,
// because the pages ask for no referrer; for those, the SameSite=Strict
// cookie and the per-page token decide alone.
func (s *Server) crossOrigin(r *http.Request) error {
	if r.Header.Get("Sec-Fetch-Site") == "" && r.Header.Get("Origin") == "null" {
		return nil
	}
	return s.cop.Check(r)
}

// page is what the templates show.
type page struct {
	Lang   string
	T      *pageTexts
	Script bool

	// The link pages.
	Action    string
	CSRF      string
	Prompt    string
	InputType string
	InputMode string
	Error     string

	// Notices.
	Heading   string
	Text      string
	RequestID string

	// The chat page.
	Chat *chatView
}

// render executes a template into a buffer, so that a failure never sends
// half a page, and writes it with status.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, p); err != nil {
		s.cfg.Log.Error("secure chat: render page", "page", name, "request", requestID(r), "err", err.Error())
		http.Error(w, "internal error, reference "+requestID(r), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// notice shows a page with a heading and a sentence.
func (s *Server) notice(w http.ResponseWriter, r *http.Request, status int, lang, heading, text string) {
	t, lang := textsFor(lang)
	s.render(w, r, status, "notice", &page{Lang: lang, T: t, Heading: heading, Text: text})
}

// internalError logs err without values and shows a page with the request
// id, so that staff can find the log line.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, lang, what string, err error) {
	s.cfg.Log.Error("secure chat: "+what, "request", requestID(r), "err", err.Error())
	if wantsJSON(r) {
		t, _ := textsFor(lang)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"status": t.ErrorText + " (" + t.RequestID + " " + requestID(r) + ")"})
		return
	}
	t, lang := textsFor(lang)
	s.render(w, r, http.StatusInternalServerError, "notice", &page{Lang: lang, T: t, Heading: t.ErrorTitle, Text: t.ErrorText,
		RequestID: requestID(r)})
}

func wantsJSON(r *http.Request) bool {
	for _, a := range r.Header.Values("Accept") {
		if bytes.Contains([]byte(a), []byte("application/json")) {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v) // maps of strings always marshal
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

// tooMany answers a rate-limited request.
func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, l *limiter, lang string) {
	w.Header().Set("Retry-After", strconv.Itoa(l.retryAfter()))
	t, _ := textsFor(lang)
	s.notice(w, r, http.StatusTooManyRequests, lang, t.BusyTitle, t.BusyText)
}

// staticFile serves the page's script and style sheet.
func (s *Server) staticFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := fs.ReadFile(s.static, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch {
	case len(name) > 3 && name[len(name)-3:] == ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case len(name) > 4 && name[len(name)-4:] == ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	default:
		http.NotFound(w, r)
		return
	}
	w.Write(b)
}

// flowOf returns the flow version a conversation runs, or nil.
func (s *Server) flowOf(conv *engine.Conversation) *flows.Flow {
	if f := s.flows.Version(conv.FlowID, conv.FlowHash); f != nil {
		return f
	}
	return s.flows.Flow(conv.FlowID)
}

// chatCSRF is the per-page token of the chat page: an HMAC keyed with the
// session id, which only the holder of the HttpOnly cookie knows. It needs
// no server key, so any node can check it.
func chatCSRF(sessionID string) string {
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write([]byte("safeflow secure chat csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// setCookie sets a session cookie (no Max-Age or Expires: the browser
// forgets it when it closes).
func setCookie(w http.ResponseWriter, name, value string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// clearCookie removes a cookie.
func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// Run ends timed-out sessions every cfg.Sweep and, when cfg.ListenDSN is
// set, listens for other nodes' messages, until ctx ends. It returns an
// error only when the listener cannot start.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	if s.cfg.ListenDSN != "" {
		go func() { errc <- s.hub.Listen(ctx, s.cfg.ListenDSN) }()
	}
	t := time.NewTicker(s.cfg.Sweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("secure chat: %w", err)
			}
		case <-t.C:
			if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Log.Error("secure chat: end timed-out sessions", "err", err.Error())
			}
		}
	}
}

// Sweep ends the sessions that are idle or past their limit, tells the
// engine that their pages have closed (a sensitive question still waiting
// will need a new link) and wakes those pages so they show it.
func (s *Server) Sweep(ctx context.Context) error {
	now := s.cfg.Now()
	rec := audit.Record{Time: now, Actor: audit.Actor{Type: audit.ActorSystem}, Action: ActionSessionEnded,
		Channel: string(engine.Secure), Outcome: audit.OutcomeOK}
	closed, err := s.st.ExpireSecureSessions(ctx, now, s.cfg.IdleTimeout, rec)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range closed {
		if _, err := s.eng.SecureClosed(ctx, id); err != nil && !errors.Is(err, engine.ErrNoConversation) {
			errs = append(errs, fmt.Errorf("close conversation %s: %w", id, err))
		}
		if err := s.hub.Publish(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	s.ipLimit.prune(now)
	s.tokenLimit.prune(now)
	return errors.Join(errs...)
}
