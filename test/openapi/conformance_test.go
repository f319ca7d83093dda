// Package openapi_test checks the OpenAPI description (internal/openapi)
// against the real servers, in both directions: every route, method and
// status the description lists is exercised against components/api and
// components/streamer (real Postgres and Redis, the real verifier, the fake
// Moltbook) and every answer is validated against its schema; and every
// route the servers answer is in the description.
package openapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/openapi"
	"github.com/chatr-ai/chatr/internal/testenv"
	"github.com/chatr-ai/chatr/test/openapi/liveroom"
)

// checker sends requests, validates each answer against the description,
// and remembers which (method, path, status) it has seen.
type checker struct {
	t    *testing.T
	doc  *openapi.Doc
	base string

	mu   sync.Mutex
	seen map[string]bool
}

func newChecker(t *testing.T, doc *openapi.Doc, base string, seen map[string]bool) *checker {
	return &checker{t: t, doc: doc, base: base, seen: seen}
}

func (c *checker) record(method, path string, status int) {
	c.mu.Lock()
	c.seen[fmt.Sprintf("%s %s %d", method, path, status)] = true
	c.mu.Unlock()
}

// answer is one validated response.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (a answer) str(k string) string { s, _ := a.body[k].(string); return s }

// do sends method path (?query) with body and headers ("Name: value"),
// validates the answer against the description and returns it.
func (c *checker) do(method, path, query, body string, headers ...string) answer {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	u := c.base + path
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	c.record(method, path, res.StatusCode)
	if err := c.doc.ValidateResponse(method, path, res.StatusCode, res.Header, raw); err != nil {
		c.t.Errorf("%v\n  body: %s", err, raw)
	}
	a := answer{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// ok is do for a request that must succeed with want; its request body is
// validated against the description's request schema too, so the examples
// the test sends are ones the description admits.
func (c *checker) ok(want int, method, path, query, body string, headers ...string) answer {
	c.t.Helper()
	if body != "" {
		if rs, ok := c.doc.RequestSchema(method, path); ok {
			if err := c.doc.ValidateJSON(rs, []byte(body)); err != nil {
				c.t.Errorf("the test's own request %s %s %s disagrees with the description: %v", method, path, body, err)
			}
		}
	}
	a := c.do(method, path, query, body, headers...)
	if a.status != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, a.status, a.raw, want)
	}
	return a
}

// fail is do for a request that must be refused with want.
func (c *checker) fail(want int, method, path, query, body string, headers ...string) answer {
	c.t.Helper()
	a := c.do(method, path, query, body, headers...)
	if a.status != want {
		c.t.Errorf("%s %s %s: %d %s, want %d", method, path, body, a.status, a.raw, want)
	}
	return a
}

func bearer(key string) string { return "Authorization: Bearer " + key }

func (c *checker) register(name string) (key string) {
	c.t.Helper()
	return c.ok(200, "POST", "/api/register", "", `{"name":"`+name+`"}`).body["agent"].(map[string]any)["apiKey"].(string)
}

// verifyFinal asks verify/complete and, if it answers 202, verify/status
// until the check is over; it returns the final answer.
func (c *checker) verifyFinal(key, name string) answer {
	c.t.Helper()
	a := c.do("POST", "/api/verify/complete", "", `{"moltbookName":"`+name+`"}`, bearer(key))
	if a.status != 202 && a.body["pending"] != true {
		return a
	}
	testenv.Eventually(c.t, 30*time.Second, "verification of "+name, func() error {
		a = c.do("GET", "/api/verify/status", "", "", bearer(key))
		if a.status == 202 || a.body["pending"] == true {
			return fmt.Errorf("still pending: %s", a.raw)
		}
		return nil
	})
	return a
}

// big is a body over the contract's 16 KiB.
var big = `{"name":"` + strings.Repeat("x", 17<<10) + `"}`

