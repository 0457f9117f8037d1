package securechat

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/time/rate"
)

// Config configures the secure web chat. The zero value of every field but
// PublicURL is a sensible default.
type Config struct {
	// PublicURL is where patients reach this server, such as
	// https://chat.sunnyclinic.example: links are PublicURL + "/s/" + token,
	// and cross-site checks compare request origins with it. It must be
	// https, unless Dev is set, and have no path, query or fragment.
	PublicURL string
	// Dev allows an http PublicURL, for trying safeflow on one machine.
	Dev bool

	// LinkTTL is how long a link lasts when the flow does not say: 15 minutes.
	LinkTTL time.Duration
	// IdleTimeout ends a session after this long without activity: 5 minutes.
	IdleTimeout time.Duration
	// SessionLimit ends a session this long after it opened, whatever the
	// activity: 30 minutes.
	SessionLimit time.Duration
	// MaxFailures is how many wrong answers to the flow's knowledge check
	// lock a link: 5.
	MaxFailures int
	// FinishedShown is how long the page keeps a finished secure part on
	// the screen, so that the patient sees the last answer arrive, before it
	// takes the conversation off: 1 minute. The session itself ends as the
	// secure part finishes.
	FinishedShown time.Duration

	// TokenRate and TokenBurst limit answers to the knowledge check per
	// link: 3 at once, then one every 5 seconds.
	TokenRate  rate.Limit
	TokenBurst int
	// IPRate and IPBurst limit requests for links per client address: 20
	// at once, then one every 3 seconds.
	IPRate  rate.Limit
	IPBurst int

	// Poll is how often an open page's stream checks its session and the
	// store even when nothing woke it: 5 seconds.
	Poll time.Duration
	// Sweep is how often Run ends timed-out sessions: 30 seconds.
	Sweep time.Duration
	// ListenDSN is a postgres:// URL: when set, Run listens there for
	// messages written on other nodes. Leave it empty on a single node.
	ListenDSN string

	// ClientIP returns the address a request came from, for rate limits and
	// the audit log. The default is the host of RemoteAddr; behind a proxy,
	// pass one that trusts the proxy's header.
	ClientIP func(*http.Request) string
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Log receives operational messages, never message text, tokens,
	// session ids or answers.
	Log *slog.Logger
	// OnLock, when set, is told the conversation whose link has just locked
	// after too many failed checks, so that the clinic can follow up.
	OnLock func(conversationID string)
}

// withDefaults fills in the defaults and checks PublicURL. It returns the
// public origin (scheme://host).
func (c Config) withDefaults() (Config, *url.URL, error) {
	if c.LinkTTL <= 0 {
		c.LinkTTL = 15 * time.Minute
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.SessionLimit <= 0 {
		c.SessionLimit = 30 * time.Minute
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 5
	}
	if c.FinishedShown <= 0 {
		c.FinishedShown = time.Minute
	}
	if c.TokenRate <= 0 {
		c.TokenRate = rate.Every(5 * time.Second)
	}
	if c.TokenBurst <= 0 {
		c.TokenBurst = 3
	}
	if c.IPRate <= 0 {
		c.IPRate = rate.Every(3 * time.Second)
	}
	if c.IPBurst <= 0 {
		c.IPBurst = 20
	}
	if c.Poll <= 0 {
		c.Poll = 5 * time.Second
	}
	if c.Sweep <= 0 {
		c.Sweep = 30 * time.Second
	}
	if c.ClientIP == nil {
		c.ClientIP = remoteHost
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	u, err := publicURL(c.PublicURL, c.Dev)
	return c, u, err
}

// publicURL parses and checks the configured public base URL.
func publicURL(raw string, dev bool) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("secure chat: no public URL configured; set it to the https:// address patients reach this server at")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("secure chat: the public URL %q is not a URL: %w", raw, err)
	}
	switch {
	case u.Host == "":
		return nil, fmt.Errorf("secure chat: the public URL %q has no host", raw)
	case u.Scheme != "https" && !(dev && u.Scheme == "http"):
		return nil, fmt.Errorf("secure chat: the public URL %q must start with https:// (http:// is allowed only in dev mode)", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return nil, fmt.Errorf("secure chat: the public URL %q must be only a scheme and a host, such as https://chat.example.org", raw)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// remoteHost is the default ClientIP: the host part of RemoteAddr.
func remoteHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
