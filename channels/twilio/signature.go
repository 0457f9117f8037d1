package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// Signature returns the X-Twilio-Signature Twilio sends with a webhook to
// url carrying the POST parameters params: the base64 HMAC-SHA1, under the
// auth token, of the URL followed by every parameter's name and value, names
// sorted and the values of a repeated name sorted too.
func Signature(authToken, url string, params url.Values) string {
	mac := hmac.New(sha1.New, []byte(authToken))
	io.WriteString(mac, url)
	for _, name := range slices.Sorted(maps.Keys(params)) {
		values := slices.Clone(params[name])
		slices.Sort(values)
		for _, v := range values {
			io.WriteString(mac, name)
			io.WriteString(mac, v)
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Valid reports whether sig is Twilio's signature of a request to url with
// the POST parameters params. Like Twilio's own SDKs it also accepts the
// signature of the same URL with the scheme's default port (:443 for https,
// :80 for http) added when url has none, or removed when url has it: Twilio
// signs the URL exactly as it was configured in its console, which may or
// may not spell the port out. An empty auth token or signature is never
// valid, so a missing secret cannot turn the check into a formality.
func Valid(authToken, url string, params url.Values, sig string) bool {
	if authToken == "" || sig == "" {
		return false
	}
	if hmac.Equal([]byte(Signature(authToken, url, params)), []byte(sig)) {
		return true
	}
	if other, ok := toggleDefaultPort(url); ok {
		return hmac.Equal([]byte(Signature(authToken, other, params)), []byte(sig))
	}
	return false
}

// toggleDefaultPort returns raw with its scheme's default port added when
// the authority has no port, or removed when it has exactly that port. The
// rest of the URL is kept byte for byte: re-encoding it through net/url
// could change the escaping and so the signature.
func toggleDefaultPort(raw string) (string, bool) {
	i := strings.Index(raw, "://")
	if i < 0 {
		return "", false
	}
	var port string
	switch strings.ToLower(raw[:i]) {
	case "https":
		port = "443"
	case "http":
		port = "80"
	default:
		return "", false
	}
	start := i + len("://")
	end := len(raw)
	if j := strings.IndexAny(raw[start:], "/?#"); j >= 0 {
		end = start + j
	}
	authority := raw[start:end]
	hostStart := start
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		hostStart = start + at + 1
	}
	host := raw[hostStart:end]
	if host == "" {
		return "", false
	}
	// An IPv6 literal has colons of its own; a port can only follow "]".
	colon := strings.LastIndexByte(host, ':')
	if bracket := strings.LastIndexByte(host, ']'); bracket >= 0 && colon < bracket {
		colon = -1
	}
	if colon < 0 {
		return raw[:end] + ":" + port + raw[end:], true
	}
	if host[colon+1:] == port {
		return raw[:hostStart+colon] + raw[end:], true
	}
	return "", false
}