func TestConformance(t *testing.T) {
	doc, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}

	limits := config.DefaultLimits()
	limits.UnverifiedMessages = 1000
	limits.RegistrationsPerIP = 1000
	limits.RequestsPerIP = 100000
	limits.VerificationsPerAgent = 1000
	room := liveroom.Start(t, liveroom.Options{Limits: &limits, VerifyWait: time.Second,
		Stream: func(c *streamer.Config) { c.StatsInterval = 300 * time.Millisecond }})
	c := newChecker(t, doc, room.Direct, seen)

	t.Run("agents and messages", func(t *testing.T) {
		c.t = t
		key := c.register("conform_a")
		c.fail(400, "POST", "/api/register", "", `{"name":"a b"}`)
		c.fail(400, "POST", "/api/register", "", `{"name":"ok_name","avatar":"`+strings.Repeat("x", 65)+`"}`)
		c.fail(409, "POST", "/api/register", "", `{"name":"CONFORM_A"}`)
		c.fail(413, "POST", "/api/register", "", big)
		c.fail(415, "POST", "/api/register", "", `{"name":"form_post"}`, "Content-Type: application/x-www-form-urlencoded")
		c.ok(200, "POST", "/api/register", "", `{"name":"conform_b","avatar":"`+strings.Repeat("🦊", 64)+`"}`)

		var ids []string
		for i := range 3 {
			m := c.ok(200, "POST", "/api/messages", "", fmt.Sprintf(`{"content":"hello %d"}`, i), bearer(key))
			ids = append(ids, m.body["message"].(map[string]any)["id"].(string))
		}
		// The legacy header authenticates too.
		c.ok(200, "POST", "/api/messages", "", `{"content":"legacy header"}`, "X-API-Key: "+key)
		c.fail(400, "POST", "/api/messages", "", `{"content":"   "}`, bearer(key))
		c.fail(400, "POST", "/api/messages", "", `{"content":"`+strings.Repeat("x", 251)+`"}`, bearer(key))
		c.fail(401, "POST", "/api/messages", "", `{"content":"x"}`)
		c.fail(401, "POST", "/api/messages", "", `{"content":"x"}`, bearer("chatr_00000000000000000000000000000000"))
		c.fail(403, "POST", "/api/messages", "", `{"content":"see https://example.com"}`, bearer(key))
		c.fail(413, "POST", "/api/messages", "", `{"content":"`+strings.Repeat("x", 17<<10)+`"}`, bearer(key))
		c.fail(415, "POST", "/api/messages", "", `{"content":"x"}`, bearer(key), "Content-Type: text/plain")

		c.ok(200, "GET", "/api/messages", "", "")
		c.ok(200, "GET", "/api/messages", "limit=2&before="+ids[2], "")
		c.ok(200, "GET", "/api/messages", "after="+ids[0], "")
		c.fail(400, "GET", "/api/messages", "limit=0", "")
		c.fail(400, "GET", "/api/messages", "before=x", "")
		c.fail(400, "GET", "/api/messages", "before=1&after=1", "")

		c.ok(200, "POST", "/api/heartbeat", "", "", bearer(key))
		c.fail(401, "POST", "/api/heartbeat", "", "", bearer("nonsense"))
		ag := c.ok(200, "GET", "/api/agents", "", "")
		// conform_b never authenticated, so it never came online.
		if n := len(ag.body["agents"].([]any)); n != 1 {
			t.Errorf("%d agents online, want 1", n)
		}
		c.ok(200, "POST", "/api/disconnect", "", "", bearer(key))
		c.fail(401, "POST", "/api/disconnect", "", "")
	})

	t.Run("verification", func(t *testing.T) {
		c.t = t
		key := c.register("conform_v")
		c.fail(401, "POST", "/api/verify/start", "", `{"moltbookName":"x"}`)
		c.fail(401, "POST", "/api/verify/complete", "", `{"moltbookName":"x"}`)
		c.fail(401, "GET", "/api/verify/status", "", "")
		c.fail(400, "GET", "/api/verify/status", "", "", bearer(key))
		c.fail(400, "POST", "/api/verify/complete", "", `{"moltbookName":"ghost"}`, bearer(key))
		c.fail(400, "POST", "/api/verify/start", "", `{"moltbookName":""}`, bearer(key))
		c.fail(400, "POST", "/api/verify/start", "", `{"moltbookName":"not valid!"}`, bearer(key))
		c.fail(413, "POST", "/api/verify/start", "", big, bearer(key))
		c.fail(413, "POST", "/api/verify/complete", "", big, bearer(key))
		c.fail(415, "POST", "/api/verify/start", "", `{"moltbookName":"x"}`, bearer(key), "Content-Type: text/plain")
		c.fail(415, "POST", "/api/verify/complete", "", `{"moltbookName":"x"}`, bearer(key), "Content-Type: text/plain")

		// Unknown on Moltbook: 404, then status repeats the final answer.
		c.ok(200, "POST", "/api/verify/start", "", `{"moltbookName":"ghost"}`, bearer(key))
		st := c.ok(200, "GET", "/api/verify/status", "", "", bearer(key))
		if st.str("status") != "started" {
			t.Errorf("status after start: %s", st.raw)
		}
		if a := c.verifyFinal(key, "ghost"); a.status != 404 || a.str("status") != "not_found" {
			t.Errorf("unknown user: %d %s", a.status, a.raw)
		}
		c.fail(404, "GET", "/api/verify/status", "", "", bearer(key))

		// Not claimed: 403.
		room.Moltbook.Set(fakemoltbook.Agent{Name: "ghost"})
		if a := c.verifyFinal(key, "ghost"); a.status != 403 {
			t.Errorf("unclaimed: %d %s", a.status, a.raw)
		}
		c.fail(403, "GET", "/api/verify/status", "", "", bearer(key))

		// Claimed, no post with the code: 404 with code and hint.
		room.Moltbook.Set(fakemoltbook.Agent{Name: "ghost", Claimed: true, Owner: "o"})
		if a := c.verifyFinal(key, "ghost"); a.status != 404 || a.str("code") == "" || a.str("hint") == "" {
			t.Errorf("no post: %d %s", a.status, a.raw)
		}

		// Moltbook refuses for good: 502.
		room.Moltbook.Set(fakemoltbook.Agent{Name: "ghost", Faults: []fakemoltbook.Fault{{Status: 401, Times: 100}}})
		if a := c.verifyFinal(key, "ghost"); a.status != 502 {
			t.Errorf("Moltbook failing: %d %s", a.status, a.raw)
		}
		c.fail(502, "GET", "/api/verify/status", "", "", bearer(key))

		// Another agent starts with the same account, before it verifies anyone.
		keyW := c.register("conform_w")
		c.ok(200, "POST", "/api/verify/start", "", `{"moltbookName":"ghost"}`, bearer(keyW))

		// Slow Moltbook: 202 and pending, then verified, then already verified.
		code := c.ok(200, "POST", "/api/verify/start", "", `{"moltbookName":"ghost"}`, bearer(key)).str("code")
		a := fakemoltbook.Verified("ghost", "owner", code)
		a.Faults = []fakemoltbook.Fault{{Delay: fakemoltbook.Duration(2500 * time.Millisecond)}}
		room.Moltbook.Set(a)
		c.ok(202, "POST", "/api/verify/complete", "", `{"moltbookName":"ghost"}`, bearer(key))
		if st := c.ok(200, "GET", "/api/verify/status", "", "", bearer(key)); st.body["pending"] != true {
			t.Errorf("status while checking: %s", st.raw)
		}
		if fin := c.verifyFinal(key, "ghost"); fin.status != 200 || fin.body["verified"] != true {
			t.Errorf("verified: %d %s", fin.status, fin.raw)
		}
		if again := c.ok(200, "POST", "/api/verify/complete", "", `{"moltbookName":"ghost"}`, bearer(key)); again.body["alreadyVerified"] != true {
			t.Errorf("again: %s", again.raw)
		}
		c.ok(200, "GET", "/api/verify/status", "", "", bearer(key))
		// The account verifies conform_v now: conform_w gets 409 everywhere.
		c.fail(409, "POST", "/api/verify/complete", "", `{"moltbookName":"ghost"}`, bearer(keyW))
		c.fail(409, "GET", "/api/verify/status", "", "", bearer(keyW))
		c.fail(409, "POST", "/api/verify/start", "", `{"moltbookName":"ghost"}`, bearer(keyW))
		// Verified agents may post links.
		c.ok(200, "POST", "/api/messages", "", `{"content":"https://example.com"}`, bearer(key))
	})

	t.Run("stream", func(t *testing.T) {
		c.t = t
		key := c.register("conform_s")
		c.ok(200, "POST", "/api/messages", "", `{"content":"before the stream"}`, bearer(key))
		checkSSE(t, c, func() { c.ok(200, "POST", "/api/messages", "", `{"content":"during the stream"}`, bearer(key)) })
		checkWS(t, c, func() { c.ok(200, "POST", "/api/messages", "", `{"content":"during the socket"}`, bearer(key)) })
		c.fail(400, "GET", "/api/ws", "", "")
	})

	t.Run("openapi", func(t *testing.T) {
		c.t = t
		a := c.ok(200, "GET", "/api/openapi.json", "", "")
		if !bytes.Equal(a.raw, openapi.JSON()) {
			t.Error("GET /api/openapi.json does not serve the embedded description")
		}
	})

	t.Run("rate limits", func(t *testing.T) {
		// A room where each client IP gets one request an hour and one
		// stream: every route's 429 is one request away.
		tight := config.DefaultLimits()
		tight.RequestsPerIP, tight.RequestWindow = 1, time.Hour
		tight.StreamsPerIP = 1
		r2 := liveroom.Start(t, liveroom.Options{Limits: &tight})
		c2 := newChecker(t, doc, r2.Direct, seen)
		c2.ok(200, "GET", "/api/agents", "", "")
		for _, op := range doc.Operations() {
			if op.Path == "/api/stream" || op.Path == "/api/ws" {
				continue
			}
			a := c2.fail(429, op.Method, op.Path, "", "")
			if a.str("error") != "Too many requests" {
				t.Errorf("%s %s: 429 %s", op.Method, op.Path, a.raw)
			}
		}
		// Streams: the second connection from one IP is refused.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", r2.Direct+"/api/stream", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("first stream: %v %v", res, err)
		}
		defer res.Body.Close()
		testenv.Eventually(t, 10*time.Second, "the second stream refused", func() error {
			a := c2.do("GET", "/api/stream", "", "")
			if a.status != 429 {
				return fmt.Errorf("second stream: %d %s", a.status, a.raw)
			}
			if a.str("error") != "Too many connections" {
				return testenv.StopTrying(fmt.Errorf("second stream: 429 %s", a.raw))
			}
			return nil
		})
		_, wres, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r2.Direct, "http")+"/api/ws", nil)
		if err == nil || wres == nil || wres.StatusCode != 429 {
			t.Fatalf("WebSocket beyond the limit: %v %v", wres, err)
		}
		body, _ := io.ReadAll(wres.Body)
		c2.record("GET", "/api/ws", 429)
		if err := doc.ValidateResponse("GET", "/api/ws", 429, wres.Header, body); err != nil {
			t.Error(err)
		}
	})

	// Every status the description lists was seen (500 and 503 are
	// "default": a correct server does not produce them on demand).
	for _, op := range doc.Operations() {
		for _, st := range op.Statuses {
			if st == "default" {
				continue
			}
			if !seen[op.Method+" "+op.Path+" "+st] {
				t.Errorf("%s %s %s is in the description but the test never saw it", op.Method, op.Path, st)
			}
		}
	}
	var got []string
	for k := range seen {
		got = append(got, k)
	}
	sort.Strings(got)
	t.Logf("answers seen:\n  %s", strings.Join(got, "\n  "))
}

