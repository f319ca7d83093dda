package clientip

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestClientIP(t *testing.T) {
	tests := []struct {
		name, trusted, peer string
		xff                 []string
		want                string
	}{
		{"no proxies, header ignored", "", "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"untrusted peer, header ignored", "10.0.0.0/8", "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"trusted peer, single entry", "10.0.0.0/8", "10.1.2.3:80", []string{"198.51.100.7"}, "198.51.100.7"},
		{"right-most untrusted wins over forged left entries", "10.0.0.0/8", "10.1.2.3:80", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"trusted hops skipped", "10.0.0.0/8", "10.1.2.3:80", []string{"198.51.100.7, 10.9.9.9"}, "198.51.100.7"},
		{"several headers in order", "10.0.0.0/8", "10.1.2.3:80", []string{"6.6.6.6", "198.51.100.7, 10.0.0.1"}, "198.51.100.7"},
		{"all trusted: left-most", "10.0.0.0/8", "10.1.2.3:80", []string{"10.0.0.5, 10.0.0.6"}, "10.0.0.5"},
		{"no header: peer", "10.0.0.0/8", "10.1.2.3:80", nil, "10.1.2.3"},
		{"garbage stops at last trusted", "10.0.0.0/8", "10.1.2.3:80", []string{"1.1.1.1, nonsense"}, "10.1.2.3"},
		{"entry with port", "10.0.0.0/8", "10.1.2.3:80", []string{"198.51.100.7:1234"}, "198.51.100.7"},
		{"ipv6 peer trusted", "::1", "[::1]:80", []string{"2001:db8::1"}, "2001:db8::1"},
		{"ipv4-mapped peer", "127.0.0.1", "[::ffff:127.0.0.1]:80", []string{"198.51.100.7"}, "198.51.100.7"},
		{"single address trusted", "10.1.2.3", "10.1.2.4:80", []string{"198.51.100.7"}, "10.1.2.4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse(tt.trusted)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tt.peer
			for _, h := range tt.xff {
				req.Header.Add("X-Forwarded-For", h)
			}
			if got := r.ClientIP(req).String(); got != tt.want {
				t.Fatalf("ClientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	for _, s := range []string{"10.0.0.0/33", "nope", "1.2.3"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

// FuzzClientIP checks the resolver against a model of the request's path:
// a client (anywhere outside the trusted proxies) sends a request with any
// X-Forwarded-For it likes, across any number of header lines; zero or more
// trusted proxies in turn append the address that connected to them (as a
// new line or onto the last one, with or without a port) and the last of them
// is the TCP peer. Whatever the client wrote, it is counted under its own
// address: it can never choose another. With an untrusted peer the header
// never matters at all.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.0/8", "10.1.2.3:80", "1.2.3.4, 10.0.0.1", []byte{198, 51, 100, 7}, uint8(2), []byte{0, 1, 2, 3, 4, 5, 6, 7}, uint8(0))
	f.Add("", "[::1]:1", "[::1]:80,,", []byte{1, 2, 3, 4}, uint8(0), []byte{}, uint8(1))
	f.Add("10.0.0.0/8, 2001:db8::/32", "x", "10.0.0.1\n 6.6.6.6, [2001:db8::1]:5, nonsense", []byte{0x20, 0x01, 0x0d, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(3), []byte{1, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1}, uint8(6))
	f.Add("0.0.0.0/0", "", "127.0.0.1", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1}, uint8(1), []byte{5}, uint8(3))
	f.Fuzz(func(t *testing.T, trusted, peer, xff string, client []byte, hops uint8, seed []byte, style uint8) {
		r, err := Parse(trusted)
		if err != nil {
			return
		}
		// Without a trusted peer the header must never matter.
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = peer
		req.Header.Set("X-Forwarded-For", xff)
		if p := PeerAddr(peer); !p.IsValid() || !r.Trusted(p) {
			if got := r.ClientIP(req); got != p {
				t.Fatalf("untrusted peer %q: got %v, want the peer", peer, got)
			}
		}

		// The client, outside the trusted proxies, and what it forges.
		var c netip.Addr
		switch len(client) {
		case 4:
			c = netip.AddrFrom4([4]byte(client))
		case 16:
			c = netip.AddrFrom16([16]byte(client))
		default:
			return
		}
		c = c.Unmap()
		if r.Trusted(c) {
			return
		}
		var lines []string
		if xff != "" {
			lines = strings.Split(xff, "\n") // the client may send several header lines
		}
		// The proxies: each appends the address that connected to it.
		if len(r.trusted) == 0 {
			hops = 0
		}
		from := c
		for h := 0; h < int(hops%5); h++ {
			hop := addrIn(r.trusted[int(byteAt(seed, 17*h))%len(r.trusted)], seed, 17*h+1)
			if !r.Trusted(hop) {
				return // a prefix no unmapped address is in (::ffff:0:0/96): no proxy can be there
			}
			entry := from.String()
			if style>>(h%4)&1 == 1 {
				entry = netip.AddrPortFrom(from, 40000+uint16(h)).String()
			}
			if style>>(4+h%4)&1 == 1 || len(lines) == 0 {
				lines = append(lines, entry)
			} else {
				lines[len(lines)-1] += ", " + entry
			}
			from = hop
		}
		req = httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = netip.AddrPortFrom(from, 443).String()
		for _, l := range lines {
			req.Header.Add("X-Forwarded-For", l)
		}
		if got := r.ClientIP(req); got != c {
			t.Fatalf("client %v behind %d trusted proxies (%q), X-Forwarded-For %q: counted as %v", c, hops%5, trusted, lines, got)
		}
	})
}

// byteAt is seed[i], or 0 beyond its end.
func byteAt(seed []byte, i int) byte {
	if i < len(seed) {
		return seed[i]
	}
	return 0
}

// addrIn is an address of p, its host bits taken from seed[i:].
func addrIn(p netip.Prefix, seed []byte, i int) netip.Addr {
	b := p.Addr().AsSlice()
	for k := range b {
		bit := k * 8
		if bit+8 <= p.Bits() {
			continue
		}
		keep := byte(0)
		if bit < p.Bits() {
			keep = ^byte(0) << (8 - (p.Bits() - bit))
		}
		b[k] = b[k]&keep | byteAt(seed, i+k)&^keep
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
