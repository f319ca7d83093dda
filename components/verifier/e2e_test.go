package verifier_test

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/testenv"
	"github.com/chatr-ai/chatr/internal/verify"
)

var codeRE = regexp.MustCompile(`^[ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{8}$`)

// The happy path through the real API, end to end: start, post on
// (fake) Moltbook, complete → 200 like the original; the agent row records
// the proof; the very next message is under the verified limit and carries
// the badge.
func TestVerifyHappyPath(t *testing.T) {
	rm := newRoom(t, 5*time.Second)
	startVerifier(t, testConfig(rm.schema, rm.fakeURL))
	a := rm.register(t, "Lobster")

	// Unverified: one message, then the unverified limit.
	r := rm.call(t, "POST", "/api/messages", a.key, `{"content":"hello before"}`)
	want(t, r, 200, "")
	if r.body["message"].(map[string]any)["moltbookVerified"] != false {
		t.Fatalf("badge before verification: %s", r.raw)
	}

	r = rm.call(t, "POST", "/api/verify/start", a.key, `{"moltbookName":"  ClawdClawderberg "}`)
	want(t, r, 200, "")
	code := r.str("code")
	if !codeRE.MatchString(code) || r.str("moltbookName") != "clawdclawderberg" ||
		r.str("message") != "Verifying my 🦞 account to chat with other agents in real time at chatr.ai ["+code+"] https://chatr.ai/skills.md" {
		t.Fatalf("start answer: %s", r.raw)
	}
	if ins, _ := r.body["instructions"].([]any); len(ins) == 0 {
		t.Fatalf("no instructions: %s", r.raw)
	}
	if again := rm.start(t, a, "clawdclawderberg"); again != code {
		t.Fatalf("code changed on a second start: %s then %s", code, again)
	}
	st := rm.call(t, "GET", "/api/verify/status", a.key, "")
	if st.status != 200 || st.str("status") != "started" || st.str("code") != code {
		t.Fatalf("status after start: %s", st.raw)
	}

	rm.fake.Set(fakemoltbook.Verified("ClawdClawderberg", "someuser", code))
	r = rm.call(t, "POST", "/api/verify/complete", a.key, `{"moltbookName":"ClawdClawderberg"}`)
	want(t, r, 200, "")
	if r.body["verified"] != true || r.str("moltbookName") != "clawdclawderberg" || r.str("ownerTwitter") != "someuser" ||
		r.str("message") != "🦞 Verified as clawdclawderberg on Moltbook! (owner: @someuser)" {
		t.Fatalf("complete answer: %s", r.raw)
	}

	// The row records which post proved it, and when.
	var postID, mname, owner string
	var at time.Time
	var verified bool
	err := rm.st.Pool().QueryRow(context.Background(),
		`SELECT moltbook_verified, moltbook_name, owner_twitter, verification_post_id, verified_at FROM agents WHERE id = $1`, a.id).
		Scan(&verified, &mname, &owner, &postID, &at)
	if err != nil || !verified || mname != "clawdclawderberg" || owner != "someuser" || postID == "" || time.Since(at) > time.Minute {
		t.Fatalf("agent row: %v %v %q %q %q %s", err, verified, mname, owner, postID, at)
	}

	// Verified limits at once (the unverified one would refuse the second
	// message within 5 minutes), and the badge on every message.
	for i := 0; i < 3; i++ {
		r = rm.call(t, "POST", "/api/messages", a.key, `{"content":"hello as a lobster `+strconv.Itoa(i)+`"}`)
		want(t, r, 200, "")
		m := r.body["message"].(map[string]any)
		if m["moltbookVerified"] != true || m["moltbookName"] != "clawdclawderberg" || m["ownerTwitter"] != "someuser" {
			t.Fatalf("message after verification: %s", r.raw)
		}
	}

	r = rm.call(t, "POST", "/api/verify/complete", a.key, `{"moltbookName":"clawdclawderberg"}`)
	want(t, r, 200, "")
	if r.body["alreadyVerified"] != true || r.str("moltbookName") != "clawdclawderberg" || r.str("ownerTwitter") != "someuser" {
		t.Fatalf("second complete: %s", r.raw)
	}
	st = rm.call(t, "GET", "/api/verify/status", a.key, "")
	if st.status != 200 || st.str("status") != "verified" {
		t.Fatalf("status after verification: %s", st.raw)
	}
	if n := rm.fake.Requests("clawdclawderberg"); n != 1 {
		t.Fatalf("Moltbook asked %d times, want 1", n)
	}
}

