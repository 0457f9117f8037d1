package e2e

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
)

// secureResponse is one response the browser received from the secure
// chat, a redirect included.
type secureResponse struct {
	Method, URL string
	Status      int64
	Type        network.ResourceType
	// Header holds the response's headers, names in canonical form.
	Header http.Header
}

// secureTraffic records, in the order Chromium reports them, the
// responses the browser receives from the service's /s/ paths, and the
// cookies it refuses to store.
type secureTraffic struct {
	prefix string

	mu        sync.Mutex
	methods   map[network.RequestID]string
	responses []secureResponse
	refused   []string
}

// watchSecureTraffic starts recording the secure chat's responses in the
// tab of ctx; base is the service's public URL.
func watchSecureTraffic(t *testing.T, ctx context.Context, base string) *secureTraffic {
	t.Helper()
	tr := &secureTraffic{prefix: base + "/s/", methods: map[network.RequestID]string{}}
	// Listen, not Events: a redirect's response comes with the next
	// request's event, and only the tab's own order pairs it with its method.
	err := chromedp.Listen(ctx, func(ev any) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if ev.RedirectResponse != nil {
				tr.add(tr.methods[ev.RequestID], ev.Type, ev.RedirectResponse)
			}
			tr.methods[ev.RequestID] = ev.Request.Method
		case *network.EventResponseReceived:
			tr.add(tr.methods[ev.RequestID], ev.Type, ev.Response)
		case *network.EventResponseReceivedExtraInfo:
			for _, b := range ev.BlockedCookies {
				tr.refused = append(tr.refused, fmt.Sprintf("%q: %v", b.CookieLine, b.BlockedReasons))
			}
		}
	})
	if err != nil {
		t.Fatalf("listen to the browser's network events: %v", err)
	}
	return tr
}

// add records a response of the secure chat; the caller holds the lock.
func (tr *secureTraffic) add(method string, typ network.ResourceType, r *network.Response) {
	if !strings.HasPrefix(r.URL, tr.prefix) {
		return
	}
	h := http.Header{}
	for k, v := range r.Headers {
		// Chromium joins repeated headers with a newline.
		for _, line := range strings.Split(fmt.Sprint(v), "\n") {
			h.Add(k, line)
		}
	}
	tr.responses = append(tr.responses, secureResponse{Method: method, URL: r.URL, Status: r.Status, Type: typ, Header: h})
}

// all returns the responses recorded so far.
func (tr *secureTraffic) all() []secureResponse {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]secureResponse(nil), tr.responses...)
}

// refusedCookies lists the cookies the browser would not store.
func (tr *secureTraffic) refusedCookies() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.refused...)
}

// lastDocument returns the last page (not a script, style or stream)
// the browser loaded from the secure chat.
func (tr *secureTraffic) lastDocument() (secureResponse, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for i := len(tr.responses) - 1; i >= 0; i-- {
		if tr.responses[i].Type == network.ResourceTypeDocument {
			return tr.responses[i], true
		}
	}
	return secureResponse{}, false
}

// securityHeaderProblems says how a response falls short of SECURITY.md
// #11, or returns nil. HSTS is not required: the test serves plain HTTP.
func securityHeaderProblems(r secureResponse) []string {
	var out []string
	want := func(name, value string) {
		if got := r.Header.Values(name); len(got) != 1 || got[0] != value {
			out = append(out, fmt.Sprintf("%s is %q, want %q", name, got, value))
		}
	}
	want("Cache-Control", "no-store")
	want("X-Frame-Options", "DENY")
	want("Referrer-Policy", "no-referrer")
	want("X-Content-Type-Options", "nosniff")
	for _, name := range []string{"Server", "X-Powered-By"} {
		if v := r.Header.Values(name); len(v) > 0 {
			out = append(out, fmt.Sprintf("%s is present (%q)", name, v))
		}
	}
	csp := r.Header.Values("Content-Security-Policy")
	if len(csp) != 1 {
		return append(out, fmt.Sprintf("Content-Security-Policy %q, want exactly one", csp))
	}
	directives := map[string][]string{}
	for _, d := range strings.Split(csp[0], ";") {
		if f := strings.Fields(d); len(f) > 0 {
			directives[strings.ToLower(f[0])] = f[1:]
		}
	}
	if fa := directives["frame-ancestors"]; len(fa) != 1 || fa[0] != "'none'" {
		out = append(out, fmt.Sprintf("CSP frame-ancestors is %q, want 'none'", fa))
	}
	scripts, ok := directives["script-src"]
	if !ok {
		scripts, ok = directives["default-src"]
	}
	if !ok {
		out = append(out, "CSP limits neither script-src nor default-src")
	}
	for _, src := range scripts {
		switch s := strings.ToLower(src); {
		case s == "'unsafe-inline'", s == "'unsafe-eval'", s == "*", s == "data:", s == "http:", s == "https:",
			strings.HasPrefix(s, "'nonce-"), strings.HasPrefix(s, "'sha"):
			// A nonce or hash would mean the page runs inline script.
			out = append(out, fmt.Sprintf("CSP script sources allow %s", src))
		}
	}
	return out
}

