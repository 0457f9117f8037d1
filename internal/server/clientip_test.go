package server

import (
	"net/http/httptest"
	"testing"
)

func TestClientIP(t *testing.T) {
	tests := []struct {
		Label    string
		Trusted  string
		Remote   string
		XFF      []string
		Expected string
	}{
		{"no proxy trusted: the header is ignored", "", "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"an untrusted peer cannot choose its address", "10.0.0.0/8", "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"a trusted proxy speaks for the client", "10.0.0.0/8", "10.1.2.3:443", []string{"198.51.100.1"}, "198.51.100.1"},
		{"the rightmost untrusted hop wins over a forged left part", "10.0.0.0/8", "10.1.2.3:443", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"chained trusted proxies are skipped", "10.0.0.0/8, 192.0.2.5", "10.1.2.3:443", []string{"198.51.100.9", "192.0.2.5"}, "198.51.100.9"},
		{"a malformed hop stops at the proxy", "10.0.0.0/8", "10.1.2.3:443", []string{"not-an-ip"}, "10.1.2.3"},
		{"a trusted proxy without the header", "10.0.0.0/8", "10.1.2.3:443", nil, "10.1.2.3"},
		{"IPv6 client behind a proxy", "10.0.0.0/8", "10.1.2.3:443", []string{"2001:db8::1"}, "2001:db8::1"},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			c, err := parseTrustedProxies(tc.Trusted)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/s/chat", nil)
			r.RemoteAddr = tc.Remote
			for _, v := range tc.XFF {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := c.of(r); got != tc.Expected {
				t.Errorf("client %q, want %q", got, tc.Expected)
			}
		})
	}
	if _, err := parseTrustedProxies("10.0.0.0/33"); err == nil {
		t.Error("a bad CIDR was accepted")
	}
	if _, err := parseTrustedProxies("proxy.local"); err == nil {
		t.Error("a host name was accepted as a trusted proxy")
	}
}
