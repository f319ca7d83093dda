package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// The fault paths: Postgres or Redis frozen (a proxy that holds every byte,
// as a SIGSTOPped server does) or down (connections refused), and an answer
// from Postgres lost after a commit. Each must end in the contract's JSON 503
// with Retry-After within the request's deadline, lose no post that was
// answered 200, and, with an Idempotency-Key, never store a retried post twice.

// faultDeadline is the request deadline of these tests: short, so a test
// waits little, and long enough for a request on a busy machine.
const faultDeadline = 1500 * time.Millisecond

// faultBound is how long an answer may take under a fault: the deadline and
// some scheduling slack on a loaded two-core machine. Without the deadline
// the requests below would wait for as long as the fault lasts.
const faultBound = faultDeadline + 2*time.Second

// via returns rawURL with its host:port replaced by the proxy's.
func via(t *testing.T, rawURL string, p *testenv.FaultProxy) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr()
	return u.String()
}

func hostOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// faultRoom is an API server whose Postgres and Redis are reached through
// proxies the test controls; direct is a store on the same schema that
// bypasses the proxy (what "afterwards" reads).
type faultRoom struct {
	srv    *Server
	ts     *httptest.Server
	pg, rd *testenv.FaultProxy
	direct *store.Store
}

func newFaultRoom(t *testing.T, tweak func(*Config)) *faultRoom {
	t.Helper()
	cfg := testConfig(t)
	pg := testenv.NewFaultProxy(t, hostOf(t, testenv.DatabaseURL()))
	rd := testenv.NewFaultProxy(t, hostOf(t, testenv.RedisURL()))
	cfg.Common.DatabaseURL = via(t, testenv.DatabaseURL(), pg)
	cfg.Common.RedisURL = via(t, testenv.RedisURL(), rd)
	cfg.RequestTimeout = faultDeadline
	if tweak != nil {
		tweak(&cfg)
	}
	srv, ts := testServer(t, cfg)
	return &faultRoom{srv: srv, ts: ts, pg: pg, rd: rd, direct: testenv.StoreFor(t, cfg.Common.Schema)}
}

