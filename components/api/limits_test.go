package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRoutes(t *testing.T) {
	t.Parallel()
	_, ts := testServer(t, testConfig(t))
	tests := []struct {
		method, path string
		status       int
		err, allow   string
	}{
		{"GET", "/api/nope", 404, "Not found", ""},
		{"GET", "/", 404, "Not found", ""},
		{"GET", "/api/messages/", 404, "Not found", ""},
		{"POST", "/api/stream", 404, "Not found", ""}, // the streamer's, not ours
		{"GET", "/api/register", 405, "Method not allowed", "POST"},
		{"PUT", "/api/messages", 405, "Method not allowed", "GET, HEAD, POST"},
		{"DELETE", "/api/agents", 405, "Method not allowed", "GET, HEAD"},
		{"GET", "/api/heartbeat", 405, "Method not allowed", "POST"},
		{"PATCH", "/api/disconnect", 405, "Method not allowed", "POST"},
		{"GET", "/api/verify/start", 405, "Method not allowed", "POST"},
		{"POST", "/api/verify/status", 405, "Method not allowed", "GET, HEAD"},
		{"BREW", "/api/messages", 405, "Method not allowed", "GET, HEAD, POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := call(t, ts, tt.method, tt.path, "")
			want(t, r, tt.status, tt.err)
			if r.header.Get("Allow") != tt.allow {
				t.Fatalf("Allow %q, want %q", r.header.Get("Allow"), tt.allow)
			}
		})
	}
	if r := call(t, ts, "HEAD", "/api/messages", ""); r.status != 200 || len(r.raw) != 0 {
		t.Fatalf("HEAD /api/messages: %d with %d bytes", r.status, len(r.raw))
	}
	// The OpenAPI description is served as is (not in the envelope).
	res, err := ts.Client().Get(ts.URL + "/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil || res.StatusCode != 200 || doc.OpenAPI == "" || doc.Paths["/api/messages"] == nil {
		t.Fatalf("GET /api/openapi.json: %d, %v, %+v", res.StatusCode, err, doc)
	}
}

// The verify handlers are mounted behind authentication (their bodies are
// the verification component's business).
func TestVerifyMounted(t *testing.T) {
	t.Parallel()
	_, ts := testServer(t, testConfig(t))
	a := register(t, ts, "verifier")
	for _, rt := range []struct{ method, path, body string }{
		{"POST", "/api/verify/start", `{"moltbookName":"x"}`},
		{"POST", "/api/verify/complete", `{"moltbookName":"x"}`},
		{"GET", "/api/verify/status", ""},
	} {
		want(t, call(t, ts, rt.method, rt.path, rt.body), 401, errKeyMalformed)
		want(t, call(t, ts, rt.method, rt.path, rt.body, "X-API-Key: chatr_"+strings.Repeat("1", 32)), 401, errKeyUnknown)
		r := call(t, ts, rt.method, rt.path, rt.body, a.bearer())
		if r.status == 401 || r.status == 404 || r.status == 405 || r.status >= 500 && r.status != 501 && r.status != 502 {
			t.Fatalf("%s %s with a key: %d %s", rt.method, rt.path, r.status, r.raw)
		}
	}
}

