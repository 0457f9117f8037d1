package e2e

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/internal/browsertest"
	"github.com/safeflow/safeflow/securechat"
)

var update = flag.Bool("update", false, "write the secure chat's screenshots in docs/images")

// The secure pages' words the test looks for (securechat's English texts).
const (
	continueTitle = "Secure chat"
	verifyTitle   = "Please confirm it's you"
	verifyWrong   = "That doesn't match our records. Please try again."
	usedTitle     = "This link was already used"
	expiredTitle  = "This link has expired"
	lockedTitle   = "This link is locked"
	refusedTitle  = "This request was refused"
	backToSMS     = "This private part is done. We'll continue by text message."
)

// TestBrowserSecureIntake runs the new patient intake as a patient would:
// SMS through the Twilio webhook, the secure link opened in a phone-sized
// headless Chromium, the sensitive questions answered on the page, and
// back to SMS to finish. On the way it checks what the page must never
// do (SECURITY.md 5, 7-12) and that each refusal is shown and audited.
func TestBrowserSecureIntake(t *testing.T) {
	ctx := browsertest.New(t, browsertest.Phone())
	zone, err := time.LoadLocation(clinicZone)
	if err != nil {
		t.Fatal(err)
	}
	h := startService(t, sqliteStore, time.Date(2026, 3, 2, 10, 0, 0, 0, zone), servedLocally(), finishedShownFor(3*time.Second))
	b := &browser{t: t, ctx: ctx, traffic: watchSecureTraffic(t, ctx, h.public)}
	shot := func(name string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), name)
		if *update {
			path = filepath.Join("..", "..", "docs", "images", name)
		}
		if err := browsertest.Screenshot(ctx, path); err != nil {
			t.Fatal(err)
		}
	}

	ann := patient{Phone: "+12015550141", First: "Ann", Last: "Lee", DOB: "03/14/1985", DOBField: "1985-03-14", Email: "ann@example.com"}
	link := h.intakeUntilLink(ann)
	annConv := h.conversationOf(ann.Phone)
	token := link[strings.LastIndex(link, "/")+1:]

	// The link's page only offers to continue: opening it (as a link
	// preview would) uses nothing up.
	p := b.open(link)
	if p.Response.Status != http.StatusOK || p.Heading != continueTitle {
		t.Fatalf("the link shows %d %q, want 200 %q:\n%s", p.Response.Status, p.Heading, continueTitle, p.Text)
	}
	b.do("see the Continue button", chromedp.WaitVisible(chromedp.ID("continue")))
	if c := h.conversation(annConv); c.Secure != engine.SecurePending {
		t.Fatalf("after a GET of the link the secure part is %q, want it still %q", c.Secure, engine.SecurePending)
	}
	shot("secure-continue.png")

	p = b.submit("tap Continue", chromedp.Click(chromedp.ID("continue")))
	if p.Response.Method != http.MethodPost || p.Heading != verifyTitle || !strings.Contains(p.Text, "please enter your date of birth") {
		t.Fatalf("Continue led to %s %d %q, want the date of birth check:\n%s", p.Response.Method, p.Response.Status, p.Heading, p.Text)
	}
	shot("secure-verify.png")

	p = b.submit("enter the date of birth", chromedp.Steps(
		chromedp.SetValue(chromedp.ID("verify-answer"), ann.DOBField), chromedp.Click(chromedp.ID("verify"))))
	if u, _ := url.Parse(p.URL); u == nil || u.Path != "/s/chat" || strings.Contains(p.URL, token) {
		t.Fatalf("after the check the browser is at %s, want /s/chat without the token:\n%s", p.URL, p.Text)
	}
	if c := h.conversation(annConv); c.Secure != engine.SecureOpen {
		t.Fatalf("after the check the secure part is %q, want %q", c.Secure, engine.SecureOpen)
	}
	b.waitBot("What brings you in? A few words is fine.")
	b.expectSessionCookieOnly(h.public)
	if inline := evaluate[int](b, `[...document.scripts].filter(s => !s.src || new URL(s.src).origin !== location.origin).length`); inline != 0 {
		t.Errorf("the chat page has %d inline or foreign scripts", inline)
	}

	// Markup typed by the patient shows as the characters typed.
	reason := "<b>x</b> sprained ankle from hiking"
	b.answer(reason)
	b.waitBot("Please list any medicines you take, or reply NONE.")
	if n := evaluate[int](b, `document.querySelectorAll("#messages b, #messages script").length`); n != 0 {
		t.Errorf("typed markup became %d elements on the page", n)
	}

	// Another patient's link, opened in this browser with Ann's session,
	// shows nothing of either conversation and does not open Bob's to Ann.
	bob := patient{Phone: "+12015550142", First: "Bob", Last: "Ray", DOB: "07/22/1979", DOBField: "1979-07-22", Email: "bob@example.com"}
	bobLink := h.intakeUntilLink(bob)
	bobConv := h.conversationOf(bob.Phone)
	b.open(bobLink)
	b.submit("Continue on Bob's link", chromedp.Click(chromedp.ID("continue")))
	p = b.submit("Ann's date of birth on Bob's link", chromedp.Steps(
		chromedp.SetValue(chromedp.ID("verify-answer"), ann.DOBField), chromedp.Click(chromedp.ID("verify"))))
	h.expectRefused("Ann's answer on Bob's link", p, refusal{Status: http.StatusUnprocessableEntity, Heading: verifyTitle,
		Action: audit.LinkFailed, Reason: "verification failed", Conversation: bobConv})
	if !strings.Contains(p.Text, verifyWrong) || strings.Contains(p.Text, "sprained") || strings.Contains(p.Text, "medicines") {
		t.Errorf("Bob's link with Ann's session shows more than the failed check:\n%s", p.Text)
	}
	if c := h.conversation(bobConv); c.Secure != engine.SecurePending {
		t.Errorf("Bob's secure part is %q after Ann's browser tried his link, want %q", c.Secure, engine.SecurePending)
	}
	p = b.open(h.public + "/s/chat")
	if p.Response.Status != http.StatusOK || !strings.Contains(p.Text, reason) {
		t.Fatalf("Ann's chat after trying Bob's link shows %d:\n%s", p.Response.Status, p.Text)
	}

	// A page of another origin on 127.0.0.1 posts to the secure chat with
	// Ann's cookie: even with the right page token, the origin is refused.
	evil := crossSite(t, []crossSiteForm{
		{ID: "send", Action: h.public + "/s/chat/send", Fields: map[string]string{
			"csrf": evaluate[string](b, `document.getElementById("chat").dataset.csrf`), "text": "sent by another site"}},
		{ID: "link", Action: bobLink, Fields: map[string]string{"csrf": "forged", "answer": bob.DOBField}},
	})
	b.open(evil)
	p = b.submit("a cross-site post to /s/chat/send", chromedp.Click(chromedp.ID("send-go")))
	h.expectRefused("cross-site answer", p, refusal{Status: http.StatusForbidden, Heading: refusedTitle,
		Action: securechat.ActionSessionRefused, Reason: "cross-site request", Conversation: annConv})
	b.open(evil)
	p = b.submit("a cross-site post to Bob's link", chromedp.Click(chromedp.ID("link-go")))
	h.expectRefused("cross-site link", p, refusal{Status: http.StatusForbidden, Heading: refusedTitle,
		Action: audit.LinkFailed, Reason: "cross-site request", Conversation: bobConv})
	if c := h.conversation(bobConv); c.Secure != engine.SecurePending {
		t.Errorf("Bob's secure part is %q after a cross-site post of his link, want %q", c.Secure, engine.SecurePending)
	}
	p = b.open(h.public + "/s/chat")
	if strings.Contains(p.Text, "sent by another site") {
		t.Errorf("the cross-site answer reached Ann's chat:\n%s", p.Text)
	}
	b.waitBot("Please list any medicines you take, or reply NONE.")

	medications := "Lisinopril 10 mg daily"
	b.answer(medications)
	b.waitBot("Do you have health insurance?")
	b.waitJS("the Yes and No buttons", `!document.getElementById("choices").hidden && document.querySelectorAll("#choices button").length === 2`)
	b.expectNothingStored()
	b.expectLatestInView()
	shot("secure-chat.png")
	b.do("tap Yes", chromedp.Click(chromedp.CSS(`#choices button[value="yes"]`)))
	b.waitBot("What is the member ID on your insurance card? (letters and numbers)")
	memberID := "XQZ4815162"
	b.answer(memberID)
	b.waitJS("the page to say the chat goes on by text", `document.getElementById("status").classList.contains("closed") &&
		document.getElementById("status").textContent === `+jsString(backToSMS)+` && document.getElementById("message-input").disabled`)
	b.expectLatestInView()
	shot("secure-done.png")
	b.expectNothingStored()
	// A moment later the finished part leaves the screen: the session ended
	// with it, and whoever picks up the phone later sees nothing of it.
	b.waitJS("the finished page to forget the conversation", `document.querySelectorAll("#messages .msg").length === 0 &&
		document.getElementById("status").textContent === `+jsString(backToSMS))
	if txt := evaluate[string](b, `document.body.innerText`); strings.Contains(txt, memberID) || strings.Contains(txt, "sprained") {
		t.Errorf("the page still shows the finished conversation:\n%s", txt)
	}

	// Back on SMS: the day question arrives there, and the flow finishes.
	h.waitFor("the day question by SMS", func() (bool, string) {
		msgs := h.deliveredTo(engine.SMS, ann.Phone)
		return len(msgs) > 0 && strings.Contains(msgs[len(msgs)-1].Text, "Which day would you like to come in?"), describe(msgs)
	})
	h.textClinic(ann.Phone, "Tuesday", "Thanks Ann! Our front desk will text you a time on Tuesday.")
	if c := h.conversation(annConv); c.Status != engine.Ended {
		t.Errorf("Ann's conversation is %q after the last answer, want %q", c.Status, engine.Ended)
	}

	// A used link stays used.
	p = b.open(link)
	h.expectRefused("reused link", p, refusal{Status: http.StatusGone, Heading: usedTitle,
		Action: audit.LinkFailed, Reason: "already used", Conversation: annConv})

	// Five wrong dates of birth lock the link; the right one after that
	// is refused too. The clock moves past the per-link rate limit
	// between tries, so that the lock, not the limit, answers.
	cy := patient{Phone: "+12015550143", First: "Cy", Last: "Nash", DOB: "11/02/1990", DOBField: "1990-11-02", Email: "cy@example.com"}
	cyLink := h.intakeUntilLink(cy)
	cyConv := h.conversationOf(cy.Phone)
	b.open(cyLink)
	b.submit("Continue on Cy's link", chromedp.Click(chromedp.ID("continue")))
	csrf := evaluate[string](b, `document.querySelector("input[name=csrf]").value`)
	for try := 1; try <= 5; try++ {
		h.clock.AdvanceTo(h.clock.Now().Add(6 * time.Second))
		p = b.submit(fmt.Sprintf("wrong date of birth %d", try), chromedp.Steps(
			chromedp.SetValue(chromedp.ID("verify-answer"), "2001-01-01"), chromedp.Click(chromedp.ID("verify"))))
		if try < 5 {
			h.expectRefused(fmt.Sprintf("wrong date of birth %d", try), p, refusal{Status: http.StatusUnprocessableEntity,
				Heading: verifyTitle, Action: audit.LinkFailed, Reason: "verification failed", Conversation: cyConv})
			continue
		}
		h.expectRefused("the fifth wrong date of birth", p, refusal{Status: http.StatusForbidden, Heading: lockedTitle,
			Action: audit.LinkLocked, Reason: "5 failed verifications", Conversation: cyConv})
	}
	h.clock.AdvanceTo(h.clock.Now().Add(6 * time.Second))
	// The locked page has no form; the browser posts the right answer as
	// the verify page's form would have.
	p = b.submit("the right date of birth after the lock", chromedp.Evaluate[chromedp.Void](`(() => {
		const f = document.createElement("form");
		f.method = "post";
		f.action = `+jsString(cyLink)+`;
		for (const [name, value] of [["csrf", `+jsString(csrf)+`], ["answer", `+jsString(cy.DOBField)+`]]) {
			const i = document.createElement("input");
			i.type = "hidden"; i.name = name; i.value = value;
			f.appendChild(i);
		}
		document.body.appendChild(f);
		f.submit();
	})()`))
	h.expectRefused("the right date of birth on a locked link", p, refusal{Status: http.StatusForbidden, Heading: lockedTitle,
		Action: audit.LinkLocked, Reason: "locked", Conversation: cyConv})
	if c := h.conversation(cyConv); c.Secure != engine.SecurePending {
		t.Errorf("Cy's secure part is %q after the lock, want %q", c.Secure, engine.SecurePending)
	}
	// The clinic is told: the conversation waits for the front desk.
	if c := h.conversation(cyConv); c.Status != engine.HandedOff || c.Queue != "front-desk" {
		t.Errorf("Cy's conversation is %q (queue %q) after the lock, want handed off to front-desk", c.Status, c.Queue)
	}

	// A link past its 15 minutes is refused.
	dee := patient{Phone: "+12015550144", First: "Dee", Last: "Park", DOB: "05/30/1970", DOBField: "1970-05-30", Email: "dee@example.com"}
	deeLink := h.intakeUntilLink(dee)
	deeConv := h.conversationOf(dee.Phone)
	h.clock.AdvanceTo(h.clock.Now().Add(15*time.Minute + time.Second))
	p = b.open(deeLink)
	h.expectRefused("expired link", p, refusal{Status: http.StatusGone, Heading: expiredTitle,
		Action: audit.LinkExpired, Reason: "expired", Conversation: deeConv})

	// A session left idle ends on the server, and the open page takes the
	// conversation off the screen: whoever picks up the phone later sees
	// nothing of it.
	eve := patient{Phone: "+12015550145", First: "Eve", Last: "Diaz", DOB: "08/09/1992", DOBField: "1992-08-09", Email: "eve@example.com"}
	eveLink := h.intakeUntilLink(eve)
	b.open(eveLink)
	b.submit("Continue on Eve's link", chromedp.Click(chromedp.ID("continue")))
	b.submit("Eve's date of birth", chromedp.Steps(
		chromedp.SetValue(chromedp.ID("verify-answer"), eve.DOBField), chromedp.Click(chromedp.ID("verify"))))
	b.waitBot("What brings you in? A few words is fine.")
	b.answer("a rash on my arm")
	b.waitBot("Please list any medicines you take, or reply NONE.")
	h.clock.AdvanceTo(h.clock.Now().Add(6 * time.Minute))
	b.waitJS("the idle page to forget the conversation", `document.querySelectorAll("#messages .msg").length === 0 &&
		document.getElementById("status").classList.contains("closed") && document.getElementById("message-input").disabled`)
	if txt := evaluate[string](b, `document.body.innerText`); strings.Contains(txt, "rash") || strings.Contains(txt, "medicines") {
		t.Errorf("the page still shows the conversation after the session timed out:\n%s", txt)
	}

	// Every response of the secure chat the browser saw carried the
	// security headers, and the traffic covered every kind of page.
	seen := b.traffic.all()
	for _, r := range seen {
		for _, problem := range securityHeaderProblems(r) {
			t.Errorf("%s %s (%d): %s", r.Method, r.URL, r.Status, problem)
		}
	}
	for _, want := range []struct {
		method string
		path   *regexp.Regexp
		status int64
	}{
		{http.MethodGet, regexp.MustCompile(`^/s/[A-Za-z0-9_-]{43}$`), http.StatusOK},
		{http.MethodPost, regexp.MustCompile(`^/s/[A-Za-z0-9_-]{43}$`), http.StatusOK},
		{http.MethodPost, regexp.MustCompile(`^/s/[A-Za-z0-9_-]{43}$`), http.StatusSeeOther},
		{http.MethodPost, regexp.MustCompile(`^/s/[A-Za-z0-9_-]{43}$`), http.StatusUnprocessableEntity},
		{http.MethodPost, regexp.MustCompile(`^/s/[A-Za-z0-9_-]{43}$`), http.StatusForbidden},
		{http.MethodGet, regexp.MustCompile(`^/s/[A-Za-z0-9_-]{43}$`), http.StatusGone},
		{http.MethodGet, regexp.MustCompile(`^/s/chat$`), http.StatusOK},
		{http.MethodGet, regexp.MustCompile(`^/s/chat/events$`), http.StatusOK},
		{http.MethodPost, regexp.MustCompile(`^/s/chat/send$`), http.StatusNoContent},
		{http.MethodPost, regexp.MustCompile(`^/s/chat/send$`), http.StatusForbidden},
		{http.MethodGet, regexp.MustCompile(`^/s/static/chat\.css$`), http.StatusOK},
		{http.MethodGet, regexp.MustCompile(`^/s/static/chat\.js$`), http.StatusOK},
	} {
		found := false
		for _, r := range seen {
			u, err := url.Parse(r.URL)
			found = found || err == nil && r.Method == want.method && want.path.MatchString(u.Path) && r.Status == want.status
		}
		if !found {
			t.Errorf("the browser never got %s %s → %d, so its headers went unchecked", want.method, want.path, want.status)
		}
	}
	t.Logf("security headers checked on %d secure chat responses", len(seen))
	if refused := b.traffic.refusedCookies(); len(refused) > 0 {
		t.Errorf("the browser refused cookies of the secure chat: %q", refused)
	}

	// Nothing typed on the page ever went out by SMS, nor did its
	// questions.
	secrets := []secret{
		{value: reason, what: "reason typed on the secure page"},
		{value: medications, what: "medications typed on the secure page"},
		{value: memberID, what: "member id typed on the secure page"},
	}
	ledgerSecrets(t.Name(), secrets)
	scanOwn(t, secrets, h)
	for _, m := range h.allDelivered() {
		for _, q := range []string{"What brings you in?", "medicines", "health insurance", "member ID"} {
			if strings.Contains(m.Text, q) {
				t.Errorf("a secure question went out by %s: %q", m.Channel, m.Text)
			}
		}
	}
}

