// Package browsertest starts Debian's Chromium, headless, for tests that
// drive real pages with chromedp. Each browser gets a fresh profile under
// the test's temporary folder and stops when the test ends.
//
// Without Chromium the tests skip, loudly; in CI (CI=true) they fail, so
// a runner that lost its browser cannot pass by skipping.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Names of the Chromium binary, in the order they are looked up.
var binaries = []string{"chromium", "chromium-browser"}

// Timeout bounds every action run on a context from New, so that a page
// that never shows what a test waits for fails the test instead of hanging
// it.
const Timeout = 2 * time.Minute

type config struct {
	width, height int
	phone         bool
}

// Option changes the browser New starts.
type Option func(*config)

// Window sets the size of the page's viewport in CSS pixels (the default
// is 1280×900, a laptop screen).
func Window(width, height int) Option {
	return func(c *config) { c.width, c.height = width, height }
}

// Phone makes the page a phone's: a 390×844 viewport at a device scale of
// 3 (an iPhone 13's), with mobile layout and touch events.
func Phone() Option {
	return func(c *config) { c.width, c.height, c.phone = 390, 844, true }
}

// New starts a headless Chromium for t and returns a chromedp context on a
// tab of it. The browser stops, and its profile is removed, when t ends.
//
// When no Chromium is installed New skips t, unless the environment has
// CI=true: then it fails t.
func New(t testing.TB, opts ...Option) context.Context {
	t.Helper()
	cfg := config{width: 1280, height: 900}
	for _, o := range opts {
		o(&cfg)
	}
	path := find()
	if path == "" {
		msg := "browsertest: NO CHROMIUM FOUND (looked for " + fmt.Sprint(binaries) +
			"); browser tests did not run. Install it with: apt-get install chromium"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	profile := filepath.Join(t.TempDir(), "chromium-profile")
	alloc, stopAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // containers and CI runners have no user namespaces
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true), // /dev/shm is tiny in containers
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(cfg.width, cfg.height),
	)
	browser, stopBrowser := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		stopBrowser()
		stopAlloc()
		// Chromium's helpers can write to the profile for a moment after
		// the browser exits; t.TempDir's own removal would then fail.
		removeAll(profile)
	})
	// The first Run starts the browser and ties it to this context: it must
	// be one without a deadline.
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("browsertest: start %s: %v", path, err)
	}
	// The window size flag leaves the page less than the window's height
	// (headless keeps room for browser chrome); set the viewport exactly.
	viewport := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
	if cfg.phone {
		viewport = []chromedp.EmulateViewportOption{chromedp.EmulateScale(3), chromedp.EmulateMobile,
			chromedp.EmulateTouch, chromedp.EmulatePortrait}
	}
	if err := chromedp.Do(browser, chromedp.EmulateViewport(int64(cfg.width), int64(cfg.height), viewport...)); err != nil {
		t.Fatalf("browsertest: set the viewport: %v", err)
	}
	ctx, cancel := context.WithTimeout(browser, Timeout)
	t.Cleanup(cancel)
	return ctx
}

// Screenshot saves what the tab of ctx shows, as a PNG file at path; the
// folder is created if needed.
func Screenshot(ctx context.Context, path string) error {
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	return os.WriteFile(path, png, 0o644)
}

// find returns the path of Chromium, or "" when it is not installed.
func find() string {
	for _, name := range binaries {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func removeAll(dir string) {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
