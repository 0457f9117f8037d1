package server

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"
)

// clientIP finds a request's client address. Only a proxy listed in
// trusted may speak for the client, through X-Forwarded-For: the client is
// the rightmost address in it that is not itself a trusted proxy. Anyone
// else's header is ignored, so a client cannot choose the address that rate
// limits and the audit log see.
type clientIP struct{ trusted []netip.Prefix }

// parseTrustedProxies reads a comma-separated list of CIDRs or addresses.
func parseTrustedProxies(list string) (clientIP, error) {
	var c clientIP
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return c, fmt.Errorf("trusted proxies: %q is not an address or CIDR", f)
			}
			c.trusted = append(c.trusted, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return c, fmt.Errorf("trusted proxies: %q is not an address or CIDR", f)
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	return c, nil
}

func (c clientIP) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// of returns the client address of r.
func (c clientIP) of(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !c.isTrusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return host // a malformed chain: trust nothing beyond the proxy
		}
		if !c.isTrusted(a) {
			return a.Unmap().String()
		}
	}
	return host
}

// behindProxy is middleware that, for a request a trusted proxy forwards,
// sets RemoteAddr to the client's address (with port 0), as of finds it.
// Everything after it, the channels' audited source address above all,
// then sees the provider or the patient instead of the proxy.
func (c clientIP) behindProxy(next echo.HandlerFunc) echo.HandlerFunc {
	return func(ctx echo.Context) error {
		r := ctx.Request()
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			if client := c.of(r); client != host {
				r.RemoteAddr = net.JoinHostPort(client, "0")
			}
		}
		return next(ctx)
	}
}
