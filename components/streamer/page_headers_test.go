package streamer

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The page and every asset carry the headers that keep other sites from
// framing the room or making the browser guess content types.
func TestPageSecurityHeaders(t *testing.T) {
	srv := httptest.NewServer(pageHandler())
	defer srv.Close()
	for _, path := range []string{"/", "/app.js", "/missing"} {
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