// answer types text in the chat and sends it, and waits until the page
// shows it as the patient's.
func (b *browser) answer(text string) {
	b.t.Helper()
	b.do("type "+text, chromedp.SendKeys(chromedp.ID("message-input"), text), chromedp.Click(chromedp.ID("send")))
	b.waitJS(fmt.Sprintf("the answer %q on the page", text),
		`[...document.querySelectorAll("#messages .msg.user p")].some(p => p.textContent === `+jsString(text)+`)`)
}

// waitBot waits until the clinic's last message on the page is text.
func (b *browser) waitBot(text string) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("the question %q", text), `(() => {
		const bots = document.querySelectorAll("#messages .msg.bot p");
		return bots.length > 0 && bots[bots.length - 1].textContent === `+jsString(text)+`;
	})()`)
}

// expectSessionCookieOnly checks that the browser holds one cookie for the
// secure chat, the session's, as SECURITY.md #8 describes it.
func (b *browser) expectSessionCookieOnly(base string) {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/s/chat"}})
	if err != nil {
		b.t.Fatalf("read the browser's cookies: %v (refused: %q)", err, b.traffic.refusedCookies())
	}
	if len(res.Cookies) != 1 || res.Cookies[0].Name != securechat.SessionCookie {
		var names []string
		for _, c := range res.Cookies {
			names = append(names, c.Name)
		}
		b.t.Fatalf("the browser holds cookies %q for the chat, want only %s; cookies it refused: %q",
			names, securechat.SessionCookie, b.traffic.refusedCookies())
	}
	c := res.Cookies[0]
	if !c.Session || c.Expires > 0 || !c.Secure || !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Path != "/" {
		b.t.Errorf("the session cookie is session=%v expires=%v secure=%v httpOnly=%v sameSite=%q path=%q; want a Secure, HttpOnly, SameSite=Strict session cookie on /",
			c.Session, c.Expires, c.Secure, c.HTTPOnly, c.SameSite, c.Path)
	}
}

