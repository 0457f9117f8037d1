package securechat_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/sim"
	"github.com/safeflow/safeflow/internal/store"
	"github.com/safeflow/safeflow/securechat"
)

// The real SQLite store is what the secure chat runs on.
var _ securechat.Store = (*store.Store)(nil)

const publicURL = "https://chat.clinic.test"

var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// rightDOB is the date of birth the intake conversation saves, as a date
// input sends it.
const rightDOB = "1985-03-14"

// harness is the secure chat over the real SQLite store and the engine
// running examples/new-patient-intake.yaml, with a clock that moves only
// when told.
type harness struct {
	t     *testing.T
	clock *sim.Clock
	st    *store.Store
	eng   *engine.Engine
	srv   *securechat.Server
	cfg   securechat.Config
	n     int

	mu     sync.Mutex
	locked []string
}

func newHarness(t *testing.T, tweak ...func(*securechat.Config)) *harness {
	t.Helper()
	set, err := flows.LoadFiles([]string{"../examples/new-patient-intake.yaml", "testdata/secure-inputs.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Flows) != 2 {
		t.Fatalf("flows did not load: %v", set.Diags)
	}
	h := &harness{t: t, clock: sim.NewClock(t0)}
	ring, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	h.st, err = store.Open(context.Background(), filepath.Join(t.TempDir(), "safeflow.db"), ring, store.WithClock(h.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.st.Close() })
	h.cfg = securechat.Config{PublicURL: publicURL, Now: h.clock.Now, TokenBurst: 100, IPBurst: 1000, Poll: time.Hour,
		OnLock: func(id string) {
			h.mu.Lock()
			h.locked = append(h.locked, id)
			h.mu.Unlock()
		}}
	for _, f := range tweak {
		f(&h.cfg)
	}
	issuer, err := securechat.NewIssuer(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.eng = engine.New(set, h.st, engine.WithClock(h.clock.Now), engine.WithLinkIssuer(issuer), engine.WithLocation(time.UTC))
	h.srv, err = securechat.New(h.cfg, h.st, h.eng, set)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// sms delivers a text message from phone.
func (h *harness) sms(phone, text string) *engine.Result {
	h.t.Helper()
	h.n++
	res, err := h.eng.Handle(context.Background(), engine.Inbound{Channel: engine.SMS, Address: phone, Text: text,
		ProviderID: fmt.Sprint("SM", h.n)})
	if err != nil {
		h.t.Fatalf("sms %q: %v", text, err)
	}
	return res
}

var linkRE = regexp.MustCompile(`https://chat\.clinic\.test/s/([A-Za-z0-9_-]+)`)

// linkOf returns the token of the link a result sent.
func (h *harness) linkOf(res *engine.Result) string {
	h.t.Helper()
	for _, o := range res.Out {
		if m := linkRE.FindStringSubmatch(o.Text); o.Link && m != nil {
			return m[1]
		}
	}
	h.t.Fatalf("no link sent; got %+v", res.Out)
	return ""
}

// intake takes a new patient on phone through the SMS part of the intake
// flow and returns the link token and the conversation.
func (h *harness) intake(phone string) (token, conv string) {
	h.t.Helper()
	var res *engine.Result
	for _, text := range []string{"INTAKE", "yes", "Ana", "Lopez", "3/14/1985", "201-555-0123", "a@b.com"} {
		res = h.sms(phone, text)
	}
	return h.linkOf(res), res.Conversation.ID
}

type resp struct {
	*http.Response
	body string
}

type reqOpt func(*http.Request)

func withCookies(cs ...*http.Cookie) reqOpt {
	return func(r *http.Request) {
		for _, c := range cs {
			if c != nil {
				r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
			}
		}
	}
}

func withHeader(k, v string) reqOpt {
	return func(r *http.Request) {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
}

func fromIP(ip string) reqOpt { return func(r *http.Request) { r.RemoteAddr = ip + ":40000" } }

// do sends a request to the server. A POST carries a form and, unless an
// option changes them, the headers a browser sends from the page itself.
func (h *harness) do(method, path string, form url.Values, opts ...reqOpt) resp {
	h.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, publicURL+path, body)
	if method == http.MethodPost {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		r.Header.Set("Origin", publicURL)
	}
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	h.srv.ServeHTTP(w, r)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return resp{res, string(b)}
}

func cookie(r resp, name string) *http.Cookie {
	for _, c := range r.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, r resp) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no csrf field in page:\n%s", r.body)
	}
	return m[1]
}

// linkPage is the state of a browser that has opened a link.
type linkPage struct {
	token string
	csrf  string
	jar   *http.Cookie
}

// open fetches the link's page, as the patient's browser does.
func (h *harness) open(token string) linkPage {
	h.t.Helper()
	r := h.do(http.MethodGet, "/s/"+token, nil)
	if r.StatusCode != http.StatusOK {
		h.t.Fatalf("GET link = %d:\n%s", r.StatusCode, r.body)
	}
	c := cookie(r, "__Host-sf_csrf")
	if c == nil {
		h.t.Fatal("the link page set no csrf cookie")
	}
	return linkPage{token: token, csrf: csrfOf(h.t, r), jar: c}
}

// post sends the link page's form, with the answer when not empty.
func (h *harness) post(p linkPage, answer string, opts ...reqOpt) resp {
	h.t.Helper()
	form := url.Values{"csrf": {p.csrf}}
	if answer != "" {
		form.Set("answer", answer)
	}
	return h.do(http.MethodPost, "/s/"+p.token, form, append([]reqOpt{withCookies(p.jar)}, opts...)...)
}

// redeem opens the link, passes the check and returns the session cookie.
func (h *harness) redeem(token string) *http.Cookie {
	h.t.Helper()
	p := h.open(token)
	if r := h.post(p, ""); r.StatusCode != http.StatusOK || !strings.Contains(r.body, `id="verify-answer"`) {
		h.t.Fatalf("continue = %d, want the verification form:\n%s", r.StatusCode, r.body)
	}
	r := h.post(p, rightDOB)
	if r.StatusCode != http.StatusSeeOther {
		h.t.Fatalf("verify = %d, want 303:\n%s", r.StatusCode, r.body)
	}
	c := cookie(r, securechat.SessionCookie)
	if c == nil {
		h.t.Fatal("no session cookie after redemption")
	}
	return c
}

// chat is a browser on the chat page.
type chat struct {
	h      *harness
	cookie *http.Cookie
	csrf   string
}

// enter redeems a link and loads the chat page.
func (h *harness) enter(token string) *chat {
	h.t.Helper()
	c := &chat{h: h, cookie: h.redeem(token)}
	r := c.page()
	if r.StatusCode != http.StatusOK {
		h.t.Fatalf("chat page = %d:\n%s", r.StatusCode, r.body)
	}
	c.csrf = csrfOf(h.t, r)
	return c
}

func (c *chat) page() resp {
	c.h.t.Helper()
	return c.h.do(http.MethodGet, "/s/chat", nil, withCookies(c.cookie))
}

// send posts an answer as the page's script does.
func (c *chat) send(form url.Values, opts ...reqOpt) resp {
	c.h.t.Helper()
	if form.Get("csrf") == "" {
		form.Set("csrf", c.csrf)
	}
	all := append([]reqOpt{withCookies(c.cookie), withHeader("Accept", "application/json"), withHeader("X-CSRF-Token", c.csrf)}, opts...)
	return c.h.do(http.MethodPost, "/s/chat/send", form, all...)
}

func (c *chat) say(text string) resp {
	c.h.t.Helper()
	r := c.send(url.Values{"text": {text}})
	if r.StatusCode != http.StatusNoContent {
		c.h.t.Fatalf("send %q = %d: %s", text, r.StatusCode, r.body)
	}
	return r
}

// audits returns the audit records with an action.
func (h *harness) audits(action string) []audit.Record {
	h.t.Helper()
	recs, err := h.st.AuditRecords(context.Background(), time.Time{})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []audit.Record
	for _, r := range recs {
		if r.Action == action {
			out = append(out, r)
		}
	}
	return out
}

// hasAudit reports whether a record with action, outcome and reason exists.
func (h *harness) hasAudit(action, outcome, reason string) bool {
	for _, r := range h.audits(action) {
		if r.Outcome == outcome && r.Reason == reason {
			return true
		}
	}
	return false
}

func (h *harness) conv(id string) *engine.Conversation {
	h.t.Helper()
	c, err := h.st.ConversationState(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) redeemed(token string) bool {
	h.t.Helper()
	_, redeemed, _, err := h.st.SecureLinkByHash(context.Background(), hashOf(token))
	if err != nil {
		h.t.Fatal(err)
	}
	return redeemed
}
