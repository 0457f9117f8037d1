package securechat_test

import (
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/safeflow/safeflow/securechat"
)

// expectedHeaders are on every response under /s/ (SECURITY.md #11).
var expectedHeaders = map[string]string{
	"Cache-Control":             "no-store",
	"Content-Security-Policy":   "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
	"X-Frame-Options":           "DENY",
	"Referrer-Policy":           "no-referrer",
	"X-Content-Type-Options":    "nosniff",
	"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
}

func TestSecureHeadersOnEveryResponse(t *testing.T) {
	h := newHarness(t, func(c *securechat.Config) { c.TokenBurst, c.TokenRate = 1, rate.Every(time.Hour) })
	// An outer layer (a framework, a proxy library) may have set these.
	leaky := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "echo")
		w.Header().Set("X-Powered-By", "Go")
		h.srv.ServeHTTP(w, r)
	})
	type result struct {
		label  string
		status int
		header http.Header
	}
	var results []result
	// do sends a request through the leaky layer and keeps its headers.
	do := func(label, method, path string, form url.Values, opts ...reqOpt) resp {
		var r *http.Request
		if form != nil {
			r = httptest.NewRequest(method, publicURL+path, strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Sec-Fetch-Site", "same-origin")
		} else {
			r = httptest.NewRequest(method, publicURL+path, nil)
		}
		for _, o := range opts {
			o(r)
		}
		ctx, cancel := context.WithTimeout(r.Context(), 200*time.Millisecond) // ends streams
		defer cancel()
		w := httptest.NewRecorder()
		leaky.ServeHTTP(w, r.WithContext(ctx))
		res := w.Result()
		results = append(results, result{label, res.StatusCode, res.Header})
		return resp{res, w.Body.String()}
	}

	token, _ := h.intake("+12015550140")
	get := do("link page", http.MethodGet, "/s/"+token, nil)
	p := linkPage{token: token, csrf: csrfOf(t, get), jar: cookie(get, "__Host-sf_csrf")}
	do("unknown link", http.MethodGet, "/s/"+strings.Repeat("A", 43), nil)
	do("check form", http.MethodPost, "/s/"+token, url.Values{"csrf": {p.csrf}}, withCookies(p.jar))
	do("wrong answer", http.MethodPost, "/s/"+token, url.Values{"csrf": {p.csrf}, "answer": {"2001-01-01"}}, withCookies(p.jar))
	do("rate limited", http.MethodPost, "/s/"+token, url.Values{"csrf": {p.csrf}, "answer": {"2001-01-01"}}, withCookies(p.jar))
	do("cross-site", http.MethodPost, "/s/"+token, url.Values{"csrf": {p.csrf}}, withCookies(p.jar), withHeader("Sec-Fetch-Site", "cross-site"))
	token2, _ := h.intake("+12015550141")
	get = do("second link page", http.MethodGet, "/s/"+token2, nil)
	p = linkPage{token: token2, csrf: csrfOf(t, get), jar: cookie(get, "__Host-sf_csrf")}
	redeemed := do("redemption", http.MethodPost, "/s/"+token2, url.Values{"csrf": {p.csrf}, "answer": {rightDOB}}, withCookies(p.jar))
	c := &chat{h: h, cookie: cookie(redeemed, securechat.SessionCookie)}
	do("redeemed link", http.MethodGet, "/s/"+token2, nil)
	c.csrf = csrfOf(t, do("chat page", http.MethodGet, "/s/chat", nil, withCookies(c.cookie)))
	do("chat without session", http.MethodGet, "/s/chat", nil)
	do("send", http.MethodPost, "/s/chat/send", url.Values{"csrf": {c.csrf}, "text": {"a rash"}}, withCookies(c.cookie),
		withHeader("Accept", "application/json"))
	do("send refused", http.MethodPost, "/s/chat/send", url.Values{"text": {"x"}}, withCookies(c.cookie))
	do("events", http.MethodGet, "/s/chat/events", nil, withCookies(c.cookie))
	do("events without session", http.MethodGet, "/s/chat/events", nil)
	do("script", http.MethodGet, "/s/static/chat.js", nil)
	do("style", http.MethodGet, "/s/static/chat.css", nil)
	do("missing static", http.MethodGet, "/s/static/app.js", nil)
	do("unknown path", http.MethodGet, "/s/chat/nope/more", nil)
	do("wrong method", http.MethodDelete, "/s/chat", nil)
	do("end", http.MethodPost, "/s/chat/end", url.Values{"csrf": {c.csrf}}, withCookies(c.cookie))

	statuses := map[int]bool{}
	for _, r := range results {
		statuses[r.status] = true
		for k, want := range expectedHeaders {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s (%d): %s = %q, want %q", r.label, r.status, k, got, want)
			}
		}
		for _, k := range []string{"Server", "X-Powered-By"} {
			if v := r.header.Get(k); v != "" {
				t.Errorf("%s (%d): %s = %q, want none", r.label, r.status, k, v)
			}
		}
	}
	// The table must reach the answers a patient can meet.
	for _, s := range []int{200, 204, 303, 401, 403, 404, 405, 410, 422, 429} {
		if !statuses[s] {
			t.Errorf("no response with status %d was checked", s)
		}
	}
	for _, r := range results {
		if r.label == "script" && r.header.Get("Content-Type") != "text/javascript; charset=utf-8" ||
			r.label == "style" && r.header.Get("Content-Type") != "text/css; charset=utf-8" {
			t.Errorf("%s: Content-Type = %q", r.label, r.header.Get("Content-Type"))
		}
	}
}

