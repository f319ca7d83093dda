package moltbook_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/moltbook"
)

func newClient(t *testing.T, base string, o moltbook.Options) *moltbook.Client {
	t.Helper()
	o.BaseURL = base
	c, err := moltbook.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Every scenario of the fake, read through the client: what verification
// decides on (claimed, owner, the code in a recent POST) comes out right
// whatever casing or submolt shape Moltbook answers with.
func TestProfileScenarios(t *testing.T) {
	fake := fakemoltbook.New()
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c := newClient(t, srv.URL+"/api/v1", moltbook.Options{})
	ctx := context.Background()

	old := fakemoltbook.Verified("oldie", "own", "OLDC0DE2")
	for i := 0; i < fakemoltbook.RecentPosts; i++ {
		old.Posts = append([]fakemoltbook.Post{{Content: "newer post " + strconv.Itoa(i)}}, old.Posts...)
	}
	camel := fakemoltbook.Verified("Camel", "camelowner", "CAMELC2D")
	camel.CamelCase, camel.SubmoltObject = true, true
	noOwner := fakemoltbook.Verified("noowner", "", "N0OWNER2")
	for _, a := range []fakemoltbook.Agent{
		fakemoltbook.Verified("happy", "someuser", "ABCD2345"),
		{Name: "unclaimed", Posts: []fakemoltbook.Post{{Content: "[UNCL2345]"}}},
		{Name: "commenter", Claimed: true, Owner: "o", Comments: []string{"here it is [COMM2345]"}},
		old, camel, noOwner,
		{Name: "titled", Claimed: true, Owner: "t", Posts: []fakemoltbook.Post{{Title: "[TITL2345]", Content: "see title"}}},
	} {
		fake.Set(a)
	}

	tests := []struct {
		name, code, owner string
		claimed, found    bool
	}{
		{"happy", "ABCD2345", "someuser", true, true},
		{"HAPPY", "ABCD2345", "someuser", true, true},
		{"unclaimed", "UNCL2345", "", false, true},
		{"commenter", "COMM2345", "o", true, false},
		{"oldie", "OLDC0DE2", "own", true, false},
		{"camel", "CAMELC2D", "camelowner", true, true},
		{"noowner", "N0OWNER2", "", true, true},
		{"titled", "TITL2345", "t", true, true},
		{"happy", "WRONG234", "someuser", true, false},
	}
	for _, tt := range tests {
		p, _, err := c.Profile(ctx, tt.name)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		_, found := p.FindCode(tt.code)
		if p.Claimed != tt.claimed || p.OwnerXHandle != tt.owner || found != tt.found {
			t.Errorf("%s: claimed=%v owner=%q found=%v, want %v %q %v", tt.name, p.Claimed, p.OwnerXHandle, found, tt.claimed, tt.owner, tt.found)
		}
	}
	p, _, _ := c.Profile(ctx, "camel")
	if len(p.Posts) != 1 || p.Posts[0].Submolt != "general" || p.Posts[0].CreatedAt == "" || p.Posts[0].ID == "" {
		t.Errorf("camel posts parsed as %+v", p.Posts)
	}
	// A code without its brackets is not the code.
	fake.Set(fakemoltbook.Agent{Name: "bare", Claimed: true, Posts: []fakemoltbook.Post{{Content: "BARE2345"}}})
	if p, _, _ := c.Profile(ctx, "bare"); func() bool { _, ok := p.FindCode("BARE2345"); return ok }() {
		t.Error("a code without brackets verified")
	}

	_, _, err := c.Profile(ctx, "nobody")
	if !errors.Is(err, moltbook.ErrNotFound) {
		t.Errorf("unknown agent: %v, want ErrNotFound", err)
	}
	if fake.Requests("nobody") != 1 || fake.Requests("happy") != 3 {
		t.Errorf("request counts: nobody %d happy %d", fake.Requests("nobody"), fake.Requests("happy"))
	}
}

func TestProfileFailures(t *testing.T) {
	fake := fakemoltbook.New()
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c := newClient(t, srv.URL+"/api/v1", moltbook.Options{Timeout: 300 * time.Millisecond})
	ctx := context.Background()
	a := fakemoltbook.Verified("flaky", "o", "FLAK2345")
	a.Faults = []fakemoltbook.Fault{
		{Status: 503, Times: 2},
		{Status: 429, ResetAfter: fakemoltbook.Duration(3 * time.Second)},
		{Status: 429, RetryAfter: fakemoltbook.Duration(7 * time.Second)},
		{Malformed: true},
		{Delay: fakemoltbook.Duration(2 * time.Second)},
		{Status: 401},
	}
	fake.Set(a)

	var ue *moltbook.UpstreamError
	for i := 0; i < 2; i++ {
		if _, _, err := c.Profile(ctx, "flaky"); !errors.As(err, &ue) || ue.Status != 503 || !ue.Temporary {
			t.Fatalf("call %d: %v, want a temporary 503", i, err)
		}
	}
	var rl *moltbook.RateLimitedError
	_, _, err := c.Profile(ctx, "flaky")
	if !errors.As(err, &rl) || rl.Wait < time.Second || rl.Wait > 4*time.Second || rl.Reset.IsZero() {
		t.Fatalf("429 with reset: %v (%+v)", err, rl)
	}
	_, _, err = c.Profile(ctx, "flaky")
	if !errors.As(err, &rl) || rl.Wait != 7*time.Second {
		t.Fatalf("429 with Retry-After: %v", err)
	}
	var me *moltbook.MalformedError
	if _, _, err := c.Profile(ctx, "flaky"); !errors.As(err, &me) {
		t.Fatalf("malformed: %v", err)
	}
	start := time.Now()
	if _, _, err := c.Profile(ctx, "flaky"); !errors.As(err, &ue) || !ue.Temporary || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("slow answer: %v, want a temporary timeout", err)
	}
	if time.Since(start) > 1500*time.Millisecond {
		t.Errorf("timeout took %s", time.Since(start))
	}
	if _, _, err := c.Profile(ctx, "flaky"); !errors.As(err, &ue) || ue.Temporary || ue.Status != 401 {
		t.Fatalf("401: %v, want a permanent upstream error", err)
	}
	// Faults consumed: the agent answers normally again.
	if p, _, err := c.Profile(ctx, "flaky"); err != nil || !p.Claimed {
		t.Fatalf("after the faults: %v", err)
	}
	// Our own cancellation is not Moltbook's failure.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := c.Profile(cctx, "flaky"); !errors.Is(err, context.Canceled) || errors.As(err, &ue) {
		t.Fatalf("canceled: %v", err)
	}
}

