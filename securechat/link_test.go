package securechat_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
	"github.com/safeflow/safeflow/securechat"
)

func hashOf(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func TestSecureIssuerLinks(t *testing.T) {
	h := newHarness(t)
	token, conv := h.intake("+12015550101")
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 32 {
		t.Fatalf("token %q is not 256 bits of base64url: %d bytes, %v", token, len(raw), err)
	}
	link, redeemed, locked, err := h.st.SecureLinkByHash(context.Background(), hashOf(token))
	if err != nil {
		t.Fatalf("the store does not find the link by the token's SHA-256: %v", err)
	}
	if link.ConversationID != conv || link.ContactID == "" || redeemed || locked {
		t.Errorf("link = %+v, redeemed %v, locked %v; want bound to %s and its contact", link, redeemed, locked, conv)
	}
	if ttl := link.Expires.Sub(link.Created); ttl != 15*time.Minute {
		t.Errorf("TTL = %v, want the flow's 15m", ttl)
	}
	// Two links are never the same.
	h.sms("+12015550101", "hello")
	h.clock.Advance(3 * time.Minute)
	again := h.linkOf(h.sms("+12015550101", "hello again"))
	if again == token {
		t.Error("a second link repeats the first token")
	}
}

func TestSecureIssuerDefaultTTL(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	iss, err := securechat.NewIssuer(securechat.Config{PublicURL: publicURL, LinkTTL: 7 * time.Minute, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	tx := &recordingTx{}
	u, err := iss.IssueLink(context.Background(), tx, &engine.Conversation{ID: "c1", ContactID: "k1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, publicURL+"/s/") || len(strings.TrimPrefix(u, publicURL+"/s/")) != 43 {
		t.Errorf("url = %q, want %s/s/ and a 43-character token", u, publicURL)
	}
	if len(tx.links) != 1 || !tx.links[0].Expires.Equal(clock.Add(7*time.Minute)) || tx.links[0].ConversationID != "c1" || tx.links[0].ContactID != "k1" {
		t.Errorf("saved %+v, want one link for c1/k1 expiring after the configured 7m", tx.links)
	}
	if string(tx.links[0].TokenHash) != string(hashOf(strings.TrimPrefix(u, publicURL+"/s/"))) {
		t.Error("the stored hash is not the SHA-256 of the token")
	}
}

// recordingTx keeps the links saved through it.
type recordingTx struct {
	engine.Tx
	links []engine.SecureLink
}

func (t *recordingTx) SaveLink(_ context.Context, l engine.SecureLink) error {
	t.links = append(t.links, l)
	return nil
}

func TestSecurePublicURLChecked(t *testing.T) {
	tests := []struct {
		Label    string
		URL      string
		Dev      bool
		Expected string // part of the error, or "" for none
	}{
		{Label: "HTTPS", URL: "https://chat.clinic.test"},
		{Label: "HTTPSWithSlash", URL: "https://chat.clinic.test/"},
		{Label: "HTTPInDev", URL: "http://localhost:8080", Dev: true},
		{Label: "Missing", URL: "", Expected: "no public URL"},
		{Label: "HTTPOutsideDev", URL: "http://chat.clinic.test", Expected: "must start with https://"},
		{Label: "OtherScheme", URL: "ftp://chat.clinic.test", Dev: true, Expected: "must start with https://"},
		{Label: "Path", URL: "https://chat.clinic.test/chat", Expected: "only a scheme and a host"},
		{Label: "Query", URL: "https://chat.clinic.test?x=1", Expected: "only a scheme and a host"},
		{Label: "NoHost", URL: "https:///s", Expected: "has no host"},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			_, err := securechat.NewIssuer(securechat.Config{PublicURL: tc.URL, Dev: tc.Dev})
			switch {
			case tc.Expected == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tc.Expected != "" && (err == nil || !strings.Contains(err.Error(), tc.Expected)):
				t.Errorf("err = %v, want one saying %q", err, tc.Expected)
			}
		})
	}
}

func TestSecureLinkGetDoesNotConsume(t *testing.T) {
	h := newHarness(t)
	token, conv := h.intake("+12015550102")
	for i := range 3 { // link previews, then the patient
		r := h.do(http.MethodGet, "/s/"+token, nil)
		if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "Continue to secure chat") || !strings.Contains(r.body, `method="post"`) {
			t.Fatalf("GET %d = %d, want the continue page:\n%s", i, r.StatusCode, r.body)
		}
		if strings.Contains(r.body, "brings you in") {
			t.Fatal("the GET page shows content before redemption")
		}
	}
	if h.redeemed(token) {
		t.Fatal("GET redeemed the link")
	}
	if c := h.conv(conv); c.Secure != engine.SecurePending {
		t.Errorf("conversation secure = %q after GETs, want pending", c.Secure)
	}
	if n := len(h.audits(audit.LinkOpened)); n != 3 {
		t.Errorf("%d link.opened records, want 3", n)
	}
	// POST without an answer only shows the check: still nothing redeemed.
	p := h.open(token)
	r := h.post(p, "")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "please enter your date of birth") || !strings.Contains(r.body, `type="date"`) {
		t.Errorf("continue = %d, want the flow's check with a date input:\n%s", r.StatusCode, r.body)
	}
	if h.redeemed(token) {
		t.Fatal("showing the check redeemed the link")
	}
}

