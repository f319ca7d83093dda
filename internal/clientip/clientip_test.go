package clientip

import (
	"net/http/httptest"
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

func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.0/8", "10.1.2.3:80", "1.2.3.4, 10.0.0.1")
	f.Add("", "[::1]:1", "[::1]:80,,")
	f.Fuzz(func(t *testing.T, trusted, peer, xff string) {
		r, err := Parse(trusted)
		if err != nil {
			return
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = peer
		req.Header.Set("X-Forwarded-For", xff)
		got := r.ClientIP(req)
		p := PeerAddr(peer)
		// Without a trusted peer the header must never matter.
		if !p.IsValid() || !r.Trusted(p) {
			if got != p {
				t.Fatalf("untrusted peer %q: got %v, want the peer", peer, got)
			}
		}
	})
}
