package verifier_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/testenv"
)

const takenMsg = `Moltbook account "shared" already verifies another agent. A Moltbook account can verify only one agent`

// One Moltbook account verifies one agent. A second agent claiming an
// account that already verifies someone gets 409 from start and from
// complete, with the contract's error envelope, and Moltbook is not asked
// again for it; status tells the same 409; the first agent keeps its badge.
func TestMoltbookAccountVerifiesOneAgent(t *testing.T) {
	rm := newRoom(t, 5*time.Second)
	startVerifier(t, testConfig(rm.schema, rm.fakeURL))
	owner, thief := rm.register(t, "owner"), rm.register(t, "thief")
	// The thief starts before the owner is verified, so it holds a code.
	ownerCode := rm.start(t, owner, "shared")
	thiefCode := rm.start(t, thief, "shared")
	ag := fakemoltbook.Verified("shared", "human", ownerCode)
	ag.Posts = append(ag.Posts, fakemoltbook.Post{Content: fakemoltbook.VerificationMessage(thiefCode)})
	rm.fake.Set(ag)

	r, _ := rm.completeFinal(t, owner, "shared")
	want(t, r, 200, "")
	if r.body["verified"] != true {
		t.Fatalf("owner not verified: %s", r.raw)
	}
	asked := rm.fake.Requests("shared")

	r = rm.call(t, "POST", "/api/verify/complete", thief.key, `{"moltbookName":"shared"}`)
	want(t, r, http.StatusConflict, takenMsg)
	if r.str("status") != "taken" || r.str("moltbookName") != "shared" || r.str("hint") == "" {
		t.Errorf("409 answer: %s", r.raw)
	}
	st := rm.call(t, "GET", "/api/verify/status", thief.key, "")
	want(t, st, http.StatusConflict, takenMsg)
	r = rm.call(t, "POST", "/api/verify/start", thief.key, `{"moltbookName":" Shared "}`)
	want(t, r, http.StatusConflict, takenMsg)
	if n := rm.fake.Requests("shared"); n != asked {
		t.Errorf("Moltbook asked %d more times for a taken account", n-asked)
	}

	// The owner may repeat itself; the thief stays unverified.
	r = rm.call(t, "POST", "/api/verify/start", owner.key, `{"moltbookName":"shared"}`)
	want(t, r, 200, "")
	for _, a := range []agentKey{owner, thief} {
		ag, err := rm.st.AgentByID(context.Background(), a.id)
		if err != nil {
			t.Fatal(err)
		}
		if ag.MoltbookVerified != (a == owner) {
			t.Errorf("%s verified: %v", a.name, ag.MoltbookVerified)
		}
	}
}

// Two agents complete with one account at the same moment, both with their
// code posted: exactly one is verified, the other gets 409, whichever way
// the race between the API's check and the workers goes.
func TestConcurrentClaimsOfOneAccount(t *testing.T) {
	rm := newRoom(t, 5*time.Second)
	startVerifier(t, testConfig(rm.schema, rm.fakeURL))
	startVerifier(t, testConfig(rm.schema, rm.fakeURL))
	a, b := rm.register(t, "alpha"), rm.register(t, "beta")
	ag := fakemoltbook.Verified("shared", "human", rm.start(t, a, "shared"))
	ag.Posts = append(ag.Posts, fakemoltbook.Post{Content: fakemoltbook.VerificationMessage(rm.start(t, b, "shared"))})
	rm.fake.Set(ag)

	// Both completes go at once; the answers are followed on this goroutine.
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	errs := make([]error, 2)
	for i, k := range []agentKey{a, b} {
		wg.Go(func() {
			req, err := http.NewRequest("POST", rm.api.URL+"/api/verify/complete", strings.NewReader(`{"moltbookName":"shared"}`))
			if err != nil {
				errs[i] = err
				return
			}
			req.Header.Set("Authorization", "Bearer "+k.key)
			req.Header.Set("Content-Type", "application/json")
			res, err := rm.api.Client().Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			res.Body.Close()
			statuses[i] = res.StatusCode
		})
	}
	wg.Wait()
	answers := make([]resp, 2)
	for i, k := range []agentKey{a, b} {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if statuses[i] == http.StatusAccepted {
			testenv.Eventually(t, 30*time.Second, k.name+"'s verification to finish", func() bool {
				answers[i] = rm.call(t, "GET", "/api/verify/status", k.key, "")
				return answers[i].body["pending"] != true
			})
		} else {
			answers[i] = rm.call(t, "GET", "/api/verify/status", k.key, "")
		}
	}
	codes := map[int]int{}
	for _, r := range answers {
		codes[r.status]++
	}
	if codes[200] != 1 || codes[409] != 1 {
		t.Fatalf("answers %d and %d (%s | %s), want one 200 and one 409", answers[0].status, answers[1].status, answers[0].raw, answers[1].raw)
	}
	var n int
	if err := rm.st.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM agents WHERE moltbook_verified AND moltbook_name = 'shared'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d agents verified with the account (%v), want 1", n, err)
	}
}