func TestSecureRedeemOpensChat(t *testing.T) {
	h := newHarness(t)
	token, conv := h.intake("+12015550103")
	p := h.open(token)
	h.post(p, "")
	r := h.post(p, rightDOB)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/s/chat" {
		t.Fatalf("redeem = %d to %q, want 303 to /s/chat", r.StatusCode, r.Header.Get("Location"))
	}
	if strings.Contains(r.Header.Get("Location"), token) {
		t.Error("the redirect carries the token")
	}
	if c := cookie(r, "__Host-sf_csrf"); c == nil || c.MaxAge >= 0 {
		t.Error("redemption does not clear the link page's csrf cookie")
	}
	if !h.redeemed(token) {
		t.Error("link not redeemed")
	}
	if c := h.conv(conv); c.Secure != engine.SecureOpen {
		t.Errorf("conversation secure = %q, want open (engine told)", c.Secure)
	}
	page := h.do(http.MethodGet, "/s/chat", nil, withCookies(cookie(r, securechat.SessionCookie)))
	if page.StatusCode != http.StatusOK || !strings.Contains(page.body, "What brings you in? A few words is fine.") {
		t.Errorf("chat page = %d, want the first sensitive question:\n%s", page.StatusCode, page.body)
	}
	// The page takes a finished part off the screen after a minute.
	if !strings.Contains(page.body, `data-forget-ms="60000"`) {
		t.Errorf("chat page does not tell the script to forget a finished part after 60000 ms:\n%s", page.body)
	}
	recs := h.audits(audit.LinkRedeemed)
	if len(recs) != 1 || recs[0].Conversation != conv || recs[0].Outcome != audit.OutcomeOK || recs[0].Source != "192.0.2.1" {
		t.Errorf("link.redeemed records = %+v", recs)
	}
}

func TestSecureLinkRefused(t *testing.T) {
	tests := []struct {
		Label string
		// Setup returns the token to try, after putting it in a state.
		Setup          func(h *harness) (token string, p *linkPage)
		ExpectedStatus int
		ExpectedText   string
		ExpectedAudit  [3]string // action, outcome, reason
	}{
		{
			Label: "Reused",
			Setup: func(h *harness) (string, *linkPage) {
				token, _ := h.intake("+12015550110")
				p := h.open(token) // the page a replayed request would carry
				h.redeem(token)
				return token, &p
			},
			ExpectedStatus: http.StatusGone, ExpectedText: "already used",
			ExpectedAudit: [3]string{audit.LinkFailed, audit.OutcomeDenied, "already used"},
		},
		{
			Label: "Expired",
			Setup: func(h *harness) (string, *linkPage) {
				token, _ := h.intake("+12015550111")
				p := h.open(token)
				h.clock.Advance(15 * time.Minute)
				return token, &p
			},
			ExpectedStatus: http.StatusGone, ExpectedText: "has expired",
			ExpectedAudit: [3]string{audit.LinkExpired, audit.OutcomeDenied, "expired"},
		},
		{
			Label: "ConversationReplaced",
			Setup: func(h *harness) (string, *linkPage) {
				token, _ := h.intake("+12015550112")
				p := h.open(token)
				if _, err := h.eng.Start(context.Background(), "new-patient-intake", engine.SMS, "+12015550112", "", nil); err != nil {
					h.t.Fatal(err)
				}
				return token, &p
			},
			ExpectedStatus: http.StatusGone, ExpectedText: "no longer needed",
			ExpectedAudit: [3]string{audit.LinkExpired, audit.OutcomeDenied, "conversation moved on"},
		},
		{
			Label: "Unknown",
			Setup: func(h *harness) (string, *linkPage) {
				return base64.RawURLEncoding.EncodeToString(make([]byte, 32)), nil
			},
			ExpectedStatus: http.StatusNotFound, ExpectedText: "This link doesn",
			ExpectedAudit: [3]string{audit.LinkFailed, audit.OutcomeDenied, "unknown link"},
		},
		{
			Label: "Malformed",
			Setup: func(h *harness) (string, *linkPage) {
				return "link-1", nil
			},
			ExpectedStatus: http.StatusNotFound, ExpectedText: "This link doesn",
			ExpectedAudit: [3]string{audit.LinkFailed, audit.OutcomeDenied, "unknown link"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t)
			token, p := tc.Setup(h)
			before := len(h.audits(tc.ExpectedAudit[0]))
			get := h.do(http.MethodGet, "/s/"+token, nil)
			if get.StatusCode != tc.ExpectedStatus || !strings.Contains(get.body, tc.ExpectedText) {
				t.Errorf("GET = %d, want %d saying %q:\n%s", get.StatusCode, tc.ExpectedStatus, tc.ExpectedText, get.body)
			}
			if cookie(get, securechat.SessionCookie) != nil {
				t.Error("a refused GET set a session cookie")
			}
			if p != nil {
				for _, answer := range []string{"", rightDOB} {
					post := h.post(*p, answer)
					if post.StatusCode != tc.ExpectedStatus || cookie(post, securechat.SessionCookie) != nil {
						t.Errorf("POST %q = %d, want %d and no session", answer, post.StatusCode, tc.ExpectedStatus)
					}
				}
			}
			recs := h.audits(tc.ExpectedAudit[0])
			if len(recs) <= before {
				t.Fatalf("refusal not audited as %s", tc.ExpectedAudit[0])
			}
			if last := recs[len(recs)-1]; last.Outcome != tc.ExpectedAudit[1] || last.Reason != tc.ExpectedAudit[2] {
				t.Errorf("audit = %s/%s/%q, want %v", last.Action, last.Outcome, last.Reason, tc.ExpectedAudit)
			}
		})
	}
}

