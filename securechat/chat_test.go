package securechat_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/securechat"
)

func TestSecureSendAnswersOnTheSecureChannel(t *testing.T) {
	h := newHarness(t)
	token, conv := h.intake("+12015550120")
	c := h.enter(token)
	c.say("I have a rash")
	page := c.page()
	for _, want := range []string{`class="msg user"`, "I have a rash", "Please list any medicines you take"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("page lacks %q after the answer:\n%s", want, page.body)
		}
	}
	if got := h.conv(conv).Step; got != "ask-medications" {
		t.Errorf("step = %q, want ask-medications", got)
	}
	// A form post without the script lands back on the page.
	r := h.do(http.MethodPost, "/s/chat/send", url.Values{"csrf": {c.csrf}, "text": {"none"}}, withCookies(c.cookie))
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/s/chat" {
		t.Errorf("form post = %d to %q, want 303 to /s/chat", r.StatusCode, r.Header.Get("Location"))
	}
	if got := h.conv(conv).Step; got != "ask-has-insurance" {
		t.Errorf("step = %q, want ask-has-insurance", got)
	}
}

func TestSecureSendRetriedRequestCountsOnce(t *testing.T) {
	h := newHarness(t)
	token, conv := h.intake("+12015550121")
	c := h.enter(token)
	form := url.Values{"text": {"a rash"}, "id": {"0123456789abcdef0123"}}
	for range 2 {
		if r := c.send(form); r.StatusCode != http.StatusNoContent {
			t.Fatalf("send = %d", r.StatusCode)
		}
	}
	if got := h.conv(conv).Step; got != "ask-medications" {
		t.Errorf("step = %q: the retried answer moved the flow twice", got)
	}
}

func TestSecureSendRefused(t *testing.T) {
	tests := []struct {
		Label          string
		Form           url.Values
		Opts           []reqOpt
		ExpectedStatus int
		ExpectedAudit  string // reason of a secure.session.refused record, or ""
	}{
		{Label: "Empty", Form: url.Values{"text": {"  "}}, ExpectedStatus: http.StatusBadRequest},
		{Label: "TooLong", Form: url.Values{"text": {strings.Repeat("é", 1001)}}, ExpectedStatus: http.StatusRequestEntityTooLarge},
		{Label: "UnknownChoice", Form: url.Values{"choice": {"Friday"}}, ExpectedStatus: http.StatusConflict},
		{Label: "ForeignOrigin", Form: url.Values{"text": {"x"}}, Opts: []reqOpt{withHeader("Sec-Fetch-Site", ""), withHeader("Origin", "https://evil.example")},
			ExpectedStatus: http.StatusForbidden, ExpectedAudit: "cross-site request"},
		{Label: "CrossSite", Form: url.Values{"text": {"x"}}, Opts: []reqOpt{withHeader("Sec-Fetch-Site", "cross-site"), withHeader("Origin", "https://evil.example")},
			ExpectedStatus: http.StatusForbidden, ExpectedAudit: "cross-site request"},
		{Label: "NoToken", Form: url.Values{"text": {"x"}, "csrf": {"-"}}, Opts: []reqOpt{withHeader("X-CSRF-Token", "")},
			ExpectedStatus: http.StatusForbidden, ExpectedAudit: "bad csrf token"},
		{Label: "NoSession", Form: url.Values{"text": {"x"}}, Opts: []reqOpt{func(r *http.Request) { r.Header.Del("Cookie") }},
			ExpectedStatus: http.StatusUnauthorized, ExpectedAudit: "no session"},
		{Label: "ForgedSession", Form: url.Values{"text": {"x"}}, Opts: []reqOpt{func(r *http.Request) {
			r.Header.Set("Cookie", securechat.SessionCookie+"="+strings.Repeat("A", 43))
		}}, ExpectedStatus: http.StatusUnauthorized, ExpectedAudit: "session ended or timed out"},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t)
			token, conv := h.intake("+12015550122")
			c := h.enter(token)
			r := c.send(tc.Form, tc.Opts...)
			if r.StatusCode != tc.ExpectedStatus {
				t.Errorf("send = %d, want %d: %s", r.StatusCode, tc.ExpectedStatus, r.body)
			}
			var body struct{ Status string }
			if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Status == "" {
				t.Errorf("body %q is not a JSON status for the page", r.body)
			}
			if got := h.conv(conv).Step; got != "ask-reason" {
				t.Errorf("step = %q: a refused answer reached the engine", got)
			}
			if tc.ExpectedAudit != "" && !h.hasAudit(securechat.ActionSessionRefused, audit.OutcomeDenied, tc.ExpectedAudit) {
				t.Errorf("refusal %q not audited", tc.ExpectedAudit)
			}
		})
	}
}