// The name goes into the query escaped, and names that are not Moltbook
// names never reach the network: neither path nor query can be changed.
func TestNameCannotChangeTheRequest(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.RequestURI() + " auth=" + r.Header.Get("Authorization"))
		w.Write([]byte(`{"success":true,"agent":{"name":"x","is_claimed":true}}`))
	}))
	defer srv.Close()
	c := newClient(t, srv.URL+"/api/v1/", moltbook.Options{APIKey: "moltbook_sk_test"})
	for _, bad := range []string{"", "a/../../admin", "x?name=y", "x&name=evil", "a b", "x#frag", "%2e%2e", "é", strings.Repeat("a", 65)} {
		if _, _, err := c.Profile(context.Background(), bad); !errors.Is(err, moltbook.ErrInvalidName) {
			t.Errorf("%q: %v, want ErrInvalidName", bad, err)
		}
	}
	if got.Load() != nil {
		t.Fatalf("an invalid name reached the server: %v", got.Load())
	}
	if _, _, err := c.Profile(context.Background(), "Good_name-1"); err != nil {
		t.Fatal(err)
	}
	if want := "/api/v1/agents/profile?name=Good_name-1 auth=Bearer moltbook_sk_test"; got.Load() != want {
		t.Errorf("request %q, want %q", got.Load(), want)
	}
}

func TestResponseShapes(t *testing.T) {
	cases := []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		check       func(error) bool
		wantClaimed bool
	}{
		{"html 404 is not 'user not found'", 404, nil, "<html>nope</html>", func(err error) bool {
			var ue *moltbook.UpstreamError
			return errors.As(err, &ue) && !errors.Is(err, moltbook.ErrNotFound)
		}, false},
		{"too large", 200, nil, `{"success":true,"agent":{"name":"` + strings.Repeat("x", 2000) + `"}}`, func(err error) bool {
			var me *moltbook.MalformedError
			return errors.As(err, &me)
		}, false},
		{"success false with 200", 200, nil, `{"success":false,"error":"x"}`, func(err error) bool {
			var me *moltbook.MalformedError
			return errors.As(err, &me)
		}, false},
		{"agent null", 200, nil, `{"success":true,"agent":null}`, func(err error) bool {
			var me *moltbook.MalformedError
			return errors.As(err, &me)
		}, false},
		{"reset as seconds from now", 429, map[string]string{"X-RateLimit-Reset": "5"}, `{}`, func(err error) bool {
			var rl *moltbook.RateLimitedError
			return errors.As(err, &rl) && rl.Wait > 4*time.Second && rl.Wait <= 5*time.Second
		}, false},
		{"absurd retry-after is capped", 429, map[string]string{"Retry-After": "99999999"}, `{}`, func(err error) bool {
			var rl *moltbook.RateLimitedError
			return errors.As(err, &rl) && rl.Wait <= time.Hour
		}, false},
		{"string booleans, numeric ids, odd posts", 200, nil,
			`{"agent":{"name":"x","is_claimed":"true","owner":"notanobject"},"recentPosts":[1,"x",null,{"id":7,"content":"[CODE2345]","submolt":{"name":"general"}}],"extra":{"deep":[1,2]}}`,
			func(err error) bool { return err == nil }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := newClient(t, srv.URL, moltbook.Options{MaxBody: 1024})
			p, _, err := c.Profile(context.Background(), "x")
			if !tc.check(err) {
				t.Fatalf("got %v (%T)", err, err)
			}
			if err == nil {
				if p.Claimed != tc.wantClaimed {
					t.Errorf("claimed %v", p.Claimed)
				}
				if post, ok := p.FindCode("CODE2345"); !ok || post.ID != "7" {
					t.Errorf("post %+v found %v", post, ok)
				}
			}
		})
	}
}

