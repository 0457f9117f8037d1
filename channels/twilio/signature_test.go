package twilio_test

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/safeflow/safeflow/channels/twilio"
)

// vectorsDir is where the shared test vectors live: $SAFEFLOW_VECTORS, the
// shared folder next to the checkout, or the repository's copy of it.
func vectorsDir() string {
	if d := os.Getenv("SAFEFLOW_VECTORS"); d != "" {
		return d
	}
	shared := filepath.Join("..", "..", "..", "shared", "vectors")
	if _, err := os.Stat(shared); err == nil {
		return shared
	}
	return filepath.Join("..", "..", "testdata", "vectors") // the repository's copy
}

type vectorFile struct {
	Cases []struct {
		Name      string     `json:"name"`
		AuthToken string     `json:"auth_token"`
		URL       string     `json:"url"`
		Params    [][]string `json:"params"`
		Signature string     `json:"signature"`
	} `json:"cases"`
}

func TestSignatureVectors(t *testing.T) {
	path := filepath.Join(vectorsDir(), "twilio-signature.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the Twilio signature vectors are required (set SAFEFLOW_VECTORS to their folder): %v", err)
	}
	var vf vectorFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	if len(vf.Cases) == 0 {
		t.Fatalf("%s has no cases", path)
	}
	for _, c := range vf.Cases {
		t.Run(c.Name, func(t *testing.T) {
			params := url.Values{}
			for _, p := range c.Params {
				if len(p) != 2 {
					t.Fatalf("param %v is not a [name, value] pair", p)
				}
				params.Add(p[0], p[1])
			}
			if got := twilio.Signature(c.AuthToken, c.URL, params); got != c.Signature {
				t.Errorf("Signature() = %q, want %q", got, c.Signature)
			}
			if !twilio.Valid(c.AuthToken, c.URL, params, c.Signature) {
				t.Errorf("Valid() = false for the vector's own signature")
			}
			if twilio.Valid(c.AuthToken+"x", c.URL, params, c.Signature) {
				t.Errorf("Valid() = true under another auth token")
			}
		})
	}
}

func TestValidDefaultPort(t *testing.T) {
	const token = "12345"
	params := url.Values{"From": {"+14155550100"}, "Body": {"hi"}}
	tests := []struct {
		Label         string
		SignedURL     string
		CheckedURL    string
		ExpectedValid bool
	}{
		{"https signed with :443, checked without", "https://clinic.example.com:443/webhooks/twilio", "https://clinic.example.com/webhooks/twilio", true},
		{"https signed without port, checked with :443", "https://clinic.example.com/webhooks/twilio", "https://clinic.example.com:443/webhooks/twilio", true},
		{"http signed with :80, checked without", "http://clinic.example.com:80/hook?a=1", "http://clinic.example.com/hook?a=1", true},
		{"http signed without port, checked with :80", "http://clinic.example.com/hook", "http://clinic.example.com:80/hook", true},
		{"port before a query, no path", "https://clinic.example.com:443?a=1", "https://clinic.example.com?a=1", true},
		{"IPv6 literal gains a port", "https://[2001:db8::1]:443/hook", "https://[2001:db8::1]/hook", true},
		{"userinfo is kept", "https://u:p@clinic.example.com:443/hook", "https://u:p@clinic.example.com/hook", true},
		{"https's port is not http's", "https://clinic.example.com:80/hook", "https://clinic.example.com/hook", false},
		{"a non-default port is not dropped", "https://clinic.example.com:8443/hook", "https://clinic.example.com/hook", false},
		{"another host", "https://evil.example.com/hook", "https://clinic.example.com/hook", false},
		{"another path", "https://clinic.example.com/other", "https://clinic.example.com/hook", false},
		{"scheme matters", "http://clinic.example.com/hook", "https://clinic.example.com/hook", false},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			sig := twilio.Signature(token, tc.SignedURL, params)
			if got := twilio.Valid(token, tc.CheckedURL, params, sig); got != tc.ExpectedValid {
				t.Errorf("Valid() = %v, want %v", got, tc.ExpectedValid)
			}
		})
	}
}

func TestValidRefuses(t *testing.T) {
	const u = "https://clinic.example.com/webhooks/twilio"
	params := url.Values{"From": {"+14155550100"}, "Body": {"hi"}, "MessageSid": {"SM1"}}
	good := twilio.Signature("secret", u, params)
	tests := []struct {
		Label  string
		Token  string
		Params url.Values
		Sig    string
	}{
		{"empty signature", "secret", params, ""},
		{"empty auth token, even with the empty-key HMAC", "", params, twilio.Signature("", u, params)},
		{"a parameter added", "secret", url.Values{"From": {"+14155550100"}, "Body": {"hi"}, "MessageSid": {"SM1"}, "X": {"1"}}, good},
		{"a parameter removed", "secret", url.Values{"From": {"+14155550100"}, "Body": {"hi"}}, good},
		{"a value changed", "secret", url.Values{"From": {"+14155550100"}, "Body": {"ho"}, "MessageSid": {"SM1"}}, good},
		{"a value repeated", "secret", url.Values{"From": {"+14155550100"}, "Body": {"hi", "hi"}, "MessageSid": {"SM1"}}, good},
		{"not base64", "secret", params, "!!!"},
		{"truncated", "secret", params, good[:len(good)-2]},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			if twilio.Valid(tc.Token, u, tc.Params, tc.Sig) {
				t.Error("Valid() = true, want false")
			}
		})
	}
}

func FuzzValid(f *testing.F) {
	f.Add("https://clinic.example.com:443/hook?x=1", "Body", "hi")
	f.Add("http://[::1]:80", "", "")
	f.Add("https://@:", "a", "b")
	f.Add("https://a@b@c:443#frag", "a", "b")
	f.Fuzz(func(t *testing.T, u, name, value string) {
		params := url.Values{name: {value}}
		sig := twilio.Signature("token", u, params)
		if !twilio.Valid("token", u, params, sig) {
			t.Fatalf("Valid rejects its own signature for %q", u)
		}
	})
}
