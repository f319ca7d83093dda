package fakemoltbook_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/fakemoltbook"
)

func do(t *testing.T, h http.Handler, method, path, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %q", method, path, rec.Code, rec.Body.String())
	}
	return rec.Code, rec.Header(), m
}

func profile(t *testing.T, h http.Handler, name string) (int, http.Header, map[string]any) {
	t.Helper()
	return do(t, h, "GET", "/api/v1/agents/profile?name="+name, "")
}

// A person drives the fake through its control API: seed a verifiable
// agent, add posts and faults, read the counts.
func TestControlAPI(t *testing.T) {
	f := fakemoltbook.New()
	if code, _, m := profile(t, f, "Kleinbot"); code != 404 || m["error"] != "Bot not found" || m["searched_for"] != "Kleinbot" {
		t.Fatalf("unknown: %d %v", code, m)
	}
	if code, _, _ := do(t, f, "POST", "/_fake/seed", `{"name":"Molty","owner":"@alice","code":"[ABCD2345]"}`); code != 200 {
		t.Fatal(code)
	}
	code, _, m := profile(t, f, "molty")
	agent := m["agent"].(map[string]any)
	posts := m["recentPosts"].([]any)
	if code != 200 || agent["is_claimed"] != true || agent["owner"].(map[string]any)["x_handle"] != "alice" || len(posts) != 1 ||
		!strings.Contains(posts[0].(map[string]any)["content"].(string), "[ABCD2345]") {
		t.Fatalf("seeded: %d %v", code, m)
	}

	if code, _, _ := do(t, f, "PUT", "/_fake/agents/Shy", `{"claimed":false,"camelCase":true,"comments":["[ZZZZ2345]"]}`); code != 200 {
		t.Fatal(code)
	}
	_, _, m = profile(t, f, "shy")
	agent = m["agent"].(map[string]any)
	if agent["isClaimed"] != false || agent["owner"] != nil || len(m["recentPosts"].([]any)) != 0 || len(m["recentComments"].([]any)) != 1 {
		t.Fatalf("camel, unclaimed, comment only: %v", m)
	}
	if code, _, _ := do(t, f, "POST", "/_fake/agents/shy/posts", `{"content":"first [ZZZZ2345]"}`); code != 200 {
		t.Fatal(code)
	}
	if code, _, _ := do(t, f, "POST", "/_fake/agents/shy/faults", `[{"status":503,"times":2},{"status":429,"resetAfter":"2s","retryAfter":1500}]`); code != 200 {
		t.Fatal(code)
	}
	for i := 0; i < 2; i++ {
		if code, _, _ := profile(t, f, "shy"); code != 503 {
			t.Fatalf("fault %d: %d", i, code)
		}
	}
	code, h, _ := profile(t, f, "shy")
	reset, _ := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if code != 429 || h.Get("Retry-After") != "2" || reset < time.Now().Unix()+1 || reset > time.Now().Unix()+3 {
		t.Fatalf("429: %d %v", code, h)
	}
	if code, _, m := profile(t, f, "shy"); code != 200 || len(m["recentPosts"].([]any)) != 1 {
		t.Fatalf("after the faults: %d %v", code, m)
	}
	_, _, m = do(t, f, "GET", "/_fake/requests", "")
	if reqs := m["requests"].(map[string]any); reqs["shy"] != 5.0 || reqs["molty"] != 1.0 || reqs["kleinbot"] != 1.0 {
		t.Fatalf("counts %v", m)
	}
	_, _, m = do(t, f, "GET", "/_fake/agents/shy", "")
	if m["requests"] != 5.0 || m["agent"].(map[string]any)["camelCase"] != true {
		t.Fatalf("agent view %v", m)
	}

	for _, bad := range []struct{ method, path, body string }{
		{"PUT", "/_fake/agents/x", `{"claimed":"maybe"}`},
		{"PUT", "/_fake/agents/x", `{"delay":"soon"}`},
		{"POST", "/_fake/agents/x/faults", `"nope"`},
		{"POST", "/_fake/seed", `{"name":"x"}`},
		{"PUT", "/_fake/ratelimit", `{"limit":5}`},
		{"PUT", "/_fake/agents/x", strings.Repeat(" ", 70<<10) + "{}"},
	} {
		if code, _, m := do(t, f, bad.method, bad.path, bad.body); code != 400 || m["success"] != false {
			t.Errorf("%s %s %.40q: %d %v", bad.method, bad.path, bad.body, code, m)
		}
	}
	if code, _, _ := do(t, f, "POST", "/_fake/agents/nobody/posts", `{"content":"x"}`); code != 404 {
		t.Errorf("post to an unknown agent: %d", code)
	}
	if code, _, _ := do(t, f, "DELETE", "/_fake", ""); code != 200 || f.Requests("shy") != 0 {
		t.Fatal("reset")
	}
	if code, _, _ := profile(t, f, "molty"); code != 404 {
		t.Fatal("agent survived a reset")
	}
}