func TestRateLimitHeaders(t *testing.T) {
	reset := time.Now().Add(30 * time.Second).Unix()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Limit", "100")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
		w.Write([]byte(`{"success":true,"agent":{"name":"x"}}`))
	}))
	defer srv.Close()
	_, rl, err := newClient(t, srv.URL, moltbook.Options{}).Profile(context.Background(), "x")
	if err != nil || rl.Limit != 100 || !rl.HasRemaining || rl.Remaining != 0 || rl.Reset.Unix() != reset {
		t.Fatalf("%v %+v", err, rl)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"ftp://x", "not a url", "/relative", "https://x/api?x=1", "http://"} {
		if _, err := moltbook.New(moltbook.Options{BaseURL: u}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
	if _, err := moltbook.New(moltbook.Options{}); err != nil {
		t.Errorf("default URL: %v", err)
	}
}

// FuzzParseProfile: whatever Moltbook (or something in between) answers,
// parsing never panics, and what it accepts is consistent.
func FuzzParseProfile(f *testing.F) {
	f.Add([]byte(`{"success":true,"agent":{"name":"ClawdClawderberg","is_claimed":true,"owner":{"x_handle":"someuser"}},"recentPosts":[{"id":"u","title":"t","content":"... [ABC12345] ...","submolt":"general"}]}`))
	f.Add([]byte(`{"success":true,"agent":{"name":"x","isClaimed":true,"owner":null},"recentPosts":[{"id":1,"content":"[ABC12345]","submolt":{"id":"1","name":"general","display_name":"General"}}]}`))
	f.Add([]byte(`{"agent":{"is_claimed":"false"},"recent_posts":[{"content":null}]}`))
	f.Add([]byte(`{"success":false,"error":"Bot not found","searched_for":"Kleinbot"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"agent":{"owner":{"xHandle":"@h"}},"recentPosts":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := moltbook.ParseProfile(body)
		if err != nil {
			if p != nil {
				t.Fatal("a profile with an error")
			}
			return
		}
		for _, post := range p.Posts {
			if post.Content != "" && strings.Contains(post.Content, "[X]") {
				if _, ok := p.FindCode("X"); !ok {
					t.Fatal("FindCode missed a code in a post")
				}
			}
		}
		if _, ok := p.FindCode(""); ok {
			t.Fatal("empty code found")
		}
	})
}

// roundTrip answers every request with a canned response, in memory.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzProfileResponse: any status, rate-limit headers and body Moltbook (or
// a proxy) could send turn into a profile or one of the typed errors, never
// a panic, and never a wait beyond the cap.
func FuzzProfileResponse(f *testing.F) {
	f.Add(200, "", "", "", `{"success":true,"agent":{"name":"x","is_claimed":true}}`)
	f.Add(429, "7", "", "0", `{}`)
	f.Add(429, "", "1893456000", "0", `{"success":false}`)
	f.Add(429, "Wed, 21 Oct 2015 07:28:00 GMT", "-5", "x", ``)
	f.Add(404, "", "", "", `{"success":false,"error":"Bot not found"}`)
	f.Add(404, "", "", "", `<html>`)
	f.Add(503, "", "1e300", "NaN", `oops`)
	f.Add(302, "", "", "", ``)
	f.Fuzz(func(t *testing.T, status int, retryAfter, reset, remaining, body string) {
		if status < 100 || status > 999 {
			return
		}
		c, err := moltbook.New(moltbook.Options{BaseURL: "http://moltbook.invalid/api/v1", MaxBody: 4096,
			Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
				h := http.Header{}
				h.Set("Retry-After", retryAfter)
				h.Set("X-RateLimit-Reset", reset)
				h.Set("X-RateLimit-Remaining", remaining)
				return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
			})})
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := c.Profile(context.Background(), "x")
		var rl *moltbook.RateLimitedError
		var ue *moltbook.UpstreamError
		var me *moltbook.MalformedError
		switch {
		case err == nil:
			if p == nil || status != 200 {
				t.Fatalf("status %d: profile %v without error", status, p)
			}
		case errors.As(err, &rl):
			if status != 429 || rl.Wait < 0 || rl.Wait > time.Hour {
				t.Fatalf("status %d: %v", status, err)
			}
		case errors.Is(err, moltbook.ErrNotFound):
			if status != 404 {
				t.Fatalf("status %d: not found", status)
			}
		case errors.As(err, &ue), errors.As(err, &me):
		default:
			t.Fatalf("status %d: untyped error %v", status, err)
		}
	})
}
