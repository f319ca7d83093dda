package verify_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
	"github.com/chatr-ai/chatr/internal/verify"
)

func newAgent(t *testing.T, st *store.Store, name string) store.Agent {
	t.Helper()
	h := sha256.Sum256([]byte("key-" + name))
	a, err := st.CreateAgent(context.Background(), name, "🤖", h[:])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestNormalizeName(t *testing.T) {
	ok := map[string]string{"  ClawdClawderberg ": "clawdclawderberg", "ab": "ab", "a_b-c9": "a_b-c9", strings.Repeat("X", 64): strings.Repeat("x", 64)}
	for in, want := range ok {
		if got, err := verify.NormalizeName(in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"": "moltbookName required - your username on Moltbook", "   ": "moltbookName required - your username on Moltbook",
		"a": "Invalid Moltbook username format", strings.Repeat("a", 65): "Invalid Moltbook username format",
		"a b": "Invalid Moltbook username format", "a/b": "Invalid Moltbook username format", "ä1": "Invalid Moltbook username format",
		"x?name=y": "Invalid Moltbook username format",
	} {
		if _, err := verify.NormalizeName(in); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"", "Ab", " x_y-Z ", "a/b", "ÄÖ", "a\x00b", "İstanbul"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		name, err := verify.NormalizeName(in)
		if err != nil {
			return
		}
		if len(name) < 2 || len(name) > 64 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
			t.Fatalf("%q normalised to invalid %q", in, name)
		}
		if again, err := verify.NormalizeName(name); err != nil || again != name {
			t.Fatalf("not idempotent: %q -> %q -> %q %v", in, name, again, err)
		}
	})
}

func TestNewCode(t *testing.T) {
	seen := map[string]bool{}
	letters := map[rune]bool{}
	for i := 0; i < 2000; i++ {
		c, err := verify.NewCode()
		if err != nil {
			t.Fatal(err)
		}
		if !verify.ValidCode(c) {
			t.Fatalf("invalid code %q", c)
		}
		seen[c] = true
		for _, r := range c {
			letters[r] = true
		}
	}
	if len(seen) < 1999 || len(letters) != len(verify.CodeAlphabet) {
		t.Fatalf("%d distinct codes, %d letters used", len(seen), len(letters))
	}
	for _, bad := range []string{"ABCD234", "ABCD23450", "ABCD2340", "abcd2345", "ABCDI234"} {
		if verify.ValidCode(bad) {
			t.Errorf("%q valid", bad)
		}
	}
}

func TestCodeIsKeptOnceIssued(t *testing.T) {
	st := testenv.Store(t)
	q := verify.NewQueue(st)
	ctx := context.Background()
	a := newAgent(t, st, "coder")
	if _, _, err := q.Code(ctx, a.ID); !errors.Is(err, verify.ErrNoCode) {
		t.Fatalf("code before start: %v", err)
	}
	c1, err := q.IssueCode(ctx, a.ID, "one")
	if err != nil {
		t.Fatal(err)
	}
	c2, err := q.IssueCode(ctx, a.ID, "two")
	if err != nil {
		t.Fatal(err)
	}
	code, name, err := q.Code(ctx, a.ID)
	if c1 != c2 || code != c1 || name != "two" || err != nil {
		t.Fatalf("codes %s %s %s name %s err %v", c1, c2, code, name, err)
	}
}

// Concurrent verify/complete calls share one live job; a new one is made
// only once the live job is done.
func TestEnqueueKeepsOneLiveJob(t *testing.T) {
	st := testenv.Store(t)
	q := verify.NewQueue(st)
	ctx := context.Background()
	a := newAgent(t, st, "dup")
	var wg sync.WaitGroup
	ids := make(chan int64, 10)
	created := make(chan bool, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, c, err := q.Enqueue(ctx, a.ID, "dup", "ABCD2345")
			if err != nil {
				t.Error(err)
				return
			}
			ids <- j.ID
			created <- c
		}()
	}
	wg.Wait()
	close(ids)
	close(created)
	first := int64(-1)
	for id := range ids {
		if first != -1 && id != first {
			t.Fatalf("two live jobs: %d and %d", first, id)
		}
		first = id
	}
	n := 0
	for c := range created {
		if c {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d calls created a job, want 1", n)
	}
	j, ok, err := q.Claim(ctx, "w", time.Minute)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := q.Finish(ctx, j, verify.Result{Outcome: verify.OutcomePostNotFound}); err != nil {
		t.Fatal(err)
	}
	j2, c, err := q.Enqueue(ctx, a.ID, "dup", "ABCD2345")
	if err != nil || !c || j2.ID == first {
		t.Fatalf("after done: job %d created %v err %v", j2.ID, c, err)
	}
}