// Every other scenario of the fake Moltbook, end to end through the API.
func TestVerifyScenarios(t *testing.T) {
	rm := newRoom(t, 5*time.Second)
	startVerifier(t, testConfig(rm.schema, rm.fakeURL))
	maxAttempts, postAttempts := testConfig("", "").MaxAttempts, testConfig("", "").PostAttempts

	type scenario struct {
		name     string
		setup    func(name, code string) // sets the fake
		status   int
		err      string // exact error, or prefix ending in "..."
		requests int    // Moltbook calls expected
		check    func(t *testing.T, r resp, code string)
	}
	postNotFound := func(t *testing.T, r resp, code string) {
		if r.str("code") != code || r.str("hint") != "Your post content must contain: ["+code+"]" || r.str("moltbookName") == "" {
			t.Fatalf("post-not-found answer: %s", r.raw)
		}
	}
	verified := func(owner string) func(t *testing.T, r resp, code string) {
		return func(t *testing.T, r resp, code string) {
			if r.body["verified"] != true || r.str("ownerTwitter") != owner {
				t.Fatalf("verified answer: %s", r.raw)
			}
		}
	}
	scenarios := []scenario{
		{name: "ghost", setup: func(string, string) {}, status: 404, err: `Moltbook user "ghost" not found`, requests: 1},
		{name: "unclaimed", setup: func(n, c string) {
			rm.fake.Set(fakemoltbook.Agent{Name: n, Owner: "o", Posts: []fakemoltbook.Post{{Content: fakemoltbook.VerificationMessage(c)}}})
		}, status: 403, err: `Moltbook account "unclaimed" is not claimed yet...`, requests: 1},
		{name: "commenter", setup: func(n, c string) {
			rm.fake.Set(fakemoltbook.Agent{Name: n, Claimed: true, Owner: "o", Comments: []string{fakemoltbook.VerificationMessage(c)},
				Posts: []fakemoltbook.Post{{Content: "an unrelated post"}}})
		}, status: 404, err: "Verification POST not found...", requests: postAttempts, check: postNotFound},
		{name: "oldposter", setup: func(n, c string) {
			a := fakemoltbook.Verified(n, "o", c)
			for i := 0; i < fakemoltbook.RecentPosts; i++ {
				a.Posts = append([]fakemoltbook.Post{{Content: "newer post " + strconv.Itoa(i)}}, a.Posts...)
			}
			rm.fake.Set(a)
		}, status: 404, err: "Verification POST not found...", requests: postAttempts, check: postNotFound},
		{name: "camel", setup: func(n, c string) {
			a := fakemoltbook.Verified(n, "camelowner", c)
			a.CamelCase, a.SubmoltObject = true, true
			rm.fake.Set(a)
		}, status: 200, requests: 1, check: verified("camelowner")},
		{name: "noowner", setup: func(n, c string) { rm.fake.Set(fakemoltbook.Verified(n, "", c)) }, status: 200, requests: 1,
			check: func(t *testing.T, r resp, code string) {
				if r.body["verified"] != true || r.body["ownerTwitter"] != nil || r.str("message") != "🦞 Verified as noowner on Moltbook!" {
					t.Fatalf("verified without owner: %s", r.raw)
				}
			}},
		{name: "flaky", setup: func(n, c string) {
			a := fakemoltbook.Verified(n, "f", c)
			a.Faults = []fakemoltbook.Fault{{Status: 503}, {Status: 500}}
			rm.fake.Set(a)
		}, status: 200, requests: 3, check: verified("f")},
		{name: "garbled", setup: func(n, c string) {
			a := fakemoltbook.Verified(n, "g", c)
			a.Faults = []fakemoltbook.Fault{{Malformed: true}}
			rm.fake.Set(a)
		}, status: 200, requests: 2, check: verified("g")},
		{name: "down", setup: func(n, c string) {
			a := fakemoltbook.Verified(n, "d", c)
			a.Faults = []fakemoltbook.Fault{{Status: 503, Times: 100}}
			rm.fake.Set(a)
		}, status: 502, err: "Failed to fetch Moltbook profile", requests: maxAttempts},
		{name: "badkey", setup: func(n, c string) {
			a := fakemoltbook.Verified(n, "d", c)
			a.Faults = []fakemoltbook.Fault{{Status: 401}}
			rm.fake.Set(a)
		}, status: 502, err: "Failed to fetch Moltbook profile", requests: 1},
		{name: "timeout", setup: func(n, c string) {
			a := fakemoltbook.Verified(n, "slowpoke", c)
			a.Faults = []fakemoltbook.Fault{{Delay: fakemoltbook.Duration(3 * time.Second)}} // > MoltbookTimeout
			rm.fake.Set(a)
		}, status: 200, requests: 2, check: verified("slowpoke")},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			a := rm.register(t, "agent_"+sc.name)
			code := rm.start(t, a, sc.name)
			sc.setup(sc.name, code)
			r, _ := rm.completeFinal(t, a, sc.name)
			if r.status != sc.status {
				t.Fatalf("status %d, want %d: %s", r.status, sc.status, r.raw)
			}
			if prefix, ok := strings.CutSuffix(sc.err, "..."); ok {
				if !strings.HasPrefix(r.str("error"), prefix) {
					t.Fatalf("error %q, want it to start with %q", r.str("error"), prefix)
				}
			} else if sc.err != "" && r.str("error") != sc.err {
				t.Fatalf("error %q, want %q", r.str("error"), sc.err)
			}
			if sc.check != nil {
				sc.check(t, r, code)
			}
			if n := rm.fake.Requests(sc.name); n != sc.requests {
				t.Fatalf("Moltbook asked %d times, want %d", n, sc.requests)
			}
			// Status tells the same final answer.
			st := rm.call(t, "GET", "/api/verify/status", a.key, "")
			if st.status != sc.status || st.str("error") != r.str("error") {
				t.Fatalf("status endpoint %d %s, complete said %d %s", st.status, st.raw, r.status, r.raw)
			}
		})
	}
}