// browser is a phone's Chromium tab on the secure chat, as one test uses it.
type browser struct {
	t       *testing.T
	ctx     context.Context
	traffic *secureTraffic
}

// pageView is what the tab shows.
type pageView struct {
	URL     string `json:"url"`
	Heading string `json:"heading"`
	Text    string `json:"text"`
	// Response is the HTTP response that brought the page.
	Response secureResponse `json:"-"`
}

// do runs browser actions, failing the test with what they were for.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// evaluate returns the value of a JavaScript expression in the tab's page.
func evaluate[T any](b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// page describes the page the tab shows now.
func (b *browser) page() pageView {
	b.t.Helper()
	v := evaluate[pageView](b, `({url: location.href, heading: (document.querySelector("h1") || {}).textContent || "",
		text: document.body ? document.body.innerText : ""})`)
	v.Response, _ = b.traffic.lastDocument()
	return v
}

// open navigates to a URL and returns the page it shows.
func (b *browser) open(url string) pageView {
	b.t.Helper()
	b.do("open "+url, chromedp.Navigate(url))
	return b.page()
}

// submit runs an action that submits a form (a click) and waits until a
// new page has loaded in place of the current one.
func (b *browser) submit(what string, action chromedp.Action[chromedp.Void]) pageView {
	b.t.Helper()
	// A new document has a new global object: the mark is gone from it.
	b.do(what+": mark the page", chromedp.Evaluate[chromedp.Void](`window.__sfOld = true; undefined`))
	b.do(what, action)
	b.waitJS(what+": the next page", `window.__sfOld === undefined && document.readyState === "complete"`)
	return b.page()
}

// waitJS waits until a JavaScript expression is true in the page. Page
// changes on the way (a navigation destroys the context an expression
// runs in) are retried, not failures.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(waitDeadline)
	var last error
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`))
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			p, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.body ? document.body.innerText : "")`))
			b.t.Fatalf("timed out after %v waiting for %s (%s); last error %v; the page:\n%s", waitDeadline, what, expr, last, p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "<", `\x3c`)
	return `"` + r.Replace(s) + `"`
}

// patient is someone who texts the clinic.
type patient struct {
	Phone, First, Last string
	// DOB is the date of birth as texted, DOBField as a date field holds it.
	DOB, DOBField string
	Email         string
}

// textClinic sends an SMS from phone and waits until a reply containing
// want reaches the Twilio test server. It returns the replies.
func (h *harness) textClinic(phone, body, want string) []received {
	h.t.Helper()
	before := len(h.deliveredTo(engine.SMS, phone))
	if code, resp := h.sendSMS(sms{From: phone, Body: body, MessageSid: h.newID("SM")}); code != http.StatusOK {
		h.t.Fatalf("Twilio webhook: %d %q", code, resp)
	}
	var got []received
	h.waitFor(fmt.Sprintf("an SMS reply containing %q", want), func() (bool, string) {
		all := h.deliveredTo(engine.SMS, phone)
		got = all[before:]
		for _, m := range got {
			if strings.Contains(m.Text, want) {
				return true, ""
			}
		}
		return false, describe(all)
	})
	return got
}

// intakeUntilLink takes a patient through the SMS part of the new
// patient intake, up to the secure link, and returns the link.
func (h *harness) intakeUntilLink(p patient) string {
	h.t.Helper()
	h.textClinic(p.Phone, "INTAKE", "Are you a new patient with us?")
	h.textClinic(p.Phone, "yes", "What is your first name?")
	h.textClinic(p.Phone, p.First, "And your last name?")
	h.textClinic(p.Phone, p.Last, "What is your date of birth?")
	h.textClinic(p.Phone, p.DOB, "What is the best phone number to reach you?")
	h.textClinic(p.Phone, "201-555-0123", "What is your email address?")
	got := h.textClinic(p.Phone, p.Email, h.public+"/s/")
	link := regexp.MustCompile(regexp.QuoteMeta(h.public) + `/s/[A-Za-z0-9_-]{43}`)
	for _, m := range got {
		if l := link.FindString(m.Text); l != "" {
			if want := "Sunny Clinic: to continue privately, tap " + l + " (expires in 15 min)."; m.Text != want {
				h.t.Errorf("the link message is %q, want only the flow's link message %q", m.Text, want)
			}
			return l
		}
	}
	h.t.Fatalf("no secure link in the replies: %s", describe(got))
	return ""
}