func TestSecureVerificationLocksAfterFive(t *testing.T) {
	h := newHarness(t)
	token, conv := h.intake("+12015550104")
	p := h.open(token)
	for i := 1; i <= 4; i++ {
		r := h.post(p, "1990-01-0"+string(rune('0'+i)))
		if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.body, "doesn&#39;t match") || !strings.Contains(r.body, `aria-invalid="true"`) {
			t.Fatalf("wrong answer %d = %d, want the form again with an error:\n%s", i, r.StatusCode, r.body)
		}
	}
	r := h.post(p, "not a date")
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "locked") {
		t.Fatalf("fifth wrong answer = %d, want 403 locked:\n%s", r.StatusCode, r.body)
	}
	if h.locked == nil || h.locked[0] != conv {
		t.Errorf("OnLock told %v, want %s", h.locked, conv)
	}
	// The right answer now changes nothing.
	r = h.post(p, rightDOB)
	if r.StatusCode != http.StatusForbidden || cookie(r, securechat.SessionCookie) != nil {
		t.Errorf("right answer after lock = %d, want 403 and no session", r.StatusCode)
	}
	if h.redeemed(token) {
		t.Error("a locked link was redeemed")
	}
	if c := h.conv(conv); c.Secure != engine.SecurePending {
		t.Errorf("conversation secure = %q, want pending: nothing opened", c.Secure)
	}
	if n := len(h.audits(audit.LinkFailed)); n != 5 {
		t.Errorf("%d link.failed records, want 5", n)
	}
	if !h.hasAudit(audit.LinkLocked, audit.OutcomeDenied, "5 failed verifications") {
		t.Error("the lock is not audited")
	}
	if !h.hasAudit(audit.LinkLocked, audit.OutcomeDenied, "locked") {
		t.Error("the refused right answer is not audited")
	}
}

func TestSecureVerificationRateLimitedPerToken(t *testing.T) {
	h := newHarness(t, func(c *securechat.Config) { c.TokenBurst, c.TokenRate = 2, rate.Every(time.Minute) })
	token, _ := h.intake("+12015550105")
	p := h.open(token)
	for i := range 2 {
		if r := h.post(p, "2000-01-01"); r.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("guess %d = %d, want 422", i, r.StatusCode)
		}
	}
	for i := range 3 {
		r := h.post(p, rightDOB)
		if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
			t.Fatalf("guess %d past the limit = %d (Retry-After %q), want 429", i+3, r.StatusCode, r.Header.Get("Retry-After"))
		}
	}
	if n := len(h.audits(audit.LinkFailed)); n != 3 {
		t.Errorf("%d link.failed records, want 2 wrong answers and one for the run of refusals", n)
	}
	if !h.hasAudit(audit.LinkFailed, audit.OutcomeDenied, "rate limited") {
		t.Error("rate limiting not audited")
	}
	// The refused guesses were not checked: the link is not locked, and
	// once the limit allows, the right answer works.
	h.clock.Advance(2 * time.Minute)
	if r := h.post(p, rightDOB); r.StatusCode != http.StatusSeeOther {
		t.Errorf("right answer after waiting = %d, want 303", r.StatusCode)
	}
}