func TestSecureSessionIsolation(t *testing.T) {
	h := newHarness(t)
	tokenA, convA := h.intake("+12015550123")
	tokenB, convB := h.intake("+12015550124")
	a, b := h.enter(tokenA), h.enter(tokenB)
	b.say("secret of B")
	a.say("secret of A")
	pageA, pageB := a.page(), b.page()
	if strings.Contains(pageA.body, "secret of B") || !strings.Contains(pageA.body, "secret of A") {
		t.Errorf("A's page shows B's answer or misses its own:\n%s", pageA.body)
	}
	if strings.Contains(pageB.body, "secret of A") {
		t.Errorf("B's page shows A's answer")
	}
	// A's cookie with B's page token is refused: tokens are per session.
	r := a.send(url.Values{"text": {"x"}, "csrf": {b.csrf}}, withHeader("X-CSRF-Token", b.csrf))
	if r.StatusCode != http.StatusForbidden {
		t.Errorf("A's session with B's token = %d, want 403", r.StatusCode)
	}
	// Nothing a request carries names a conversation: a parameter naming
	// B's conversation is ignored.
	if r := a.send(url.Values{"text": {"none"}, "conversation": {convB}}); r.StatusCode != http.StatusNoContent {
		t.Fatalf("send = %d", r.StatusCode)
	}
	if got := h.conv(convB).Step; got != "ask-medications" {
		t.Errorf("B's step = %q: A's answer moved B", got)
	}
	if got := h.conv(convA).Step; got != "ask-has-insurance" {
		t.Errorf("A's step = %q, want ask-has-insurance", got)
	}
	lines := readEvents(t, h, a.cookie, 0, func(evs []event) bool { return hasState(evs) })
	for _, e := range lines {
		if strings.Contains(e.data, "secret of B") {
			t.Errorf("A's stream carries B's line: %s", e.data)
		}
	}
}

func TestSecureSessionCookieAttributes(t *testing.T) {
	h := newHarness(t)
	token, _ := h.intake("+12015550125")
	p := h.open(token)
	r := h.post(p, rightDOB)
	var raw []string
	for _, v := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, securechat.SessionCookie+"=") {
			raw = append(raw, v)
		}
	}
	if len(raw) != 1 {
		t.Fatalf("Set-Cookie for the session = %q, want one", raw)
	}
	attrs := map[string]bool{}
	for i, part := range strings.Split(raw[0], ";") {
		if i > 0 {
			k, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			attrs[strings.ToLower(k)] = true
		}
	}
	for _, want := range []string{"secure", "httponly", "path"} {
		if !attrs[want] {
			t.Errorf("session cookie lacks %s: %s", want, raw[0])
		}
	}
	for _, banned := range []string{"max-age", "expires", "domain"} {
		if attrs[banned] {
			t.Errorf("session cookie has %s, which would make it persistent or shared: %s", banned, raw[0])
		}
	}
	if !strings.Contains(raw[0], "Path=/;") && !strings.HasSuffix(raw[0], "Path=/") {
		t.Errorf("session cookie path is not /: %s", raw[0])
	}
	if !strings.Contains(raw[0], "SameSite=Strict") {
		t.Errorf("session cookie is not SameSite=Strict: %s", raw[0])
	}
	c := cookie(r, securechat.SessionCookie)
	if len(c.Value) != 43 {
		t.Errorf("session id has %d characters, want 43 (256 bits)", len(c.Value))
	}
	// The link page's cookie follows the same rules.
	g := h.do(http.MethodGet, "/s/"+h.nextToken("+12015550126"), nil)
	for _, v := range g.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "__Host-sf_csrf=") && (!strings.Contains(v, "Secure") || !strings.Contains(v, "HttpOnly") ||
			!strings.Contains(v, "SameSite=Strict") || strings.Contains(v, "Max-Age") || strings.Contains(v, "Expires")) {
			t.Errorf("csrf cookie = %s", v)
		}
	}
}