// conversationOf returns the id of the phone's latest conversation.
func (h *harness) conversationOf(phone string) string {
	h.t.Helper()
	c := h.contact(engine.SMS, phone)
	if c == nil {
		h.t.Fatalf("no contact for a patient who texted the clinic")
	}
	db := h.srv.Store.DB()
	var ids []string
	err := db.SelectContext(h.ctx, &ids, db.Rebind(`SELECT id FROM conversations WHERE contact_id = ? ORDER BY created DESC`), c.ID)
	if err != nil || len(ids) == 0 {
		h.t.Fatalf("find the patient's conversation: %v (%d found)", err, len(ids))
	}
	return ids[0]
}

// conversation returns a conversation's state (no sealed fields).
func (h *harness) conversation(id string) *engine.Conversation {
	h.t.Helper()
	c, err := h.srv.Store.ConversationState(h.ctx, id)
	if err != nil {
		h.t.Fatalf("load conversation: %v", err)
	}
	return c
}

// auditOf returns the audit records of one request, by its request id.
func (h *harness) auditOf(requestID string) []audit.Record {
	h.t.Helper()
	recs, err := h.srv.Store.AuditRecords(h.ctx, time.Time{})
	if err != nil {
		h.t.Fatalf("read the audit log: %v", err)
	}
	var out []audit.Record
	for _, r := range recs {
		if r.RequestID == requestID {
			out = append(out, r)
		}
	}
	return out
}

// refusal is how the secure chat must answer and audit a refused request.
type refusal struct {
	Status       int64
	Heading      string
	Action       string
	Reason       string
	Conversation string
}

// expectRefused checks that the page the browser shows is the refusal,
// and that the request that brought it left a denied audit record.
func (h *harness) expectRefused(what string, got pageView, want refusal) {
	h.t.Helper()
	if got.Response.Status != want.Status || got.Heading != want.Heading {
		h.t.Errorf("%s: the browser shows %d %q, want %d %q; page:\n%s", what, got.Response.Status, got.Heading, want.Status, want.Heading, got.Text)
	}
	id := got.Response.Header.Get("X-Request-Id")
	if id == "" {
		h.t.Errorf("%s: the refusal (%s %s) has no X-Request-Id to find its audit record by", what, got.Response.Method, got.Response.URL)
		return
	}
	recs := h.auditOf(id)
	for _, r := range recs {
		if r.Action == want.Action && r.Reason == want.Reason && r.Outcome == audit.OutcomeDenied && r.Conversation == want.Conversation {
			if r.Source != "127.0.0.1" {
				h.t.Errorf("%s: the audit record's source is %q, want the browser's 127.0.0.1", what, r.Source)
			}
			return
		}
	}
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "\n    %s %s %q conversation %q", r.Action, r.Outcome, r.Reason, r.Conversation)
	}
	h.t.Errorf("%s: no audit record %s denied %q for conversation %q; the request's records:%s",
		what, want.Action, want.Reason, want.Conversation, b.String())
}

// crossSite serves, from another origin on 127.0.0.1, a page with forms
// that post to the service: what a malicious site a patient visits could
// do.
func crossSite(t *testing.T, forms []crossSiteForm) string {
	t.Helper()
	page := template.Must(template.New("").Parse(`<!doctype html>
<html><head><meta name="viewport" content="width=device-width"><title>Win a prize</title></head><body>
{{range .}}<form id="{{.ID}}" method="post" action="{{.Action}}">
{{range $k, $v := .Fields}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}
<button type="submit" id="{{.ID}}-go">Claim</button>
</form>
{{end}}</body></html>`))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, forms); err != nil {
			t.Logf("cross-site page: %v", err) // the browser went away mid-page
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// crossSiteForm is one form of the cross-site page.
type crossSiteForm struct {
	ID, Action string
	Fields     map[string]string
}