// Only the newest RecentPosts posts are shown.
func TestOldPostsAreNotRecent(t *testing.T) {
	f := fakemoltbook.New()
	a := fakemoltbook.Verified("old", "o", "OLDD2345")
	for i := 0; i < fakemoltbook.RecentPosts; i++ {
		a.Posts = append([]fakemoltbook.Post{{Content: "newer"}}, a.Posts...)
	}
	f.Set(a)
	_, _, m := profile(t, f, "old")
	posts := m["recentPosts"].([]any)
	if len(posts) != fakemoltbook.RecentPosts {
		t.Fatalf("%d posts shown", len(posts))
	}
	for _, p := range posts {
		if strings.Contains(p.(map[string]any)["content"].(string), "OLDD2345") {
			t.Fatal("the old post is shown")
		}
	}
}

// The fake's own rate limit answers 429 with the X-RateLimit-* headers once
// the window is spent.
func TestRateLimit(t *testing.T) {
	f := fakemoltbook.New()
	f.Set(fakemoltbook.Verified("busy", "o", "BUSY2345"))
	if code, _, _ := do(t, f, "PUT", "/_fake/ratelimit", `{"limit":2,"window":"1m"}`); code != 200 {
		t.Fatal(code)
	}
	for i, want := range []int{200, 200, 429} {
		code, h, _ := profile(t, f, "busy")
		if code != want || h.Get("X-RateLimit-Limit") != "2" || h.Get("X-RateLimit-Reset") == "" {
			t.Fatalf("call %d: %d %v", i, code, h)
		}
	}
}

// FuzzControlAPI: whatever a person or script sends to the control API,
// the fake answers JSON and keeps serving profiles.
func FuzzControlAPI(f *testing.F) {
	f.Add("PUT", `{"claimed":true,"posts":[{"content":"[A]"}],"faults":[{"status":503,"times":2}],"delay":"1ms"}`)
	f.Add("FAULTS", `[{"status":429,"resetAfter":1000},{"malformed":true}]`)
	f.Add("SEED", `{"name":"x","code":"ABCD2345"}`)
	f.Add("POSTS", `{"content":5}`)
	f.Add("RATE", `{"limit":-1,"window":"x"}`)
	f.Fuzz(func(t *testing.T, op, body string) {
		s := fakemoltbook.New()
		s.Set(fakemoltbook.Agent{Name: "x"})
		path, method := map[string][2]string{
			"PUT": {"/_fake/agents/x", "PUT"}, "FAULTS": {"/_fake/agents/x/faults", "POST"},
			"SEED": {"/_fake/seed", "POST"}, "POSTS": {"/_fake/agents/x/posts", "POST"}, "RATE": {"/_fake/ratelimit", "PUT"},
		}[op], ""
		if path[0] == "" {
			return
		}
		method = path[1]
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(method, path[0], strings.NewReader(body)))
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("control answer not JSON: %q", rec.Body.String())
		}
		// Whatever scenario was set (any status, a malformed body on purpose,
		// a delay cut short here), serving a profile must not panic.
		rec = httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/v1/agents/profile?name=x", nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		s.ServeHTTP(rec, req.WithContext(ctx))
	})
}