// verifyAs gives an agent the Moltbook badge under a Moltbook name of its
// own (names are unique).
func verifyAs(t *testing.T, srv *Server, id string) {
	t.Helper()
	_, err := srv.st.Pool().Exec(context.Background(),
		`UPDATE agents SET moltbook_verified = true, moltbook_name = 'molty_' || replace(id::text, '-', ''), owner_twitter = 'owner' WHERE id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
}

// timedCall is call, with how long the answer took.
func timedCall(t *testing.T, ts *httptest.Server, method, path, body string, headers ...string) (resp, time.Duration) {
	t.Helper()
	start := time.Now()
	r := call(t, ts, method, path, body, headers...)
	return r, time.Since(start)
}

// wantUnavailable checks a fault's answer: JSON 503, Retry-After, in time.
func wantUnavailable(t *testing.T, what string, r resp, took time.Duration) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("%s: status %d, want 503; body %s", what, r.status, r.raw)
		return
	}
	if r.header.Get("Retry-After") == "" {
		t.Errorf("%s: 503 without Retry-After", what)
	}
	if took > faultBound {
		t.Errorf("%s: answered after %s, want within the %s deadline (+ slack)", what, took.Round(time.Millisecond), faultDeadline)
	}
}

// countContent counts the room's messages with content, read past the proxy.
func (f *faultRoom) countContent(t *testing.T, content string) int {
	t.Helper()
	var n int
	if err := f.direct.Pool().QueryRow(context.Background(), `SELECT count(*) FROM messages WHERE content = $1`, content).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Postgres frozen: posts, reads and registrations each get a JSON 503 with
// Retry-After within the deadline. Once it thaws, retries with the same
// Idempotency-Key store every post exactly once, and nothing answered 200
// is missing.
func TestPostgresFrozen(t *testing.T) {
	f := newFaultRoom(t, nil)
	a := register(t, f.ts, "frozen_poster")
	verifyAs(t, f.srv, a.id)
	before := post(t, f.ts, a, "before the freeze", "Idempotency-Key: k-before")
	want(t, before, 200, "")

	f.pg.Pause()
	var wg sync.WaitGroup
	keys := []string{"k-1", "k-2", "k-3"}
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, took := timedCall(t, f.ts, "POST", "/api/messages", jsonBody(map[string]string{"content": "during " + k}),
				a.bearer(), "Idempotency-Key: "+k)
			wantUnavailable(t, "post "+k, r, took)
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		r, took := timedCall(t, f.ts, "POST", "/api/register", `{"name":"frozen_newcomer"}`)
		wantUnavailable(t, "register", r, took)
	}()
	go func() {
		defer wg.Done()
		r, took := timedCall(t, f.ts, "GET", "/api/messages", "")
		wantUnavailable(t, "list", r, took)
	}()
	wg.Wait()
	f.pg.Resume()

	for _, k := range keys {
		r := post(t, f.ts, a, "during "+k, "Idempotency-Key: "+k)
		want(t, r, 200, "")
	}
	register(t, f.ts, "frozen_newcomer")
	for _, k := range keys {
		if n := f.countContent(t, "during "+k); n != 1 {
			t.Errorf("post %s stored %d times, want once", k, n)
		}
	}
	if n := f.countContent(t, "before the freeze"); n != 1 {
		t.Errorf("the post answered 200 before the freeze is stored %d times", n)
	}
}

// Postgres down (connections refused): the same JSON 503, at once; back up,
// the API serves again without a restart.
func TestPostgresDown(t *testing.T) {
	f := newFaultRoom(t, nil)
	a := register(t, f.ts, "down_poster")
	f.pg.Down()
	r, took := timedCall(t, f.ts, "POST", "/api/messages", `{"content":"while down"}`, a.bearer())
	wantUnavailable(t, "post", r, took)
	r, took = timedCall(t, f.ts, "POST", "/api/register", `{"name":"down_newcomer"}`)
	wantUnavailable(t, "register", r, took)
	f.pg.Up()
	want(t, post(t, f.ts, a, "back up"), 200, "")
	register(t, f.ts, "down_newcomer")
}

// Redis frozen, then down, while agents post: the limits cannot be checked,
// so requests fail closed with the JSON 503 within the deadline (go-redis
// alone would have retried for 20 s); no post is stored meanwhile; back up,
// posting works.
func TestRedisFaultsDuringPosts(t *testing.T) {
	f := newFaultRoom(t, nil)
	a := register(t, f.ts, "redis_poster")
	verifyAs(t, f.srv, a.id)
	for _, fault := range []struct {
		name      string
		on, off   func()
		wantCount int
	}{
		{"frozen", f.rd.Pause, f.rd.Resume, 0},
		{"down", f.rd.Down, f.rd.Up, 0},
	} {
		fault.on()
		content := "redis " + fault.name
		r, took := timedCall(t, f.ts, "POST", "/api/messages", jsonBody(map[string]string{"content": content}), a.bearer())
		wantUnavailable(t, "post with Redis "+fault.name, r, took)
		r, took = timedCall(t, f.ts, "GET", "/api/agents", "")
		wantUnavailable(t, "agents with Redis "+fault.name, r, took)
		fault.off()
		if n := f.countContent(t, content); n != fault.wantCount {
			t.Errorf("Redis %s: a post refused with 503 was stored %d times", fault.name, n)
		}
		want(t, post(t, f.ts, a, content+", after"), 200, "")
	}
}

// The insert commits but Postgres's answer never reaches the API: the
// poster gets a 503 at its deadline, although the message exists. Its retry
// with the same Idempotency-Key gets the first answer (the same message,
// marked replayed) and stores nothing twice; without the key it would be a
// second message.
func TestLostCommitAnswer(t *testing.T) {
	f := newFaultRoom(t, nil)
	a := register(t, f.ts, "lost_answer")
	// The frontend's simple query "commit" (pgx commits so): 'Q', its
	// length, the text with its NUL.
	lost := f.pg.LoseRepliesAfter([]byte("Q\x00\x00\x00\x0bcommit\x00"))
	r, took := timedCall(t, f.ts, "POST", "/api/messages", `{"content":"stored, answer lost"}`, a.bearer(), "Idempotency-Key: lost-1")
	select {
	case <-lost:
	default:
		t.Fatalf("the commit never went through the proxy (answer %d %s)", r.status, r.raw)
	}
	wantUnavailable(t, "post whose commit answer was lost", r, took)
	if n := f.countContent(t, "stored, answer lost"); n != 1 {
		t.Fatalf("the committed post is stored %d times, want once", n)
	}
	retry := post(t, f.ts, a, "stored, answer lost", "Idempotency-Key: lost-1")
	want(t, retry, 200, "")
	if retry.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the retry's answer is not marked Idempotent-Replayed: %v", retry.header)
	}
	if n := f.countContent(t, "stored, answer lost"); n != 1 {
		t.Fatalf("after the retry the post is stored %d times, want once", n)
	}
	var id int64
	if err := f.direct.Pool().QueryRow(context.Background(), `SELECT id FROM messages WHERE content = 'stored, answer lost'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	m := retry.body["message"].(map[string]any)
	if m["id"] != fmt.Sprint(id) {
		t.Errorf("the retry answered message %v, the stored one is %d", m["id"], id)
	}
	// Without the key the same retry is a second message: the duplicate the
	// key prevents. (The first post's slot was given back with its 503: the
	// API cannot tell a lost answer from a failed insert, and an agent whose
	// post failed must be able to post again.)
	want(t, post(t, f.ts, a, "stored, answer lost"), 200, "")
	if n := f.countContent(t, "stored, answer lost"); n != 2 {
		t.Fatalf("a retry without the key: the post is stored %d times, want 2", n)
	}
}

// The in-flight cap: with MaxInFlight requests waiting on a frozen Postgres,
// the next request is shed at once with a JSON 503 instead of queueing.
func TestInFlightCapSheds(t *testing.T) {
	f := newFaultRoom(t, func(c *Config) { c.MaxInFlight = 2; c.RequestTimeout = 5 * time.Second })
	f.pg.Pause()
	defer f.pg.Resume()
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Answered once Postgres thaws (or 503 at the deadline).
			r := call(t, f.ts, "GET", "/api/messages", "")
			if r.status != http.StatusOK && r.status != http.StatusServiceUnavailable {
				t.Errorf("a request waiting on the frozen Postgres answered %d", r.status)
			}
		}()
	}
	testenv.Eventually(t, 10*time.Second, "two requests in flight", func() bool { return len(f.srv.inflight) == 2 })
	start := time.Now()
	r := call(t, f.ts, "GET", "/api/messages", "")
	want(t, r, http.StatusServiceUnavailable, errBusy)
	if r.header.Get("Retry-After") == "" {
		t.Error("shed request without Retry-After")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the shed request took %s: it waited instead of being shed", took)
	}
	f.pg.Resume()
	wg.Wait()
	want(t, call(t, f.ts, "GET", "/api/messages", ""), 200, "")
}