// checkSSE reads the stream: its headers, then a history, a live message
// and a stats event, each validated against the description's StreamEvent;
// every event must be unnamed, and a message's id: must be its id.
func checkSSE(t *testing.T, c *checker, post func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", c.base+"/api/stream", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	c.record("GET", "/api/stream", res.StatusCode)
	if err := c.doc.ValidateResponse("GET", "/api/stream", res.StatusCode, res.Header, nil); err != nil {
		t.Fatal(err)
	}
	schema, ok := c.doc.MediaSchema("GET", "/api/stream", "200", "text/event-stream")
	if !ok {
		t.Fatal("no event schema for the stream")
	}
	types := map[string]int{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	var id, data string
	posted := false
	for sc.Scan() && (types["history"] == 0 || types["message"] == 0 || types["stats"] == 0) {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event:"):
			t.Errorf("a named event (%q): EventSource.onmessage would never see it", line)
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && data != "":
			if err := c.doc.ValidateJSON(schema, []byte(data)); err != nil {
				t.Errorf("SSE event %s: %v", data, err)
			}
			var ev struct {
				Type string          `json:"type"`
				Data json.RawMessage `json:"data"`
			}
			_ = json.Unmarshal([]byte(data), &ev)
			types[ev.Type]++
			if ev.Type == "message" {
				var m struct{ ID string }
				_ = json.Unmarshal(ev.Data, &m)
				if m.ID != id {
					t.Errorf("message %s came with id: %q", m.ID, id)
				}
			}
			if ev.Type == "history" && !posted {
				posted = true
				post()
			}
			id, data = "", ""
		}
	}
	if types["history"] != 1 || types["message"] == 0 || types["stats"] == 0 {
		t.Errorf("events seen %v (err %v), want a history, a message and stats", types, sc.Err())
	}
}

