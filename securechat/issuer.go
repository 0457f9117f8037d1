package securechat

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"time"

	"github.com/safeflow/safeflow/engine"
)

// tokenBytes is the size of link tokens and session ids: 256 bits.
const tokenBytes = 32

// tokenLen is the length of a token in base64url without padding.
var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

// Issuer issues one-time secure links. It implements engine.LinkIssuer.
type Issuer struct {
	base *url.URL
	ttl  time.Duration
	now  func() time.Time
}

var _ engine.LinkIssuer = (*Issuer)(nil)

// NewIssuer returns an issuer of links under cfg.PublicURL. It fails when
// the URL is missing, not https (outside dev mode) or has a path.
func NewIssuer(cfg Config) (*Issuer, error) {
	cfg, base, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Issuer{base: base, ttl: cfg.LinkTTL, now: cfg.Now}, nil
}

// IssueLink implements engine.LinkIssuer: it makes a 256-bit token from
// crypto/rand, stores only its SHA-256, bound to the conversation and its
// contact and valid for ttl (or the configured default when ttl is not
// positive), and returns the link.
func (i *Issuer) IssueLink(ctx context.Context, tx engine.Tx, conv *engine.Conversation, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = i.ttl
	}
	token := newToken()
	now := i.now()
	err := tx.SaveLink(ctx, engine.SecureLink{TokenHash: hashToken(token), ConversationID: conv.ID, ContactID: conv.ContactID,
		Created: now, Expires: now.Add(ttl)})
	if err != nil {
		return "", fmt.Errorf("save secure link: %w", err)
	}
	return i.base.JoinPath("s", token).String(), nil
}

// newToken returns 256 random bits in base64url. crypto/rand.Read never
// fails: it crashes the program rather than return predictable bytes.
func newToken() string {
	b := make([]byte, tokenBytes)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is what is stored of a token or session id.
func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// wellFormed reports whether s looks like a token newToken made, so that
// junk is refused without a database lookup.
func wellFormed(s string) bool {
	if len(s) != tokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