func TestSecureLinkRateLimitedPerIP(t *testing.T) {
	h := newHarness(t, func(c *securechat.Config) { c.IPBurst, c.IPRate = 3, rate.Every(time.Hour) })
	token, _ := h.intake("+12015550106")
	for i := range 3 {
		if r := h.do(http.MethodGet, "/s/"+token, nil, fromIP("198.51.100.7")); r.StatusCode != http.StatusOK {
			t.Fatalf("request %d = %d", i, r.StatusCode)
		}
	}
	r := h.do(http.MethodGet, "/s/"+token, nil, fromIP("198.51.100.7"))
	if r.StatusCode != http.StatusTooManyRequests {
		t.Errorf("fourth request = %d, want 429", r.StatusCode)
	}
	if r := h.do(http.MethodGet, "/s/"+token, nil, fromIP("198.51.100.8")); r.StatusCode != http.StatusOK {
		t.Errorf("another address = %d, want 200", r.StatusCode)
	}
	recs := h.audits(audit.LinkFailed)
	if len(recs) != 1 || recs[0].Reason != "rate limited" || recs[0].Source != "198.51.100.7" {
		t.Errorf("audit = %+v, want one rate-limit record from the limited address", recs)
	}
}

func TestSecureLinkCrossSiteRefused(t *testing.T) {
	tests := []struct {
		Label  string
		Opts   []reqOpt
		CSRF   string // "" keeps the page's token
		Reason string
	}{
		{Label: "ForeignOrigin", Opts: []reqOpt{withHeader("Sec-Fetch-Site", ""), withHeader("Origin", "https://evil.example")}, Reason: "cross-site request"},
		{Label: "CrossSiteFetch", Opts: []reqOpt{withHeader("Sec-Fetch-Site", "cross-site"), withHeader("Origin", "https://evil.example")}, Reason: "cross-site request"},
		{Label: "SameSiteOtherOrigin", Opts: []reqOpt{withHeader("Sec-Fetch-Site", "same-site"), withHeader("Origin", "https://www.clinic.test")}, Reason: "cross-site request"},
		{Label: "WrongToken", CSRF: "x" + strings.Repeat("A", 42), Reason: "bad csrf token"},
		{Label: "NoCookie", Opts: []reqOpt{func(r *http.Request) { r.Header.Del("Cookie") }}, Reason: "bad csrf token"},
		{Label: "EmptyCookieAndToken", CSRF: "empty", Opts: []reqOpt{func(r *http.Request) { r.Header.Set("Cookie", "__Host-sf_csrf=") }},
			Reason: "bad csrf token"},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			h := newHarness(t)
			token, conv := h.intake("+12015550107")
			p := h.open(token)
			switch tc.CSRF {
			case "":
			case "empty":
				p.csrf = ""
			default:
				p.csrf = tc.CSRF
			}
			r := h.post(p, rightDOB, tc.Opts...)
			if r.StatusCode != http.StatusForbidden || cookie(r, securechat.SessionCookie) != nil {
				t.Errorf("POST = %d, want 403 and no session", r.StatusCode)
			}
			if h.redeemed(token) {
				t.Error("a refused request redeemed the link")
			}
			recs := h.audits(audit.LinkFailed)
			if len(recs) != 1 || recs[0].Reason != tc.Reason || recs[0].Conversation != conv {
				t.Errorf("audit = %+v, want one %q refusal naming the conversation", recs, tc.Reason)
			}
		})
	}
}

func TestSecureLinkOldBrowserNullOrigin(t *testing.T) {
	// Without Sec-Fetch-Site, a form on a no-referrer page sends
	// "Origin: null"; the cookie and token still let it through.
	h := newHarness(t)
	token, _ := h.intake("+12015550108")
	p := h.open(token)
	r := h.post(p, rightDOB, withHeader("Sec-Fetch-Site", ""), withHeader("Origin", "null"))
	if r.StatusCode != http.StatusSeeOther {
		t.Errorf("POST = %d, want 303:\n%s", r.StatusCode, r.body)
	}
}

func TestSecureLinkFormTooLarge(t *testing.T) {
	h := newHarness(t)
	token, _ := h.intake("+12015550109")
	p := h.open(token)
	r := h.do(http.MethodPost, "/s/"+token, url.Values{"csrf": {p.csrf}, "answer": {strings.Repeat("9", 20<<10)}}, withCookies(p.jar))
	if r.StatusCode != http.StatusBadRequest || h.redeemed(token) {
		t.Errorf("oversized form = %d, want 400 and nothing redeemed", r.StatusCode)
	}
}