// nextToken starts an intake for phone and returns its link.
func (h *harness) nextToken(phone string) string {
	token, _ := h.intake(phone)
	return token
}

func TestSecureIdleTimeout(t *testing.T) {
	h := newHarness(t)
	token, conv := h.intake("+12015550127")
	c := h.enter(token)
	for i := range 3 { // activity every 4 minutes keeps it alive
		h.clock.Advance(4 * time.Minute)
		if r := c.page(); r.StatusCode != http.StatusOK {
			t.Fatalf("page after %d×4m of activity = %d", i+1, r.StatusCode)
		}
	}
	h.clock.Advance(5 * time.Minute)
	r := c.page()
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.body, "a few minutes without activity") {
		t.Fatalf("page after 5m idle = %d, want 401:\n%s", r.StatusCode, r.body)
	}
	if r.Header.Get("Clear-Site-Data") == "" {
		t.Error("the timed-out page does not clear site data")
	}
	if got := h.conv(conv).Secure; got != engine.SecurePending {
		t.Errorf("conversation secure = %q after the timeout, want pending (engine told)", got)
	}
	if !h.hasAudit(securechat.ActionSessionEnded, audit.OutcomeOK, "idle timeout") {
		t.Error("idle timeout not audited")
	}
	if !h.hasAudit(securechat.ActionSessionRefused, audit.OutcomeDenied, "session ended or timed out") {
		t.Error("refused request not audited")
	}
	if r := c.send(url.Values{"text": {"late"}}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("send after timeout = %d, want 401", r.StatusCode)
	}
}

func TestSecureAbsoluteLimit(t *testing.T) {
	h := newHarness(t, func(c *securechat.Config) { c.SessionLimit = 10 * time.Minute })
	token, _ := h.intake("+12015550128")
	c := h.enter(token)
	h.clock.Advance(4 * time.Minute)
	c.say("a rash")
	h.clock.Advance(4 * time.Minute)
	c.say("none")
	h.clock.Advance(2 * time.Minute) // active 2 minutes ago, but 10 minutes old
	if r := c.page(); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("page at the absolute limit = %d, want 401", r.StatusCode)
	}
	if !h.hasAudit(securechat.ActionSessionEnded, audit.OutcomeOK, "time limit") {
		t.Error("time limit not audited")
	}
}

func TestSecureSweepEndsIdleSessions(t *testing.T) {
	h := newHarness(t)
	token, conv := h.intake("+12015550129")
	h.enter(token)
	h.clock.Advance(4 * time.Minute)
	if err := h.srv.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := h.conv(conv).Secure; got != engine.SecureOpen {
		t.Fatalf("secure = %q after 4m, want still open", got)
	}
	h.clock.Advance(2 * time.Minute)
	if err := h.srv.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := h.conv(conv).Secure; got != engine.SecurePending {
		t.Errorf("secure = %q after the sweep, want pending", got)
	}
}