func TestSecureNoHSTSOverPlainHTTPInDev(t *testing.T) {
	h := newHarness(t, func(c *securechat.Config) { c.PublicURL, c.Dev = "http://localhost:8080", true })
	r := httptest.NewRequest(http.MethodGet, "http://localhost:8080/s/chat", nil)
	w := httptest.NewRecorder()
	h.srv.ServeHTTP(w, r)
	if v := w.Header().Get("Strict-Transport-Security"); v != "" {
		t.Errorf("HSTS over plain http = %q, want none", v)
	}
	if v := w.Header().Get("Cache-Control"); v != "no-store" {
		t.Errorf("Cache-Control = %q", v)
	}
	// Served over TLS, it comes back even in dev.
	r = httptest.NewRequest(http.MethodGet, "https://localhost:8080/s/chat", nil)
	w = httptest.NewRecorder()
	h.srv.ServeHTTP(w, r)
	if w.Header().Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over TLS")
	}
}

func TestSecureRoutesCoverEveryEndpoint(t *testing.T) {
	h := newHarness(t)
	var got []string
	for _, r := range h.srv.Routes() {
		got = append(got, r.Method+" "+r.Pattern)
		w := httptest.NewRecorder()
		r.Handler.ServeHTTP(w, httptest.NewRequest(r.Method, publicURL+"/s/chat", nil))
		if w.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("route %s %s is not wrapped with the security headers", r.Method, r.Pattern)
		}
	}
	want := "GET /s/{token}|POST /s/{token}|GET /s/chat|POST /s/chat/send|GET /s/chat/events|POST /s/chat/end|GET /s/static/{file}"
	if strings.Join(got, "|") != want {
		t.Errorf("routes = %q, want %q", strings.Join(got, "|"), want)
	}
}

// The page's own files: nothing may store data on the device or build
// HTML from text (SECURITY.md #12), and nothing may be inline (the CSP
// would block it anyway, so it would be a bug).
func TestSecurePageStoresNothingAndHasNoInlineCode(t *testing.T) {
	js := readFile(t, "web/static/chat.js")
	for _, banned := range []string{"localStorage", "sessionStorage", "indexedDB", "serviceWorker", "caches.", "document.cookie",
		"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "http://", "https://"} {
		if strings.Contains(js, banned) {
			t.Errorf("chat.js uses %q", banned)
		}
	}
	if !strings.Contains(js, "textContent") {
		t.Error("chat.js renders no text with textContent")
	}
	css := readFile(t, "web/static/chat.css")
	if strings.Contains(css, "@import") || strings.Contains(css, "url(") {
		t.Error("chat.css loads something from elsewhere")
	}
	inline := []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`),         // a script with a body
		regexp.MustCompile(`<script(?:\s(?:[^s>]|s[^r>])*)?>`), // a script without src
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`(?i)https?://`),
	}
	entries, err := fs.Glob(os.DirFS("web"), "*.html")
	if err != nil || len(entries) == 0 {
		t.Fatalf("templates: %v %v", entries, err)
	}
	for _, name := range entries {
		src := readFile(t, "web/"+name)
		for _, re := range inline {
			if loc := re.FindString(src); loc != "" {
				t.Errorf("%s has %q", name, loc)
			}
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSecureChatPageElements(t *testing.T) {
	h := newHarness(t)
	token, _ := h.intake("+12015550142")
	c := h.enter(token)
	page := c.page().body
	for _, want := range []string{
		`<html lang="en">`,
		`<script src="/s/static/chat.js" defer></script>`,
		`id="message-input"`, `id="send"`, `id="end-chat"`, `id="status" role="status"`,
		`id="messages" role="log" aria-live="polite"`,
		`<form id="choices" class="choices" method="post" action="/s/chat/send" hidden>`,
		`<label for="message-input">`,
		`class="msg bot"`,
		`name="viewport" content="width=device-width, initial-scale=1"`,
		`autocomplete="off"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("chat page lacks %s", want)
		}
	}
	// No page before the session shows the script: it has no use there.
	if strings.Contains(h.do(http.MethodGet, "/s/"+h.nextToken("+12015550143"), nil).body, "<script") {
		t.Error("the link page loads the script")
	}
}

// A page that belongs to no conversation speaks the browser's language.
func TestSecurePagesFollowBrowserLanguage(t *testing.T) {
	h := newHarness(t)
	r := h.do(http.MethodGet, "/s/"+strings.Repeat("B", 43), nil, withHeader("Accept-Language", "es-US,es;q=0.9,en;q=0.8"))
	if !strings.Contains(r.body, `<html lang="es">`) || !strings.Contains(r.body, "Este enlace no funciona") {
		t.Errorf("unknown link for a Spanish browser:\n%s", r.body)
	}
}