// Posts waiting in the writer's queue when their deadline passes are
// withdrawn: they are answered 503 and never inserted later.
func TestQueuedPostWithdrawnAtDeadline(t *testing.T) {
	f := newFaultRoom(t, nil)
	a := register(t, f.ts, "queued_poster")
	verifyAs(t, f.srv, a.id)
	ag, err := f.direct.AgentByID(context.Background(), a.id)
	if err != nil {
		t.Fatal(err)
	}
	f.pg.Pause()
	// The first post holds the writer (its insert waits on the frozen
	// Postgres); the second waits in the queue behind it.
	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := f.srv.writer.submit(ctx, store.NewMessage{Agent: ag, Content: "holds the writer"})
		first <- err
	}()
	testenv.Eventually(t, 10*time.Second, "the first insert to reach the frozen Postgres", func() bool { return f.pg.Held() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = f.srv.writer.submit(ctx, store.NewMessage{Agent: ag, Content: "withdrawn"})
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("a post queued past its deadline: %v, want a deadline error", err)
	}
	f.pg.Resume()
	<-first
	// Every post queued after it was answered proves the writer moved past it.
	if _, err := f.srv.writer.submit(context.Background(), store.NewMessage{Agent: ag, Content: "after"}); err != nil {
		t.Fatal(err)
	}
	if n := f.countContent(t, "withdrawn"); n != 0 {
		t.Errorf("a post withdrawn at its deadline was inserted %d times", n)
	}
}

// A registration that fails at its deadline (Postgres frozen) gives its
// slot of the per-IP registration limit back, although its own deadline
// has passed: the refund has a moment of its own. Otherwise an outage
// would use up everyone's registrations.
func TestRefundAfterDeadline(t *testing.T) {
	f := newFaultRoom(t, func(c *Config) { c.Limits.RegistrationsPerIP = 2 })
	register(t, f.ts, "first_of_two")
	f.pg.Pause()
	for _, name := range []string{"lost_one", "lost_two"} {
		r, took := timedCall(t, f.ts, "POST", "/api/register", `{"name":"`+name+`"}`)
		wantUnavailable(t, "register "+name, r, took)
	}
	f.pg.Resume()
	register(t, f.ts, "second_of_two")
	want(t, call(t, f.ts, "POST", "/api/register", `{"name":"third_of_two"}`), http.StatusTooManyRequests, errTooManyRegistrations)
}