func TestSecureEndChat(t *testing.T) {
	h := newHarness(t)
	token, conv := h.intake("+12015550130")
	c := h.enter(token)
	r := h.do(http.MethodPost, "/s/chat/end", url.Values{"csrf": {c.csrf}}, withCookies(c.cookie))
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "Chat ended") {
		t.Fatalf("end = %d:\n%s", r.StatusCode, r.body)
	}
	if got := r.Header.Get("Clear-Site-Data"); got != `"cache", "cookies", "storage"` {
		t.Errorf("Clear-Site-Data = %q", got)
	}
	if k := cookie(r, securechat.SessionCookie); k == nil || k.MaxAge >= 0 {
		t.Error("the session cookie is not cleared")
	}
	if r := c.page(); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("page after end = %d, want 401", r.StatusCode)
	}
	if got := h.conv(conv).Secure; got != engine.SecurePending {
		t.Errorf("secure = %q, want pending (engine told)", got)
	}
	if !h.hasAudit(securechat.ActionSessionEnded, audit.OutcomeOK, "ended by patient") {
		t.Error("end not audited")
	}
	// A cross-site end is refused and changes nothing. (The engine sends
	// a fresh link only some minutes after the last one.)
	h.clock.Advance(3 * time.Minute)
	d := h.enter(h.linkOf(h.sms("+12015550130", "back")))
	r = h.do(http.MethodPost, "/s/chat/end", url.Values{"csrf": {d.csrf}}, withCookies(d.cookie), withHeader("Sec-Fetch-Site", "cross-site"),
		withHeader("Origin", "https://evil.example"))
	if r.StatusCode != http.StatusForbidden || d.page().StatusCode != http.StatusOK {
		t.Errorf("cross-site end = %d, want 403 with the session still live", r.StatusCode)
	}
}

func TestSecureSegmentEndClosesPage(t *testing.T) {
	h := newHarness(t)
	token, conv := h.intake("+12015550131")
	c := h.enter(token)
	c.say("a rash")
	c.say("none")
	page := c.page()
	if !strings.Contains(page.body, `name="choice" value="no"`) || !strings.Contains(page.body, ">Yes</button>") {
		t.Fatalf("the yes/no question shows no buttons:\n%s", page.body)
	}
	if r := c.send(url.Values{"choice": {"no"}}); r.StatusCode != http.StatusNoContent {
		t.Fatalf("choice = %d: %s", r.StatusCode, r.body)
	}
	page = c.page()
	for _, want := range []string{
		"we&#39;ll continue by text message.</p>", // the engine's message
		`class="msg bot system"`,                  // marked
		`class="status closed"`,                   // the status says so
		`id="message-input" name="text" type="text" maxlength="1000" autocomplete="off" autocapitalize="sentences" disabled`,
		`id="send" disabled`,
		`class="msg user" data-n="`, // the answer, as its label
		"<p>No</p>",
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("closed page lacks %q:\n%s", want, page.body)
		}
	}
	if got := h.conv(conv); got.Secure != engine.SecureNone || got.Step != "ask-day" {
		t.Errorf("conversation = %s/%s, want back on SMS at ask-day", got.Secure, got.Step)
	}
	if r := c.page(); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("page after the segment ended = %d, want 401: the session ends with it", r.StatusCode)
	}
	if !h.hasAudit(securechat.ActionSessionEnded, audit.OutcomeOK, "secure part finished") {
		t.Error("session end not audited")
	}
}

func TestSecureInputsFitTheQuestion(t *testing.T) {
	h := newHarness(t)
	h.sms("+12015550132", "INPUTS")
	c := h.enter2(h.linkOf(h.sms("+12015550132", "yes")))
	tests := []struct {
		Label    string
		Answer   url.Values
		Expected []string
	}{
		{Label: "Date", Expected: []string{"When did it start?", `type="date"`}},
		{Label: "Number", Answer: url.Values{"text": {"2026-03-01"}}, Expected: []string{"Your weight in kg?", `type="text" inputmode="decimal"`}},
		{Label: "Choice", Answer: url.Values{"text": {"72.5"}}, Expected: []string{"Which day?",
			`<button type="submit" name="choice" value="Monday">Monday</button><button type="submit" name="choice" value="wed">Wednesday</button>`}},
	}
	for _, tc := range tests {
		if tc.Answer != nil {
			if r := c.send(tc.Answer); r.StatusCode != http.StatusNoContent {
				t.Fatalf("%s: send = %d", tc.Label, r.StatusCode)
			}
		}
		page := c.page()
		for _, want := range tc.Expected {
			if !strings.Contains(page.body, want) {
				t.Errorf("%s: page lacks %q:\n%s", tc.Label, want, page.body)
			}
		}
	}
	if r := c.send(url.Values{"choice": {"wed"}}); r.StatusCode != http.StatusNoContent {
		t.Fatalf("choice = %d", r.StatusCode)
	}
	page := c.page()
	if !strings.Contains(page.body, "<p>Wednesday</p>") || !strings.Contains(page.body, "This chat has ended") {
		t.Errorf("after the last answer the page lacks the label or the end:\n%s", page.body)
	}
}