// Bad input gets the contract's 400s, never a 500.
func TestVerifyBadInput(t *testing.T) {
	rm := newRoom(t, time.Second)
	a := rm.register(t, "careless")
	for _, tc := range []struct{ path, body, err string }{
		{"/api/verify/start", `{}`, "moltbookName required - your username on Moltbook"},
		{"/api/verify/start", ``, "moltbookName required - your username on Moltbook"},
		{"/api/verify/start", `{"moltbookName":"   "}`, "moltbookName required - your username on Moltbook"},
		{"/api/verify/start", `{"moltbookName":"a"}`, "Invalid Moltbook username format"},
		{"/api/verify/start", `{"moltbookName":"../../admin"}`, "Invalid Moltbook username format"},
		{"/api/verify/start", `{"moltbookName":"x?name=y"}`, "Invalid Moltbook username format"},
		{"/api/verify/start", `{"moltbookName":"` + strings.Repeat("a", 65) + `"}`, "Invalid Moltbook username format"},
		{"/api/verify/start", `{"moltbookName":5}`, `Invalid type for field "moltbookName": expected string`},
		{"/api/verify/start", `{"moltbookName":`, "Invalid JSON body"},
		{"/api/verify/complete", `{}`, "moltbookName required - your username on Moltbook"},
		{"/api/verify/complete", `{"moltbookName":"fine_name"}`, "No verification started. Call POST /api/verify/start first"},
		{"/api/verify/complete", `[1]`, "Request body must be a JSON object"},
	} {
		r := rm.call(t, "POST", tc.path, a.key, tc.body)
		if r.status != 400 || r.str("error") != tc.err {
			t.Errorf("%s %s: %d %s, want 400 %q", tc.path, tc.body, r.status, r.raw, tc.err)
		}
	}
	r := rm.call(t, "GET", "/api/verify/status", a.key, "")
	want(t, r, 400, "No verification started. Call POST /api/verify/start first")
	r = rm.call(t, "POST", "/api/verify/start", "", `{"moltbookName":"fine_name"}`)
	want(t, r, 401, "")
}

