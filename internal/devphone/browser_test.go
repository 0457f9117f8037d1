package devphone_test

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/safeflow/safeflow/internal/browsertest"
	"github.com/safeflow/safeflow/internal/server"
	"github.com/safeflow/safeflow/securechat"
)

var update = flag.Bool("update", false, "write the screenshot in docs/images/phone-simulator.png")

// serveDev runs `safeflow serve --dev` in-process on the example flows,
// with the secure chat's link issuer, and returns its address.
func serveDev(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := server.Defaults()
	cfg.Addr, cfg.FlowsDir, cfg.Dev = ln.Addr().String(), "../../examples", true
	cfg.DB, cfg.KeysFile = filepath.Join(dir, "safeflow.db"), filepath.Join(dir, "safeflow.keys")
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	issuer, err := securechat.NewIssuer(securechat.Config{PublicURL: cfg.PublicURL, Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler), server.WithLinkIssuer(issuer))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.Close()
	})
	return cfg.PublicURL
}

// clinicSays waits until a clinic bubble on a phone contains text.
func clinicSays(phone, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](`[...document.querySelectorAll("#phone-`+phone+` .msg.clinic")].some(e => e.textContent.includes(`+jsString(text)+`))`,
		chromedp.WithPollingTimeout(20*time.Second))
}

func jsString(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

// typeOn types a message on a phone and sends it with the Send button.
func typeOn(phone, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS("#phone-"+phone+" .compose input"), text),
		chromedp.Click(chromedp.CSS("#phone-"+phone+" .compose button")),
	)
}

func TestPhoneSimulatorInChromium(t *testing.T) {
	ctx := browsertest.New(t, browsertest.Window(1200, 900))
	base := serveDev(t)
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	run("open the page", chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("phone-sms")), chromedp.WaitVisible(chromedp.ID("phone-messenger")))

	// Both phones side by side: same top, SMS on the left.
	type box struct{ Left, Top, Width float64 }
	boxes, err := chromedp.Run(ctx, chromedp.Evaluate[[]box](`["sms", "messenger"].map(p => {
		const r = document.getElementById("phone-" + p).getBoundingClientRect();
		return {Left: r.left, Top: r.top, Width: r.width};
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if sms, msgr := boxes[0], boxes[1]; sms.Top != msgr.Top || sms.Left+sms.Width > msgr.Left {
		t.Errorf("phones not side by side: sms %+v, messenger %+v", sms, msgr)
	}

	// SMS: the bot answers INTAKE.
	run("text INTAKE", typeOn("sms", "INTAKE"), clinicSays("sms", "Are you a new patient with us?"))
	run("answer yes", typeOn("sms", "yes"), clinicSays("sms", "What is your first name?"))
	run("answer Ann", typeOn("sms", "Ann"), clinicSays("sms", "And your last name?"))

	// Messenger: a choice question shows quick replies; tapping one answers.
	run("text TRIAGE", typeOn("messenger", "TRIAGE"), clinicSays("messenger", "Who is this about?"))
	run("wait for quick replies", chromedp.WaitVisible(chromedp.CSS("#phone-messenger .quick button")))
	labels, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#phone-messenger .quick button")].map(b => b.textContent)`))
	if err != nil || strings.Join(labels, "|") != "Me|My child|Someone else" {
		t.Fatalf("quick replies %q, %v; want Me, My child, Someone else", labels, err)
	}
	run("tap Me", chromedp.Click(chromedp.CSS(`#phone-messenger .quick button:first-child`)),
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll("#phone-messenger .msg.patient")].some(e => e.textContent === "Me")`))

	// The flow moves to a sensitive step: the secure link is an anchor.
	run("wait for the link", chromedp.WaitVisible(chromedp.CSS("#phone-messenger a.secure-link")))
	link, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(() => {
		const a = document.querySelector("#phone-messenger a.secure-link");
		return {href: a.getAttribute("href"), target: a.target, rel: a.rel, text: a.textContent};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link["href"], base+"/s/") || len(link["href"]) < len(base+"/s/")+40 {
		t.Errorf("link href %q; want %s/s/ and a token", link["href"], base)
	}
	if link["target"] != "_blank" || !strings.Contains(link["rel"], "noreferrer") || link["text"] != link["href"] {
		t.Errorf("link %v; want it to open in a new tab, without referrer, showing its address", link)
	}
	left, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#phone-messenger .quick button").length`))
	if err != nil || left != 0 {
		t.Errorf("%d quick replies still shown after the answer", left)
	}
	run("let the bubbles settle", chromedp.Poll[chromedp.Void](`document.getAnimations().every(a => a.playState === "finished")`))
	shot := filepath.Join(t.TempDir(), "phone-simulator.png")
	if *update {
		shot = "../../docs/images/phone-simulator.png"
	}
	if err := browsertest.Screenshot(ctx, shot); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)

	// Message text is shown as text, never as HTML.
	run("send markup", typeOn("sms", "<b>bold</b>"),
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll("#phone-sms .msg.patient")].some(e => e.textContent === "<b>bold</b>")`))
	bold, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#phone-sms .msg b").length`))
	if err != nil || bold != 0 {
		t.Errorf("typed markup became %d elements", bold)
	}

	// On a phone's screen the two phones stack, and nothing scrolls sideways.
	run("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	fits, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const s = document.getElementById("phone-sms").getBoundingClientRect();
		const m = document.getElementById("phone-messenger").getBoundingClientRect();
		return document.documentElement.scrollWidth <= window.innerWidth && m.top >= s.bottom && s.right <= window.innerWidth;
	})()`))
	if err != nil || !fits {
		t.Errorf("on a 390px screen the phones do not stack within the width (%v)", err)
	}
	if err := browsertest.Screenshot(ctx, filepath.Join(t.TempDir(), "phone-simulator-mobile.png")); err != nil {
		t.Fatal(err)
	}
}