// Many workers claiming at once each get a different job (SKIP LOCKED);
// nothing is claimed twice.
func TestClaimIsExclusive(t *testing.T) {
	st := testenv.Store(t)
	q := verify.NewQueue(st)
	ctx := context.Background()
	const jobs = 12
	for i := 0; i < jobs; i++ {
		a := newAgent(t, st, "c"+string(rune('a'+i)))
		if _, _, err := q.Enqueue(ctx, a.ID, a.Name, "ABCD2345"); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	got := map[int64]string{}
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(owner string) {
			defer wg.Done()
			for {
				j, ok, err := q.Claim(ctx, owner, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				if prev, dup := got[j.ID]; dup {
					t.Errorf("job %d claimed by %s and %s", j.ID, prev, owner)
				}
				got[j.ID] = owner
				mu.Unlock()
				if j.State != verify.StateRunning || j.Attempts != 1 || j.LeaseOwner != owner {
					t.Errorf("claimed job %+v", j)
				}
			}
		}(string(rune('A' + w)))
	}
	wg.Wait()
	if len(got) != jobs {
		t.Fatalf("claimed %d jobs, want %d", len(got), jobs)
	}
	d, err := q.Depth(ctx)
	if err != nil || d[verify.StateRunning] != jobs || d[verify.StateQueued] != 0 {
		t.Fatalf("depth %v %v", d, err)
	}
}

// A worker whose lease expired cannot record a result; the job is taken
// again (attempt 2) and only the new owner's result counts, which also
// marks the agent verified with the proof post.
func TestLeaseExpiryAndFencing(t *testing.T) {
	ctx := context.Background()
	var (
		st *store.Store
		q  *verify.Queue
		a  store.Agent
		j1 verify.Job
	)
	// While the lease runs nobody else gets the job. Whether the second
	// claim came within the lease is measured: a machine too slow for that
	// runs the step again with a longer lease, on a fresh room.
	testenv.Timed(t, 200*time.Millisecond, func(lease time.Duration) error {
		st = testenv.Store(t)
		q = verify.NewQueue(st)
		a = newAgent(t, st, "leased")
		if _, _, err := q.Enqueue(ctx, a.ID, "leasedbook", "ABCD2345"); err != nil {
			t.Fatal(err)
		}
		claimed := time.Now()
		var ok bool
		var err error
		if j1, ok, err = q.Claim(ctx, "dead", lease); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if _, again, _ := q.Claim(ctx, "other", time.Minute); again {
			if took := time.Since(claimed); took >= lease {
				return testenv.TooSlow("the second claim came %s after the first, past the %s lease", took, lease)
			}
			t.Fatal("a leased job was claimed again")
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, "the lease to run out", func() bool {
		return time.Now().After(j1.LeaseExpiresAt.Add(10 * time.Millisecond))
	})
	if err := q.Finish(ctx, j1, verify.Result{Outcome: verify.OutcomeVerified}); !errors.Is(err, verify.ErrLeaseLost) {
		t.Fatalf("finish after lease expiry: %v, want ErrLeaseLost", err)
	}
	req, failed, err := q.RequeueExpired(ctx, 5)
	if req != 1 || failed != 0 || err != nil {
		t.Fatalf("requeued %d failed %d err %v", req, failed, err)
	}
	j2, ok, err := q.Claim(ctx, "alive", time.Minute)
	if !ok || err != nil || j2.ID != j1.ID || j2.Attempts != 2 || !strings.Contains(j2.LastError, "lease expired") {
		t.Fatalf("reclaim: %+v %v %v", j2, ok, err)
	}
	if err := q.Retry(ctx, j1, 0, "late"); !errors.Is(err, verify.ErrLeaseLost) {
		t.Fatalf("stale retry: %v", err)
	}
	if err := q.Finish(ctx, j2, verify.Result{Outcome: verify.OutcomeVerified, OwnerTwitter: "own", PostID: "p1"}); err != nil {
		t.Fatal(err)
	}
	var verified bool
	var mname, owner, post string
	var at *time.Time
	err = st.Pool().QueryRow(ctx, `SELECT moltbook_verified, moltbook_name, owner_twitter, verification_post_id, verified_at FROM agents WHERE id = $1`, a.ID).
		Scan(&verified, &mname, &owner, &post, &at)
	if err != nil || !verified || mname != "leasedbook" || owner != "own" || post != "p1" || at == nil {
		t.Fatalf("agent after verification: %v %v %q %q %q %v", err, verified, mname, owner, post, at)
	}
}

// A job that keeps killing its workers ends after maxAttempts instead of looping.
func TestRequeueExpiredGivesUp(t *testing.T) {
	st := testenv.Store(t)
	q := verify.NewQueue(st)
	ctx := context.Background()
	a := newAgent(t, st, "poison")
	job, _, _ := q.Enqueue(ctx, a.ID, "poison", "ABCD2345")
	for i := 0; i < 2; i++ {
		j, ok, err := q.Claim(ctx, "w", time.Millisecond)
		if !ok || err != nil {
			t.Fatal(ok, err)
		}
		testenv.Eventually(t, 10*time.Second, "the lease to run out", func() bool {
			return time.Now().After(j.LeaseExpiresAt.Add(5 * time.Millisecond))
		})
		if _, _, err := q.RequeueExpired(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	j, err := q.Job(ctx, job.ID)
	if err != nil || j.State != verify.StateDone || j.Outcome != verify.OutcomeUpstreamFailed || j.Attempts != 2 {
		t.Fatalf("%+v %v", j, err)
	}
}

func TestRetryAndDefer(t *testing.T) {
	st := testenv.Store(t)
	q := verify.NewQueue(st)
	ctx := context.Background()
	a := newAgent(t, st, "later")
	job, _, _ := q.Enqueue(ctx, a.ID, "later", "ABCD2345")
	j, _, _ := q.Claim(ctx, "w", time.Minute)
	if err := q.Defer(ctx, j, 0, "budget"); err != nil {
		t.Fatal(err)
	}
	j, _ = q.Job(ctx, job.ID)
	if j.State != verify.StateQueued || j.Attempts != 0 || j.LastError != "budget" {
		t.Fatalf("after defer: %+v", j)
	}
	j, _, _ = q.Claim(ctx, "w", time.Minute)
	if err := q.Retry(ctx, j, time.Hour, "503"); err != nil {
		t.Fatal(err)
	}
	j, _ = q.Job(ctx, job.ID)
	if j.State != verify.StateRetrying || j.Attempts != 1 || time.Until(j.NextRunAt) < 50*time.Minute {
		t.Fatalf("after retry: %+v", j)
	}
	if _, ok, _ := q.Claim(ctx, "w", time.Minute); ok {
		t.Fatal("claimed a job before it was due")
	}
	d, ok, err := q.NextDueIn(ctx)
	if !ok || err != nil || d < 50*time.Minute {
		t.Fatalf("next due in %s %v %v", d, ok, err)
	}
}

// The fleet-wide budget spaces requests 60s/rpm apart for every caller
// together, and a pause holds everyone.
func TestMoltbookBudget(t *testing.T) {
	ctx := context.Background()
	var q, q2 *verify.Queue
	var rpm int
	// Two takes in a row: the second waits for the first's slot. Whether
	// they came within one slot is measured; a machine too slow for that
	// runs the step again with a lower rate, on a fresh room.
	testenv.Timed(t, 100*time.Millisecond, func(slot time.Duration) error {
		st := testenv.Store(t)
		q = verify.NewQueue(st)
		q2 = verify.NewQueue(testenv.StoreFor(t, st.Schema())) // another replica
		rpm = int(time.Minute / slot)
		first := time.Now()
		if w, err := q.TakeMoltbook(ctx, rpm); w != 0 || err != nil {
			t.Fatalf("first take: %s %v", w, err)
		}
		w, err := q2.TakeMoltbook(ctx, rpm)
		if took := time.Since(first); err == nil && w == 0 && took >= slot {
			return testenv.TooSlow("the second take came %s after the first, past the %s slot", took, slot)
		}
		if err != nil || w <= 0 || w > slot {
			t.Fatalf("second take at once: wait %s %v, want (0, %s]", w, err, slot)
		}
		time.Sleep(w) // what the budget asked for: then the slot is free
		if w, err := q2.TakeMoltbook(ctx, rpm); w != 0 || err != nil {
			t.Fatalf("after waiting: %s %v", w, err)
		}
		return nil
	})
	// A pause holds every replica for its whole length (a shorter one does
	// not shorten it): the wait is the pause less the time already gone.
	paused := time.Now()
	if err := q.PauseMoltbook(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := q.PauseMoltbook(ctx, time.Second); err != nil { // never shortens
		t.Fatal(err)
	}
	w, err := q2.TakeMoltbook(ctx, rpm)
	gone := time.Since(paused)
	if err != nil || w < 2*time.Second-gone-50*time.Millisecond || w > 2*time.Second+100*time.Millisecond {
		t.Fatalf("paused for 2s, %s ago: wait %s %v", gone.Round(time.Millisecond), w, err)
	}
}

// Enqueueing notifies the room's workers; other rooms' notifications on
// the same database are filtered out.
func TestNotifyOnEnqueue(t *testing.T) {
	st := testenv.Store(t)
	other := testenv.Store(t)
	q, qo := verify.NewQueue(st), verify.NewQueue(other)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up := make(chan struct{}, 1)
	got := make(chan int64, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = verify.Listen(ctx, verify.ListenOptions{ConnConfig: st.Pool().Config().ConnConfig, Channel: verify.JobsChannel,
			Schema: st.Schema(), Up: func() { up <- struct{}{} }, Notify: func(id int64) { got <- id }})
	}()
	select {
	case <-up:
	case <-time.After(10 * time.Second):
		t.Fatal("LISTEN never came up")
	}
	ao := newAgent(t, other, "elsewhere")
	if _, _, err := qo.Enqueue(ctx, ao.ID, "elsewhere", "ABCD2345"); err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, st, "here")
	j, _, err := q.Enqueue(ctx, a.ID, "here", "ABCD2345")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != j.ID {
			t.Fatalf("notified of job %d, want %d", id, j.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
	select {
	case id := <-got:
		t.Fatalf("unexpected notification %d", id)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	<-done
}