// expectNothingStored checks that the page keeps nothing on the device:
// no web storage, IndexedDB database, service worker or persistent cookie.
func (b *browser) expectNothingStored() {
	b.t.Helper()
	if n := evaluate[int](b, `localStorage.length`); n != 0 {
		b.t.Errorf("localStorage holds %d items", n)
	}
	if n := evaluate[int](b, `sessionStorage.length`); n != 0 {
		b.t.Errorf("sessionStorage holds %d items", n)
	}
	if n := evaluate[int](b, `indexedDB.databases().then(d => d.length)`, chromedp.EvalAwaitPromise); n != 0 {
		b.t.Errorf("IndexedDB holds %d databases", n)
	}
	if n := evaluate[int](b, `navigator.serviceWorker ? navigator.serviceWorker.getRegistrations().then(r => r.length) : 0`, chromedp.EvalAwaitPromise); n != 0 {
		b.t.Errorf("%d service workers are registered", n)
	}
	res, err := chromedp.CallBrowser(b.ctx, storage.GetCookies, storage.GetCookiesParams{})
	if err != nil {
		b.t.Fatalf("read the browser's cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if !c.Session || c.Expires > 0 {
			b.t.Errorf("cookie %s of %s is persistent (expires %v)", c.Name, c.Domain, c.Expires)
		}
		if !strings.HasPrefix(c.Name, "__Host-") {
			b.t.Errorf("cookie %s of %s lacks the __Host- prefix", c.Name, c.Domain)
		}
	}
}

// expectLatestInView waits until the newest message is on the phone's
// screen, not under the answer bar, and checks that nothing scrolls
// sideways.
func (b *browser) expectLatestInView() {
	b.t.Helper()
	b.waitJS("the newest message in view above the answer bar", `(() => {
		const msgs = document.querySelectorAll("#messages .msg");
		const last = msgs[msgs.length - 1].getBoundingClientRect();
		const bar = document.querySelector(".answer").getBoundingClientRect();
		return last.top >= 0 && last.bottom <= Math.min(bar.top, window.innerHeight) + 1;
	})()`)
	if wide := evaluate[bool](b, `document.documentElement.scrollWidth > window.innerWidth`); wide {
		b.t.Errorf("the chat page is wider than the phone's screen")
	}
}