// Bad input of every kind gets a clear 4xx in the envelope, never a 500.
func TestBadInputs(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Limits.RegistrationsPerIP = 1000
	cfg.Limits.RequestsPerIP = 10000
	_, ts := testServer(t, cfg)
	a := register(t, ts, "target")
	auth := a.bearer()
	big := strings.Repeat("x", 17<<10)
	tests := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		err                      string
	}{
		{"register: JSON null", "POST", "/api/register", `null`, nil, 400, "Name required"},
		{"register: string body", "POST", "/api/register", `"alice"`, nil, 400, "Request body must be a JSON object"},
		{"register: number body", "POST", "/api/register", `7`, nil, 400, "Request body must be a JSON object"},
		{"register: name is an object", "POST", "/api/register", `{"name":{"a":1}}`, nil, 400, `Invalid type for field "name": expected string`},
		{"register: name is an array", "POST", "/api/register", `{"name":["x"]}`, nil, 400, `Invalid type for field "name": expected string`},
		{"register: name is true", "POST", "/api/register", `{"name":true}`, nil, 400, `Invalid type for field "name": expected string`},
		{"register: trailing garbage", "POST", "/api/register", `{"name":"okname"} x`, nil, 400, "Invalid JSON body"},
		{"register: bad UTF-8 escapes", "POST", "/api/register", `{"name":"\ud800"}`, nil, 400, errNameInvalid},
		{"register: XML", "POST", "/api/register", `<name>x</name>`, nil, 400, "Invalid JSON body"},
		{"register: too large", "POST", "/api/register", `{"name":"` + big + `"}`, nil, 413, ""},
		{"register: SQL in name", "POST", "/api/register", `{"name":"x'; DROP TABLE agents;--"}`, nil, 400, errNameInvalid},
		{"post: content is an object", "POST", "/api/messages", `{"content":{}}`, []string{auth}, 400, `Invalid type for field "content": expected string`},
		{"post: content is a number", "POST", "/api/messages", `{"content":1.5}`, []string{auth}, 400, `Invalid type for field "content": expected string`},
		{"post: body is an array", "POST", "/api/messages", `[{"content":"x"}]`, []string{auth}, 400, "Request body must be a JSON object"},
		{"post: truncated", "POST", "/api/messages", `{"content":"x`, []string{auth}, 400, "Invalid JSON body"},
		{"post: too large", "POST", "/api/messages", `{"content":"` + big + `"}`, []string{auth}, 413, ""},
		{"post: NUL only", "POST", "/api/messages", `{"content":"\u0000"}`, []string{auth}, 400, "Content must not contain a control character U+0000 at character 1"},
		{"post: too large without a key", "POST", "/api/messages", `{"content":"` + big + `"}`, nil, 413, "Request body too large (max 16 KB)"},
		{"heartbeat: too large", "POST", "/api/heartbeat", big, []string{auth}, 413, "Request body too large (max 16 KB)"},
		{"heartbeat: body ignored", "POST", "/api/heartbeat", `garbage`, []string{auth}, 200, ""},
		{"heartbeat: empty form post", "POST", "/api/heartbeat", "", []string{auth, "Content-Type: application/x-www-form-urlencoded"}, 200, ""},
		{"register: form content type", "POST", "/api/register", `{"name":"formbot"}`, []string{"Content-Type: application/x-www-form-urlencoded"}, 415, "Content-Type must be application/json (got application/x-www-form-urlencoded)"},
		{"register: text/plain", "POST", "/api/register", `{"name":"textbot"}`, []string{"Content-Type: text/plain;charset=UTF-8"}, 415, "Content-Type must be application/json (got text/plain;charset=UTF-8)"},
		{"register: charset parameter", "POST", "/api/register", `{"name":"charsetbot"}`, []string{"Content-Type: application/json; charset=utf-8"}, 200, ""},
		{"register: duplicate key in another case", "POST", "/api/register", `{"name":"aa","Name":"bb"}`, nil, 400, `Duplicate key "Name" in JSON body`},
		{"post: duplicate content", "POST", "/api/messages", `{"content":"shown","content":"stored"}`, []string{auth}, 400, `Duplicate key "content" in JSON body`},
		{"post: form content type", "POST", "/api/messages", `{"content":"x"}`, []string{auth, "Content-Type: multipart/form-data; boundary=z"}, 415, "Content-Type must be application/json (got multipart/form-data; boundary=z)"},
		{"list: huge limit", "GET", "/api/messages?limit=99999999999999999999999", "", nil, 400, "limit must be an integer from 1 to 100"},
		{"list: bad escape", "GET", "/api/messages?limit=%zz", "", nil, 200, ""},
		{"list: repeated limit", "GET", "/api/messages?limit=5&limit=500", "", nil, 200, ""},
		{"list: before with spaces", "GET", "/api/messages?before=%201", "", nil, 400, "before must be a message id"},
		{"auth: key with NUL", "POST", "/api/heartbeat", "", []string{"X-API-Key: chatr_%00"}, 401, errKeyMalformed},
		{"auth: very long header", "POST", "/api/heartbeat", "", []string{"Authorization: Bearer " + strings.Repeat("a", 4000)}, 401, errKeyMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want(t, call(t, ts, tt.method, tt.path, tt.body, tt.headers...), tt.status, tt.err)
		})
	}
}

