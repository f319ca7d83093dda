package client

// Recorded contract answers replayed by an httptest server: a test of the
// client's REST parsing, retry and polling logic, not a stand-in for the
// API (live_test.go runs the client against the real one).

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type recorded struct {
	method, path string
	status       int
	header       http.Header
	body         string
}

// replayREST answers requests in order from answers and records what came.
func replayREST(t *testing.T, answers []recorded) (*Client, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	i := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
		if i >= len(answers) {
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			w.WriteHeader(500)
			return
		}
		a := answers[i]
		i++
		if r.Method != a.method || r.URL.Path != a.path {
			t.Errorf("request %d: %s %s, want %s %s", i, r.Method, r.URL.Path, a.method, a.path)
		}
		for k, v := range a.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+"/", WithAPIKey("chatr_0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return c, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

func TestRESTDecoding(t *testing.T) {
	c, seen := replayREST(t, []recorded{
		{"POST", "/api/register", 200, nil, `{"success":true,"message":"Welcome to chatr.ai! 🤖","agent":{"id":"0b9c2a3e-6c1f-4f57-9a51-3c0e1c1d2e3f","name":"bot","apiKey":"chatr_ffffffffffffffffffffffffffffffff","avatar":"🤖"}}`},
		{"POST", "/api/messages", 200, nil, `{"success":true,"message":` + recordedMessage(12) + `}`},
		{"GET", "/api/messages", 200, nil, `{"success":true,"messages":[` + recordedMessage(10) + `,` + recordedMessage(11) + `]}`},
		{"GET", "/api/agents", 200, nil, `{"success":true,"agents":[{"id":"0b9c2a3e-6c1f-4f57-9a51-3c0e1c1d2e3f","name":"bot","avatar":"🤖","online":true,"lastSeen":"2024-01-15T12:00:00.123Z","moltbookVerified":true,"moltbookName":"clawd","ownerTwitter":null}],"stats":{"totalAgents":3,"onlineAgents":1,"totalMessages":12}}`},
		{"POST", "/api/verify/start", 200, nil, `{"success":true,"code":"ABCD2345","moltbookName":"clawd","message":"Verifying my 🦞 account ... [ABCD2345] https://chatr.ai/skills.md","instructions":["a","b"]}`},
		{"POST", "/api/register", 409, nil, `{"success":false,"error":"Name already taken"}`},
	})
	ctx := context.Background()
	reg, err := c.Register(ctx, "bot", "")
	if err != nil || reg.Agent.APIKey != "chatr_ffffffffffffffffffffffffffffffff" || c.APIKey() != reg.Agent.APIKey {
		t.Fatalf("register: %+v %v", reg, err)
	}
	m, err := c.Post(ctx, "hi")
	if err != nil || m.ID != "12" || m.Timestamp.Format(timeFormat) != "2024-01-15T12:00:00.123Z" || m.MoltbookName != nil {
		t.Fatalf("post: %+v %v", m, err)
	}
	ms, err := c.Messages(ctx, MessagesQuery{Limit: 2, Before: "12"})
	if err != nil || len(ms) != 2 || ms[1].Content != "m11" {
		t.Fatalf("messages: %+v %v", ms, err)
	}
	al, err := c.Agents(ctx)
	if err != nil || len(al.Agents) != 1 || *al.Agents[0].MoltbookName != "clawd" || al.Agents[0].LastSeen == nil || al.Stats.TotalMessages != 12 {
		t.Fatalf("agents: %+v %v", al, err)
	}
	vc, err := c.VerifyStart(ctx, "clawd")
	if err != nil || vc.Code != "ABCD2345" || len(vc.Instructions) != 2 {
		t.Fatalf("verify start: %+v %v", vc, err)
	}
	_, err = c.Register(ctx, "bot", "")
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != 409 || e.Error() != "Name already taken (409)" {
		t.Fatalf("register again: %v", err)
	}
	want := []string{
		"POST /api/register ", // registering never sends the key the client may hold
		"POST /api/messages Bearer chatr_ffffffffffffffffffffffffffffffff",
		"GET /api/messages?before=12&limit=2 ",
		"GET /api/agents ",
		"POST /api/verify/start Bearer chatr_ffffffffffffffffffffffffffffffff",
		"POST /api/register ",
	}
	if got := seen(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRetryOn429(t *testing.T) {
	limited := recorded{"POST", "/api/messages", 429, http.Header{"Retry-After": {"1"}}, `{"success":false,"error":"Too many requests","retryAfter":1}`}
	ok := recorded{"POST", "/api/messages", 200, nil, `{"success":true,"message":` + recordedMessage(1) + `}`}

	c, _ := replayREST(t, []recorded{limited})
	start := time.Now()
	_, err := c.Post(context.Background(), "x")
	if d, is := IsRateLimited(err); !is || d != time.Second || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("without WithRetryOn429: %v after %v, want the 429 at once", err, time.Since(start))
	}

	c, seen := replayREST(t, []recorded{limited, ok})
	WithRetryOn429(1)(c)
	start = time.Now()
	m, err := c.Post(context.Background(), "x")
	if err != nil || m.ID != "1" || time.Since(start) < time.Second || len(seen()) != 2 {
		t.Fatalf("with WithRetryOn429: %v %v after %v", m, err, time.Since(start))
	}

	c, _ = replayREST(t, []recorded{limited, limited})
	WithRetryOn429(1)(c)
	if _, err := c.Post(context.Background(), "x"); StatusCode(err) != 429 {
		t.Fatalf("attempts exhausted: %v, want the last 429", err)
	}

	c, _ = replayREST(t, []recorded{limited})
	WithRetryOn429(5)(c)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Post(ctx, "x"); StatusCode(err) != 429 {
		t.Fatalf("deadline shorter than Retry-After: %v, want the 429", err)
	}
}

func TestVerifyCompletePolls(t *testing.T) {
	c, seen := replayREST(t, []recorded{
		{"POST", "/api/verify/complete", 202, http.Header{"Retry-After": {"1"}}, `{"success":true,"pending":true,"status":"queued","retryAfter":1}`},
		{"GET", "/api/verify/status", 200, nil, `{"success":true,"status":"retrying","pending":true,"retryAfter":1}`},
		{"GET", "/api/verify/status", 200, nil, `{"success":true,"status":"verified","verified":true,"moltbookName":"clawd","ownerTwitter":"handle","message":"🦞 Verified as clawd on Moltbook! (owner: @handle)"}`},
	})
	start := time.Now()
	v, err := c.VerifyComplete(context.Background(), "clawd")
	if err != nil || !v.Verified || *v.OwnerTwitter != "handle" {
		t.Fatalf("%+v %v", v, err)
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("done after %v: the two retryAfter waits were not honoured", el)
	}
	if n := len(seen()); n != 3 {
		t.Errorf("%d requests, want 3 (complete is not asked again: that would start another check)", n)
	}

	// A final failure reaches the caller as the contract's error, whether
	// complete gives it at once or status gives it after a 202.
	notFound := `{"success":false,"error":"Verification POST not found. ...","code":"ABCD2345","hint":"Your post content must contain: [ABCD2345]","moltbookName":"clawd","status":"post_not_found"}`
	for _, answers := range [][]recorded{
		{{"POST", "/api/verify/complete", 404, nil, notFound}},
		{{"POST", "/api/verify/complete", 202, nil, `{"success":true,"pending":true,"status":"running","retryAfter":1}`},
			{"GET", "/api/verify/status", 404, nil, notFound}},
	} {
		c, _ = replayREST(t, answers)
		_, err = c.VerifyComplete(context.Background(), "clawd")
		var e *Error
		if !errors.As(err, &e) || e.Code != "ABCD2345" || e.StatusCode != 404 {
			t.Fatalf("post not found: %v", err)
		}
	}
}

func TestNoKey(t *testing.T) {
	c, _ := New("http://127.0.0.1:1")
	if err := c.Heartbeat(context.Background()); !errors.Is(err, ErrNoKey) {
		t.Fatalf("%v", err)
	}
	if err := c.KeepOnline(context.Background(), time.Hour); !errors.Is(err, ErrNoKey) {
		t.Fatalf("KeepOnline without a key: %v", err)
	}
	for _, u := range []string{"", "ftp://x", "127.0.0.1:8080", "http://"} {
		if _, err := New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}
