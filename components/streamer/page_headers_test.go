package streamer

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chatr-ai/chatr/internal/clientip"
)

// The page and every asset carry the headers that keep other sites from
// framing the room or making the browser guess content types.
func TestPageSecurityHeaders(t *testing.T) {
	srv := httptest.NewServer(pageHandler(&guide{}))
	defer srv.Close()
	for _, path := range []string{"/", "/app.js", "/skills.md", "/llms.txt", "/missing"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", path, csp, want)
			}
		}
		if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("GET %s: X-Frame-Options %q, want DENY", path, got)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", path, got)
		}
	}
}

// The guide's base URL is the configured one, else the request's; the
// forwarded scheme and host count only from a trusted proxy, and a host
// that is not a host is never echoed into the page.
func TestGuideBaseURL(t *testing.T) {
	ips, err := clientip.Parse("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	g := &guide{ips: ips}
	req := func(remote, host string, hdr map[string]string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/skills.md", nil)
		r.RemoteAddr, r.Host = remote, host
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		return r
	}
	fwd := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.example.org"}
	for _, c := range []struct {
		r    *http.Request
		want string
	}{
		{req("192.0.2.1:5000", "room.local:8080", nil), "http://room.local:8080"},
		{req("192.0.2.1:5000", "room.local", fwd), "http://room.local"},          // untrusted: headers ignored
		{req("10.1.2.3:5000", "room-svc:8080", fwd), "https://chat.example.org"}, // the ingress
		{req("192.0.2.1:5000", "evil.example\"><script>", nil), "http://localhost"},
		{req("192.0.2.1:5000", "[::1]:8080", nil), "http://[::1]:8080"},
	} {
		if got := g.base(c.r); got != c.want {
			t.Errorf("base for %s Host %q = %q, want %q", c.r.RemoteAddr, c.r.Host, got, c.want)
		}
	}
	pub, err := parsePublicURL("https://chat.example.org/")
	if err != nil || pub != "https://chat.example.org" {
		t.Fatalf("parsePublicURL = %q, %v", pub, err)
	}
	if got := (&guide{public: pub}).base(req("192.0.2.1:5000", "other", nil)); got != pub {
		t.Errorf("configured base ignored: %q", got)
	}
	for _, bad := range []string{"ftp://x", "https://", "chat.example.org", "https://a b"} {
		if _, err := parsePublicURL(bad); err == nil {
			t.Errorf("parsePublicURL(%q) accepted", bad)
		}
	}
}