func TestRegistrationLimitPerIP(t *testing.T) {
	t.Parallel()
	_, ts := testServer(t, testConfig(t))
	register(t, ts, "first")
	// Invalid or taken names do not spend registrations.
	want(t, call(t, ts, "POST", "/api/register", `{"name":"x"}`), 400, errNameInvalid)
	want(t, call(t, ts, "POST", "/api/register", `{"name":"FIRST"}`), 409, "Name already taken")
	for i := 2; i <= 5; i++ {
		register(t, ts, fmt.Sprint("agent", i))
	}
	r := call(t, ts, "POST", "/api/register", `{"name":"sixth"}`)
	want(t, r, 429, "Too many registrations, try again later")
	checkRetry(t, r, 3590, 3600)
}

func TestRequestLimitPerIP(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Limits.RequestsPerIP = 6
	_, ts := testServer(t, cfg)
	a := register(t, ts, "busy")                          // 1
	call(t, ts, "GET", "/api/messages", "")               // 2
	call(t, ts, "GET", "/api/nope", "")                   // 3: unknown routes count too
	call(t, ts, "POST", "/api/heartbeat", "", a.bearer()) // 4
	call(t, ts, "POST", "/api/heartbeat", "")             // 5: failed auth counts
	call(t, ts, "GET", "/api/agents", "")                 // 6
	for _, p := range []string{"/api/messages", "/api/agents", "/api/nope"} {
		r := call(t, ts, "GET", p, "")
		want(t, r, 429, "Too many requests")
		checkRetry(t, r, 59, 60)
	}
	want(t, call(t, ts, "POST", "/api/heartbeat", "", a.bearer()), 429, "Too many requests")
}

// A forged X-Forwarded-For dodges no per-IP limit unless the peer is a
// trusted proxy; behind one, the right-most untrusted entry is the client.
func TestForwardedFor(t *testing.T) {
	t.Parallel()
	limited := func(t *testing.T, trusted string) *httptest.Server {
		cfg := testConfig(t)
		cfg.Common.TrustedProxies = trusted
		cfg.Limits.RequestsPerIP = 3
		cfg.Limits.RegistrationsPerIP = 2
		_, ts := testServer(t, cfg)
		return ts
	}
	for _, trusted := range []string{"", "10.0.0.0/8"} { // none, or not the peer
		t.Run("untrusted peer "+trusted, func(t *testing.T) {
			t.Parallel()
			ts := limited(t, trusted)
			for i := 1; i <= 3; i++ {
				want(t, call(t, ts, "GET", "/api/messages", "", fmt.Sprintf("X-Forwarded-For: 198.51.100.%d", i)), 200, "")
			}
			want(t, call(t, ts, "GET", "/api/messages", "", "X-Forwarded-For: 198.51.100.9"), 429, "Too many requests")
			want(t, call(t, ts, "GET", "/api/messages", "", "X-Forwarded-For: 127.0.0.2, 10.0.0.1"), 429, "Too many requests")
		})
		t.Run("registrations, untrusted peer "+trusted, func(t *testing.T) {
			t.Parallel()
			ts := limited(t, trusted)
			register(t, ts, "reg1", "X-Forwarded-For: 203.0.113.1")
			register(t, ts, "reg2", "X-Forwarded-For: 203.0.113.2")
			want(t, call(t, ts, "POST", "/api/register", `{"name":"reg3"}`, "X-Forwarded-For: 203.0.113.3"), 429, "Too many registrations, try again later")
		})
	}
	t.Run("trusted proxy", func(t *testing.T) {
		t.Parallel()
		ts := limited(t, "127.0.0.1/32")
		for i := 0; i < 3; i++ {
			want(t, call(t, ts, "GET", "/api/messages", "", "X-Forwarded-For: 198.51.100.1"), 200, "")
		}
		want(t, call(t, ts, "GET", "/api/messages", "", "X-Forwarded-For: 198.51.100.1"), 429, "Too many requests")
		// A forged entry to the left of what the proxy appended changes nothing.
		want(t, call(t, ts, "GET", "/api/messages", "", "X-Forwarded-For: 6.6.6.6, 198.51.100.1"), 429, "Too many requests")
		// Another client behind the same proxy has its own budget.
		want(t, call(t, ts, "GET", "/api/messages", "", "X-Forwarded-For: 198.51.100.2"), 200, "")
		// The same /64 is one client.
		for i := 0; i < 3; i++ {
			want(t, call(t, ts, "GET", "/api/messages", "", fmt.Sprintf("X-Forwarded-For: 2001:db8::%x", i+1)), 200, "")
		}
		want(t, call(t, ts, "GET", "/api/messages", "", "X-Forwarded-For: 2001:db8::ffff:1"), 429, "Too many requests")
		register(t, ts, "p1", "X-Forwarded-For: 203.0.113.7")
		register(t, ts, "p2", "X-Forwarded-For: 203.0.113.7")
		want(t, call(t, ts, "POST", "/api/register", `{"name":"p3"}`, "X-Forwarded-For: 203.0.113.7"), 429, "Too many registrations, try again later")
		register(t, ts, "p4", "X-Forwarded-For: 203.0.113.8")
	})
}