// enter2 enters a chat whose flow has no knowledge check.
func (h *harness) enter2(token string) *chat {
	h.t.Helper()
	p := h.open(token)
	r := h.post(p, "")
	if r.StatusCode != http.StatusSeeOther {
		h.t.Fatalf("continue = %d, want 303 at once without a check:\n%s", r.StatusCode, r.body)
	}
	c := &chat{h: h, cookie: cookie(r, securechat.SessionCookie)}
	c.csrf = csrfOf(h.t, c.page())
	return c
}

func TestSecureUserTextIsNotHTML(t *testing.T) {
	h := newHarness(t)
	token, _ := h.intake("+12015550133")
	c := h.enter(token)
	c.say(`<img src=x onerror="alert(1)">`)
	page := c.page()
	if strings.Contains(page.body, "<img") || !strings.Contains(page.body, "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;") {
		t.Errorf("user text was not escaped:\n%s", page.body)
	}
}

// event is one server-sent event.
type event struct {
	name, id, data string
}

func hasState(evs []event) bool {
	for _, e := range evs {
		if e.name == "state" {
			return true
		}
	}
	return false
}

// readEvents streams /s/chat/events through a real HTTP server until done
// says enough, and returns the events read.
func readEvents(t *testing.T, h *harness, session *http.Cookie, after int64, done func([]event) bool) []event {
	t.Helper()
	evs, stop := streamEvents(t, h, session, after)
	defer stop()
	return evs(done)
}

// streamEvents opens the stream and returns a function that reads until
// done says enough (or fails the test after 10 seconds), and one that
// closes the stream.
func streamEvents(t *testing.T, h *harness, session *http.Cookie, after int64) (func(done func([]event) bool) []event, func()) {
	t.Helper()
	srv := httptest.NewTLSServer(h.srv)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/s/chat/events?after="+strconv.FormatInt(after, 10), nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events = %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	ch := make(chan event, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(res.Body)
		var e event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.name != "" {
					ch <- e
				}
				e = event{}
			case strings.HasPrefix(line, "event: "):
				e.name = line[len("event: "):]
			case strings.HasPrefix(line, "id: "):
				e.id = line[len("id: "):]
			case strings.HasPrefix(line, "data: "):
				e.data = line[len("data: "):]
			}
		}
	}()
	var got []event
	read := func(done func([]event) bool) []event {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for !done(got) {
			select {
			case e, ok := <-ch:
				if !ok {
					return got
				}
				got = append(got, e)
			case <-timeout:
				t.Fatalf("stream: timed out; events so far: %+v", got)
			}
		}
		return got
	}
	return read, func() {
		cancel()
		res.Body.Close()
		srv.Close()
	}
}

func lineTexts(evs []event) []string {
	var out []string
	for _, e := range evs {
		if e.name == "line" {
			var l struct {
				N    int64
				From string
				Text string
			}
			json.Unmarshal([]byte(e.data), &l)
			out = append(out, l.From+": "+l.Text)
		}
	}
	return out
}

func countLines(evs []event) int { return len(lineTexts(evs)) }

