package browsertest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

const page = `<!doctype html><meta name="viewport" content="width=device-width, initial-scale=1">
<title>browsertest</title><body style="background:#0b6bcb"><p id="p">hello</p>`

func serve(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestNewOpensPagesInHeadlessChromium(t *testing.T) {
	tests := []struct {
		Label         string
		Options       []Option
		ExpectedSize  [2]int
		ExpectedTouch bool
	}{
		{Label: "Laptop", ExpectedSize: [2]int{1280, 900}},
		{Label: "Window", Options: []Option{Window(800, 600)}, ExpectedSize: [2]int{800, 600}},
		{Label: "Phone", Options: []Option{Phone()}, ExpectedSize: [2]int{390, 844}, ExpectedTouch: true},
	}
	url := serve(t)
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			ctx := New(t, tt.Options...)
			if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("p"))); err != nil {
				t.Fatal(err)
			}
			text, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("p")))
			if err != nil || text != "hello" {
				t.Fatalf("text = %q, %v; want hello", text, err)
			}
			size, err := chromedp.Run(ctx, chromedp.Evaluate[[2]int](`[window.innerWidth, window.innerHeight]`))
			if err != nil || size != tt.ExpectedSize {
				t.Errorf("viewport = %v, %v; want %v", size, err, tt.ExpectedSize)
			}
			touch, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`navigator.maxTouchPoints > 0`))
			if err != nil || touch != tt.ExpectedTouch {
				t.Errorf("touch = %v, %v; want %v", touch, err, tt.ExpectedTouch)
			}
			ua, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
			if err != nil || !strings.Contains(ua, "Headless") {
				t.Errorf("user agent %q (%v) is not a headless browser's", ua, err)
			}
		})
	}
}

func TestScreenshotWritesAPNG(t *testing.T) {
	ctx := New(t, Phone())
	if err := chromedp.Do(ctx, chromedp.Navigate(serve(t)), chromedp.WaitVisible(chromedp.ID("p"))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "deep", "folder", "shot.png")
	if err := Screenshot(ctx, path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("%s is not a PNG", path)
	}
}

// recorder is a testing.TB that notes Skip and Fatal instead of ending the
// test, so the test can check what New does without Chromium.
type recorder struct {
	testing.TB
	skipped, failed string
}

type stopped struct{}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	panic(stopped{})
}
func (r *recorder) Fatal(args ...any) {
	r.failed = fmt.Sprint(args...)
	panic(stopped{})
}

func TestNewWithoutChromium(t *testing.T) {
	tests := []struct {
		Label          string
		CI             string
		ExpectedSkip   bool
		ExpectedFailed bool
	}{
		{Label: "LocalSkips", CI: "", ExpectedSkip: true},
		{Label: "CIFails", CI: "true", ExpectedFailed: true},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir()) // a folder with no chromium in it
			t.Setenv("CI", tt.CI)
			r := &recorder{TB: t}
			func() {
				defer func() {
					if v := recover(); v != nil {
						if _, ok := v.(stopped); !ok {
							panic(v)
						}
					}
				}()
				New(r)
				t.Fatal("New returned without a browser")
			}()
			if (r.skipped != "") != tt.ExpectedSkip || (r.failed != "") != tt.ExpectedFailed {
				t.Fatalf("skipped=%q failed=%q; want skip %v, fail %v", r.skipped, r.failed, tt.ExpectedSkip, tt.ExpectedFailed)
			}
			msg := r.skipped + r.failed
			if !strings.Contains(msg, "NO CHROMIUM") || !strings.Contains(msg, "apt-get install chromium") {
				t.Errorf("message %q does not say loudly how to install chromium", msg)
			}
		})
	}
}