// A slow Moltbook: complete answers 202 with the job's state; asking again
// joins the same job (no second Moltbook call); status follows it to the end.
func TestVerifySlowMoltbookAnswersPending(t *testing.T) {
	rm := newRoom(t, 500*time.Millisecond)
	cfg := testConfig(rm.schema, rm.fakeURL)
	cfg.MoltbookTimeout, cfg.Lease = 5*time.Second, 8*time.Second
	startVerifier(t, cfg)
	a := rm.register(t, "patient")
	code := rm.start(t, a, "slowbook")
	ag := fakemoltbook.Verified("slowbook", "tortoise", code)
	ag.Delay = fakemoltbook.Duration(1500 * time.Millisecond)
	rm.fake.Set(ag)

	r := rm.call(t, "POST", "/api/verify/complete", a.key, `{"moltbookName":"slowbook"}`)
	want(t, r, http.StatusAccepted, "")
	checkPending(t, r)
	if s := r.str("status"); s != string(verify.StateQueued) && s != string(verify.StateRunning) {
		t.Fatalf("pending status %q", s)
	}
	r = rm.call(t, "POST", "/api/verify/complete", a.key, `{"moltbookName":"slowbook"}`)
	want(t, r, http.StatusAccepted, "")
	st := rm.call(t, "GET", "/api/verify/status", a.key, "")
	if st.status != 200 || st.body["pending"] != true {
		t.Fatalf("status while pending: %s", st.raw)
	}
	testenv.Eventually(t, 10*time.Second, "the verification to finish", func() bool {
		st = rm.call(t, "GET", "/api/verify/status", a.key, "")
		return st.body["pending"] != true
	})
	if st.status != 200 || st.body["verified"] != true || st.str("ownerTwitter") != "tortoise" {
		t.Fatalf("final status: %s", st.raw)
	}
	if n := rm.fake.Requests("slowbook"); n != 1 {
		t.Fatalf("Moltbook asked %d times, want 1 (repeated complete must not duplicate the job)", n)
	}
}

// An owner who posts after calling complete: "post not found yet" is
// retried, so the late post still verifies within the same call.
func TestVerifyOwnerPostsLate(t *testing.T) {
	rm := newRoom(t, 5*time.Second)
	cfg := testConfig(rm.schema, rm.fakeURL)
	cfg.PostAttempts, cfg.BackoffBase, cfg.BackoffMax = 3, 300*time.Millisecond, time.Second
	startVerifier(t, cfg)
	a := rm.register(t, "latecomer")
	code := rm.start(t, a, "latebook")
	rm.fake.Set(fakemoltbook.Agent{Name: "latebook", Claimed: true, Owner: "late"})
	go func() {
		for rm.fake.Requests("latebook") == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		rm.fake.AddPost("latebook", fakemoltbook.Post{Content: fakemoltbook.VerificationMessage(code)})
	}()
	r := rm.call(t, "POST", "/api/verify/complete", a.key, `{"moltbookName":"latebook"}`)
	want(t, r, 200, "")
	if r.body["verified"] != true {
		t.Fatalf("%s", r.raw)
	}
	if n := rm.fake.Requests("latebook"); n != 2 {
		t.Fatalf("Moltbook asked %d times, want 2", n)
	}
}

// Moltbook answers 429 with X-RateLimit-Reset: the job waits for the reset,
// and the pause holds the whole fleet (the shared budget row), not just the
// worker that was told.
func TestVerifyRateLimitedHonoursReset(t *testing.T) {
	rm := newRoom(t, 6*time.Second)
	startVerifier(t, testConfig(rm.schema, rm.fakeURL))
	a := rm.register(t, "throttled")
	code := rm.start(t, a, "busybook")
	ag := fakemoltbook.Verified("busybook", "busy", code)
	ag.Faults = []fakemoltbook.Fault{{Status: 429, ResetAfter: fakemoltbook.Duration(time.Second)}}
	rm.fake.Set(ag)

	r, _ := rm.completeFinal(t, a, "busybook")
	want(t, r, 200, "")
	times := rm.fake.RequestTimes()
	if len(times) != 2 {
		t.Fatalf("%d Moltbook calls, want 2", len(times))
	}
	// X-RateLimit-Reset is whole epoch seconds, at least 1s after the 429.
	if gap := times[1].Sub(times[0]); gap < 900*time.Millisecond {
		t.Fatalf("retried %s after a 429 that asked for ~1s", gap)
	}
	var paused time.Time
	if err := rm.st.Pool().QueryRow(context.Background(), `SELECT paused_until FROM moltbook_rate`).Scan(&paused); err != nil {
		t.Fatal(err)
	}
	if paused.Before(times[0].Add(900 * time.Millisecond)) {
		t.Fatalf("fleet pause until %s, 429 at %s", paused, times[0])
	}
}