func TestSecureEventsDeliverPushedMessages(t *testing.T) {
	h := newHarness(t) // Poll is an hour: only pushes wake the stream
	token, conv := h.intake("+12015550134")
	c := h.enter(token)
	read, stop := streamEvents(t, h, c.cookie, 0)
	defer stop()
	evs := read(func(evs []event) bool { return countLines(evs) >= 1 && hasState(evs) })
	if got := lineTexts(evs); len(got) != 1 || got[0] != "bot: What brings you in? A few words is fine." {
		t.Fatalf("history = %q, want the first question", got)
	}
	// An answer handled by the engine elsewhere (another node, the
	// dashboard) shows up when the outbox worker sends through the hub.
	res, err := h.eng.Handle(context.Background(), engine.Inbound{Channel: engine.Secure, ConversationID: conv, Text: "a rash"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Out {
		id, err := h.srv.Hub().Send(context.Background(), o)
		if err != nil || id == "" {
			t.Fatalf("hub send = %q, %v", id, err)
		}
	}
	evs = read(func(evs []event) bool { return countLines(evs) >= 3 })
	got := lineTexts(evs)
	if got[1] != "user: a rash" || got[2] != "bot: Please list any medicines you take, or reply NONE." {
		t.Errorf("pushed lines = %q", got[1:])
	}
	for _, e := range evs {
		if e.name == "line" && e.id == "" {
			t.Error("a line event has no id to resume from")
		}
	}
	// An answer through the page wakes the stream too.
	c.say("none")
	evs = read(func(evs []event) bool { return countLines(evs) >= 5 })
	if got := lineTexts(evs); got[4] != "bot: Do you have health insurance?" {
		t.Errorf("lines = %q", got)
	}
	var st struct {
		Open    bool
		Choices []struct{ Title, Value string }
	}
	evs = read(func(evs []event) bool {
		last := evs[len(evs)-1]
		return last.name == "state" && json.Unmarshal([]byte(last.data), &st) == nil && len(st.Choices) == 2
	})
	if !st.Open || st.Choices[0].Value != "yes" {
		t.Errorf("state = %+v, want Yes/No buttons", st)
	}
}

func TestSecureEventsResumeAndEnd(t *testing.T) {
	h := newHarness(t)
	token, conv := h.intake("+12015550135")
	c := h.enter(token)
	c.say("a rash")
	// Resuming after line 2 of the secure part sends only what follows.
	all := readEvents(t, h, c.cookie, 0, func(evs []event) bool { return countLines(evs) >= 3 && hasState(evs) })
	var second string
	for _, e := range all {
		if e.name == "line" && strings.Contains(e.data, "a rash") {
			second = e.id
		}
	}
	n, _ := strconv.ParseInt(second, 10, 64)
	rest := readEvents(t, h, c.cookie, n, hasState)
	if got := lineTexts(rest); len(got) != 1 || !strings.Contains(got[0], "medicines") {
		t.Errorf("resumed lines = %q, want only the question after the answer", got)
	}
	// When the session times out, the stream says so and ends.
	read, stop := streamEvents(t, h, c.cookie, n)
	defer stop()
	read(hasState)
	h.clock.Advance(6 * time.Minute)
	h.srv.Hub().Wake(conv)
	evs := read(func(evs []event) bool { return evs[len(evs)-1].name == "end" })
	if !strings.Contains(evs[len(evs)-1].data, "a few minutes without activity") {
		t.Errorf("end event = %s", evs[len(evs)-1].data)
	}
}

func TestSecureEventsRefusedWithoutSession(t *testing.T) {
	h := newHarness(t)
	r := h.do(http.MethodGet, "/s/chat/events", nil)
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("events without a session = %d, want 401 (stops EventSource)", r.StatusCode)
	}
	if !h.hasAudit(securechat.ActionSessionRefused, audit.OutcomeDenied, "no session") {
		t.Error("refusal not audited")
	}
}

func TestSecureHubRefusesOtherChannels(t *testing.T) {
	h := newHarness(t)
	_, err := h.srv.Hub().Send(context.Background(), &engine.Outbound{Channel: engine.SMS, Text: "x"})
	if !errors.Is(err, engine.ErrPermanent) {
		t.Errorf("err = %v, want ErrPermanent", err)
	}
}