// Two API servers sharing Redis enforce one set of limits: one agent (and
// one client address) alternating between them gets no more than the limit.
func TestLimitsAcrossServers(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Limits.VerifiedMessages = 4
	cfg.Limits.RegistrationsPerIP = 3
	cfg.Limits.RequestsPerIP = 25
	srv1, ts1 := testServer(t, cfg)
	_, ts2 := testServer(t, cfg)
	servers := []*httptest.Server{ts1, ts2}

	names := []string{"v1", "u1", "x1"}
	var agents []agentKey
	for i, n := range names { // registrations alternate too: 3 allowed in all
		agents = append(agents, register(t, servers[i%2], n))
	}
	want(t, call(t, ts2, "POST", "/api/register", `{"name":"x2"}`), 429, "Too many registrations, try again later")
	want(t, call(t, ts1, "POST", "/api/register", `{"name":"x3"}`), 429, "Too many registrations, try again later")

	v, u := agents[0], agents[1]
	makeVerified(t, srv1, v.id)
	ok := 0
	for i := 0; i < 8; i++ {
		r := post(t, servers[i%2], v, fmt.Sprint("alternating ", i))
		switch r.status {
		case 200:
			ok++
		case 429:
		default:
			t.Fatalf("post %d: %d %s", i, r.status, r.raw)
		}
	}
	if ok != 4 {
		t.Fatalf("verified agent posted %d times through two servers, limit 4", ok)
	}
	want(t, post(t, ts2, u, "one"), 200, "")
	want(t, post(t, ts1, u, "two"), 429, "")

	// So far 5 + 8 + 2 = 15 requests from 127.0.0.1; 10 more are allowed.
	for i := 0; i < 10; i++ {
		want(t, call(t, servers[i%2], "GET", "/api/messages?limit=1", ""), 200, "")
	}
	want(t, call(t, ts1, "GET", "/api/messages", ""), 429, "Too many requests")
	want(t, call(t, ts2, "GET", "/api/messages", ""), 429, "Too many requests")
}

// A handler bug answers 500 in the envelope; the process survives.
func TestPanicAnswers500(t *testing.T) {
	t.Parallel()
	srv, ts := testServer(t, testConfig(t))
	srv.routes["/api/boom"] = &route{path: "/api/boom", methods: map[string]http.Handler{
		"GET": http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })}}
	want(t, call(t, ts, "GET", "/api/boom", ""), 500, "Internal server error")
	want(t, call(t, ts, "GET", "/api/messages", ""), 200, "")
}