// checkWS does the same over the WebSocket.
func checkWS(t *testing.T, c *checker, post func()) {
	ws, res, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(c.base, "http")+"/api/ws", nil)
	if err != nil {
		t.Fatalf("WebSocket: %v", err)
	}
	defer ws.Close()
	c.record("GET", "/api/ws", res.StatusCode)
	if !c.doc.Declares("GET", "/api/ws", res.StatusCode) {
		t.Errorf("GET /api/ws answered %d, not in the description", res.StatusCode)
	}
	schema, ok := c.doc.MediaSchema("GET", "/api/ws", "101", "application/json")
	if !ok {
		t.Fatal("no frame schema for the WebSocket")
	}
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	types := map[string]int{}
	for types["history"] == 0 || types["message"] == 0 || types["stats"] == 0 {
		mt, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %v: %v", types, err)
		}
		if mt != websocket.TextMessage {
			t.Errorf("frame type %d, want text", mt)
		}
		if err := c.doc.ValidateJSON(schema, b); err != nil {
			t.Errorf("WebSocket frame %s: %v", b, err)
		}
		var ev struct{ Type string }
		_ = json.Unmarshal(b, &ev)
		types[ev.Type]++
		if ev.Type == "history" && types["history"] == 1 {
			post()
		}
	}
}

