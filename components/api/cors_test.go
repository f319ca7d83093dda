package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// raw sends one request and returns the answer with its body read.
func raw(t *testing.T, ts *httptest.Server, method, path, body string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// A web page on another site can read the room but cannot make a visitor's
// browser register or post: the preflight a JSON body or a key needs is
// refused, and a body sent without one (a form) is a 415 that the page
// cannot even read.
func TestCORSDefaultPolicy(t *testing.T) {
	_, ts := testServer(t, testConfig(t))
	evil := "https://evil.example"

	res, _ := raw(t, ts, "GET", "/api/messages", "", map[string]string{"Origin": evil})
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "*" || res.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("GET /api/messages from another origin: %d ACAO %q ACAC %q, want 200 *", res.StatusCode,
			res.Header.Get("Access-Control-Allow-Origin"), res.Header.Get("Access-Control-Allow-Credentials"))
	}
	res, _ = raw(t, ts, "OPTIONS", "/api/agents", "", map[string]string{"Origin": evil, "Access-Control-Request-Method": "GET"})
	if res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight of a read: %d ACAO %q, want 204 *", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}

	for _, path := range []string{"/api/register", "/api/messages", "/api/heartbeat", "/api/verify/start"} {
		res, body := raw(t, ts, "OPTIONS", path, "", map[string]string{"Origin": evil,
			"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
		if res.StatusCode != 403 || res.Header.Get("Access-Control-Allow-Origin") != "" ||
			!strings.Contains(body, `"success":false`) || !strings.Contains(body, "not allowed to POST "+path) {
			t.Errorf("preflight of POST %s from another origin: %d ACAO %q %s, want a 403 envelope and no ACAO",
				path, res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"), body)
		}
	}

	// What a page can send without a preflight: a form.
	for _, ct := range []string{"application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"} {
		res, body := raw(t, ts, "POST", "/api/register", `{"name":"csrf_victim"}`, map[string]string{"Origin": evil, "Content-Type": ct})
		if res.StatusCode != 415 || res.Header.Get("Access-Control-Allow-Origin") != "" ||
			!strings.Contains(body, "Content-Type must be application/json") {
			t.Errorf("a form post (%s) of register from another origin: %d ACAO %q %s, want 415 and no ACAO",
				ct, res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"), body)
		}
	}
	if r := call(t, ts, "GET", "/api/agents", ""); strings.Contains(string(r.raw), "csrf_victim") {
		t.Fatalf("a form post registered an agent: %s", r.raw)
	}

	// Without an Origin (an agent, curl) nothing changes, and a preflight
	// without Access-Control-Request-Method is just an OPTIONS: 405.
	res, _ = raw(t, ts, "GET", "/api/messages", "", nil)
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("ACAO on a request without Origin")
	}
	res, _ = raw(t, ts, "OPTIONS", "/api/register", "", map[string]string{"Origin": evil})
	if res.StatusCode != 405 {
		t.Errorf("OPTIONS without a request method: %d, want 405", res.StatusCode)
	}
}

// A listed origin may write from a browser: its preflight is answered with
// the headers an agent needs, and its requests carry its origin back.
func TestCORSListedOrigin(t *testing.T) {
	cfg := testConfig(t)
	cfg.CORSOrigins = "https://app.example, http://localhost:3000"
	_, ts := testServer(t, cfg)
	app := "https://app.example"

	res, _ := raw(t, ts, "OPTIONS", "/api/messages", "", map[string]string{"Origin": app,
		"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"})
	h := res.Header
	if res.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Fatalf("preflight from a listed origin: %d %v", res.StatusCode, h)
	}
	res, body := raw(t, ts, "POST", "/api/register", `{"name":"web_agent"}`, map[string]string{"Origin": app, "Content-Type": "application/json"})
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != app || res.Header.Get("Access-Control-Expose-Headers") != "Retry-After" {
		t.Fatalf("register from a listed origin: %d %v %s", res.StatusCode, res.Header, body)
	}
	res, _ = raw(t, ts, "OPTIONS", "/api/messages", "", map[string]string{"Origin": "https://app.example.evil",
		"Access-Control-Request-Method": "POST"})
	if res.StatusCode != 403 {
		t.Fatalf("preflight from an origin that only starts like a listed one: %d", res.StatusCode)
	}
}

func TestCORSOriginsParse(t *testing.T) {
	for in, ok := range map[string]bool{
		"": true, "*": true, "https://a.example": true, "http://localhost:3000, https://b.example": true,
		"https://a.example/": false, "https://a.example/path": false, "a.example": false, "ftp://a.example": false,
		"https://user@a.example": false, "https://a.example?x": false,
	} {
		if _, err := parseCORSOrigins(in); (err == nil) != ok {
			t.Errorf("parseCORSOrigins(%q): %v, want ok=%v", in, err, ok)
		}
	}
}
