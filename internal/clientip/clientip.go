// Package clientip decides which address a request comes from. It trusts the
// TCP peer, and reads X-Forwarded-For only when the peer is a configured
// trusted proxy — then it takes the right-most entry that is not itself a
// trusted proxy. With no trusted proxies a forged header changes nothing,
// so no client can dodge a per-IP limit by lying about its address.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver maps requests to client addresses.
type Resolver struct {
	trusted []netip.Prefix
}

// Parse builds a Resolver from a comma-separated list of CIDRs or addresses
// (an address alone means a /32 or /128). Empty means trust no proxy.
func Parse(list string) (*Resolver, error) {
	r := &Resolver{}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			r.trusted = append(r.trusted, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("invalid trusted proxy %q: want a CIDR or an IP address", f)
		}
		a = a.Unmap()
		r.trusted = append(r.trusted, netip.PrefixFrom(a, a.BitLen()))
	}
	return r, nil
}

// Trusted reports whether a is a trusted proxy.
func (r *Resolver) Trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the client's address for req.
func (r *Resolver) ClientIP(req *http.Request) netip.Addr {
	peer := PeerAddr(req.RemoteAddr)
	if !peer.IsValid() || len(r.trusted) == 0 || !r.Trusted(peer) {
		return peer
	}
	return r.fromForwarded(peer, req.Header.Values("X-Forwarded-For"))
}

// fromForwarded walks the X-Forwarded-For chain right to left from a trusted
// peer and returns the first address that is not a trusted proxy. A malformed
// entry stops the walk: the last trusted hop is the best we know.
func (r *Resolver) fromForwarded(peer netip.Addr, headers []string) netip.Addr {
	last := peer
	for i := len(headers) - 1; i >= 0; i-- {
		entries := strings.Split(headers[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			e := strings.TrimSpace(entries[j])
			if e == "" {
				continue
			}
			a := parseEntry(e)
			if !a.IsValid() {
				return last
			}
			if !r.Trusted(a) {
				return a
			}
			last = a
		}
	}
	return last
}

// parseEntry reads one X-Forwarded-For entry: an address, possibly with a
// port, possibly bracketed.
func parseEntry(e string) netip.Addr {
	if a, err := netip.ParseAddr(e); err == nil {
		return a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(e); err == nil {
		return ap.Addr().Unmap()
	}
	if strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]") {
		if a, err := netip.ParseAddr(e[1 : len(e)-1]); err == nil {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// PeerAddr parses a net/http RemoteAddr ("ip:port").
func PeerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// IPv6Prefix is how many leading bits of an IPv6 address the per-client
// limits treat as one client: a customer usually holds a whole /64 and could
// otherwise take a fresh address for every request or stream.
const IPv6Prefix = 64

// Bucket is the address the per-client limits count a under: an IPv4
// address itself, an IPv6 address's /64 (its first address). The API's
// request limits and the streamers' per-IP stream cap both use it, so a
// client is one client everywhere.
func Bucket(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.Prefix(IPv6Prefix); err == nil {
			return p.Addr()
		}
	}
	return a
}