// TestEveryAnsweredRouteIsDescribed probes the contract's paths (and some
// near them) with every method: whatever the servers answer other than 404
// or 405 must be in the description, everything described must be answered,
// and a 405 on a described path must list exactly the described methods in
// Allow. HEAD is HTTP's GET without a body: a server may answer it on a GET
// route or refuse it (TestHeadHasNoBody checks the answers have no body).
func TestEveryAnsweredRouteIsDescribed(t *testing.T) {
	doc, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	limits := config.DefaultLimits()
	limits.RequestsPerIP = 100000
	room := liveroom.Start(t, liveroom.Options{Limits: &limits})
	described := describedMethods(doc)
	paths := []string{"/api", "/api/", "/api/message", "/api/agents/x", "/api/verify", "/api/stream/x", "/api/ws/x",
		"/api/openapi", "/api/docs", "/api/health", "/api/v1/messages", "/api/messages/1", "/api/register/"}
	for p := range described {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			if m == "HEAD" {
				continue
			}
			req, _ := http.NewRequest(m, room.Direct+p, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			res, err := http.DefaultClient.Do(req.WithContext(ctx))
			if err != nil {
				cancel()
				t.Fatalf("%s %s: %v", m, p, err)
			}
			status, allow := res.StatusCode, res.Header.Get("Allow")
			res.Body.Close() // a stream that did answer is not read further
			cancel()
			answered := status != http.StatusNotFound && status != http.StatusMethodNotAllowed
			switch {
			case answered && !described[p][m]:
				t.Errorf("%s %s answers %d but is not in the description", m, p, status)
			case !answered && described[p][m]:
				t.Errorf("%s %s is in the description but answers %d", m, p, status)
			case status == http.StatusMethodNotAllowed && described[p] != nil:
				var want, have []string
				for dm := range described[p] {
					want = append(want, dm)
				}
				for _, a := range strings.Split(allow, ",") {
					if a = strings.TrimSpace(a); a != "HEAD" || !described[p]["GET"] {
						have = append(have, a)
					}
				}
				sort.Strings(want)
				sort.Strings(have)
				if strings.Join(have, ", ") != strings.Join(want, ", ") {
					t.Errorf("%s %s: 405 with Allow %q, want the described %s (HEAD optional with GET)", m, p, allow, strings.Join(want, ", "))
				}
			}
		}
	}
}

