// Package messenger connects safeflow to Facebook Messenger: a webhook
// handler that checks Meta's signature and hands each patient message to
// the engine, and a Sender that delivers replies through the Send API.
//
// Meta can read everything that travels on Messenger, and its policy does
// not allow patient data there (SECURITY.md #4). This package therefore
// never fetches attachments, refuses to send anything marked sensitive, and
// keeps page tokens, PSIDs and message text out of every error it returns.
//
// The package knows nothing of the web framework: Handler is a plain
// net/http handler that internal/server mounts at Path.
package messenger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
)

// Path is where the webhook is usually mounted.
const Path = "/webhooks/messenger"

// SignatureHeader carries Meta's HMAC-SHA256 of the raw request body.
const SignatureHeader = "X-Hub-Signature-256"

// Defaults for the Config fields left empty.
const (
	DefaultAPIURL     = "https://graph.facebook.com"
	DefaultAPIVersion = "v21.0"
	DefaultMaxBody    = 256 << 10
)

// Config holds the settings of a Messenger Page. The secrets come from the
// environment or a file (SECURITY.md #15), never from the repository.
type Config struct {
	// AppSecret is the Meta app's secret, the key of the webhook signature.
	AppSecret string
	// VerifyToken is the string typed into the webhook settings in the Meta
	// app dashboard; Meta sends it back when it verifies the webhook URL.
	VerifyToken string
	// PageToken is the Page access token the Send API needs.
	PageToken string
	// APIURL is the Graph API base URL; tests point it at messengertest.
	APIURL string
	// APIVersion is the Graph API version in request paths, such as "v21.0".
	APIVersion string
	// MaxBody is the largest webhook body accepted, in bytes.
	MaxBody int64
	// HumanAgent says the Page has Meta's approval for the Human Agent
	// feature, so that replies written by staff may use the HUMAN_AGENT
	// message tag up to seven days after the patient's last message.
	HumanAgent bool
	// Logger receives a line for each rejected webhook (reason only, never
	// the body). Nil discards them.
	Logger *slog.Logger
}

// withDefaults returns c with its empty fields filled in.
func (c Config) withDefaults() Config {
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	c.APIURL = strings.TrimRight(c.APIURL, "/")
	if c.APIVersion == "" {
		c.APIVersion = DefaultAPIVersion
	}
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Signature returns the X-Hub-Signature-256 value Meta sends with body:
// "sha256=" followed by the lower-case hex HMAC-SHA256 of the raw bytes
// under the app secret.
func Signature(appSecret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Valid reports whether header is a correct X-Hub-Signature-256 for body.
// The comparison takes constant time. An empty app secret never validates:
// anyone can compute an HMAC under an empty key, so a missing setting must
// fail closed rather than accept forged webhooks. Hex digits may be in
// either case.
func Valid(appSecret string, body []byte, header string) bool {
	if appSecret == "" {
		return false
	}
	hexMAC, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(hexMAC) != 2*sha256.Size {
		return false
	}
	got, err := hex.DecodeString(hexMAC)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}