// newLimitedRoom is newRoom with the per-agent verification limit set.
func newLimitedRoom(t *testing.T, verifyWait time.Duration, perAgent int, window time.Duration) *room {
	t.Helper()
	schema := testenv.Schema(t)
	fake := fakemoltbook.New()
	fsrv := httptest.NewServer(fake)
	t.Cleanup(fsrv.Close)
	limits := config.DefaultLimits()
	limits.RegistrationsPerIP, limits.RequestsPerIP = 10000, 100000
	limits.VerificationsPerAgent, limits.VerificationWindow = perAgent, window
	srv, err := api.New(context.Background(), api.Config{
		Common:     config.Common{DatabaseURL: testenv.DatabaseURL(), Schema: schema, RedisURL: testenv.RedisURL(), Migrate: true},
		Limits:     limits,
		VerifyWait: verifyWait,
		DBMaxConns: 8,
	}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return &room{schema: schema, fake: fake, fakeURL: fsrv.URL + "/api/v1", api: ts, st: testenv.StoreFor(t, schema)}
}

// One job in flight per agent, and a limit on new ones: repeating complete
// while the job runs answers its state (and costs no Moltbook call);
// once the agent has started its limit of jobs within the window, complete
// answers 429 with Retry-After and retryAfter, without asking Moltbook; other
// agents are not held back.
func TestVerificationAttemptsPerAgent(t *testing.T) {
	rm := newLimitedRoom(t, 200*time.Millisecond, 2, 10*time.Minute)
	cfg := testConfig(rm.schema, rm.fakeURL)
	cfg.PostAttempts, cfg.MoltbookTimeout, cfg.Lease = 1, 5*time.Second, 8*time.Second
	startVerifier(t, cfg)
	a := rm.register(t, "eager")
	code := rm.start(t, a, "eagerbook")

	// Attempt 1, slow: pending, and asking again while it runs joins it.
	slow := fakemoltbook.Agent{Name: "eagerbook", Claimed: true, Owner: "o"}
	slow.Faults = []fakemoltbook.Fault{{Delay: fakemoltbook.Duration(1500 * time.Millisecond)}}
	rm.fake.Set(slow)
	r := rm.call(t, "POST", "/api/verify/complete", a.key, `{"moltbookName":"eagerbook"}`)
	want(t, r, http.StatusAccepted, "")
	for range 3 {
		r = rm.call(t, "POST", "/api/verify/complete", a.key, `{"moltbookName":"eagerbook"}`)
		if r.status != http.StatusAccepted && r.status != http.StatusNotFound {
			t.Fatalf("complete asked again: %d %s, want the job's state (202, or its final 404)", r.status, r.raw)
		}
	}
	testenv.Eventually(t, 30*time.Second, "the first job to finish", func() bool {
		r = rm.call(t, "GET", "/api/verify/status", a.key, "")
		return r.body["pending"] != true
	})
	want(t, r, http.StatusNotFound, "")
	if n := rm.fake.Requests("eagerbook"); n != 1 {
		t.Fatalf("Moltbook asked %d times, want 1: asking again must join the job, not start another", n)
	}
	var jobs int
	if err := rm.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM verification_jobs WHERE agent_id = $1`, a.id).Scan(&jobs); err != nil || jobs != 1 {
		t.Fatalf("%d jobs (%v), want 1", jobs, err)
	}

	// Attempt 2 (still no post): a final 404. Attempt 3: refused.
	r, _ = rm.completeFinal(t, a, "eagerbook")
	want(t, r, http.StatusNotFound, "")
	rm.fake.Set(fakemoltbook.Verified("eagerbook", "o", code))
	r = rm.call(t, "POST", "/api/verify/complete", a.key, `{"moltbookName":"eagerbook"}`)
	want(t, r, http.StatusTooManyRequests, "Too many verification attempts: at most 2 per 10 minutes. "+
		"Make sure the post with the code is on Moltbook before calling POST /api/verify/complete again")
	ra, _ := r.body["retryAfter"].(float64)
	if ra < 500 || ra > 600 || r.header.Get("Retry-After") != strconv.Itoa(int(ra)) {
		t.Errorf("retryAfter %v, Retry-After %q: want the ~10 minutes until the first attempt leaves the window", ra, r.header.Get("Retry-After"))
	}
	if n := rm.fake.Requests("eagerbook"); n != 2 {
		t.Errorf("Moltbook asked %d times, want 2 (the refused attempt asks nothing)", n)
	}
	// Status still tells the last job's answer.
	want(t, rm.call(t, "GET", "/api/verify/status", a.key, ""), http.StatusNotFound, "")

	// Another agent is not held back.
	b := rm.register(t, "patient")
	rm.fake.Set(fakemoltbook.Verified("patientbook", "p", rm.start(t, b, "patientbook")))
	r, _ = rm.completeFinal(t, b, "patientbook")
	want(t, r, 200, "")
}