func describedMethods(doc *openapi.Doc) map[string]map[string]bool {
	described := map[string]map[string]bool{}
	for _, op := range doc.Operations() {
		if described[op.Path] == nil {
			described[op.Path] = map[string]bool{}
		}
		described[op.Path][op.Method] = true
	}
	return described
}

// TestHeadHasNoBody: a HEAD request on a described GET route is either
// refused (405) or answered like GET without a body (RFC 9110 §9.3.2).
// A body would be read by the client as the start of the next response on
// the connection, and a stream answered to HEAD would hold one of the
// client's per-IP stream slots for nothing.
func TestHeadHasNoBody(t *testing.T) {
	doc, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	room := liveroom.Start(t, liveroom.Options{})
	for p, ms := range describedMethods(doc) {
		if !ms["GET"] {
			continue
		}
		conn, err := net.Dial("tcp", strings.TrimPrefix(room.Direct, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write([]byte("HEAD " + p + " HTTP/1.1\r\nHost: chatr\r\n\r\n"))
		// Read the head, then whatever comes within a moment after it.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got []byte
		buf := make([]byte, 4096)
		headSeen := false
		for {
			n, err := conn.Read(buf)
			got = append(got, buf[:n]...)
			if !headSeen && bytes.Contains(got, []byte("\r\n\r\n")) {
				headSeen = true
				_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			}
			if err != nil {
				break
			}
		}
		conn.Close()
		head, rest, ok := bytes.Cut(got, []byte("\r\n\r\n"))
		status := strings.SplitN(string(head), " ", 3)
		switch {
		case !ok || len(status) < 2:
			t.Errorf("HEAD %s: no complete response head: %q", p, got)
		case status[1] == "405":
		case len(rest) > 0:
			t.Errorf("HEAD %s answered %s with a body (%d bytes: %.60q...)", p, status[1], len(rest), rest)
		}
	}
}
