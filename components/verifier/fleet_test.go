package verifier_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/chatr-ai/chatr/components/verifier"
	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/serve"
	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
	"github.com/chatr-ai/chatr/internal/verify"
)

// queueRoom is a room without the API: jobs are enqueued directly, as
// verify/complete would.
type queueRoom struct {
	schema  string
	st      *store.Store
	q       *verify.Queue
	fake    *fakemoltbook.Server
	fakeURL string
}

func newQueueRoom(t *testing.T) *queueRoom {
	t.Helper()
	st := testenv.Store(t)
	fake := fakemoltbook.New()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return &queueRoom{schema: st.Schema(), st: st, q: verify.NewQueue(st), fake: fake, fakeURL: srv.URL + "/api/v1"}
}

// enqueue makes an agent whose Moltbook account name verifies, and queues its job.
func (qr *queueRoom) enqueue(t *testing.T, name string, scenario func(code string) fakemoltbook.Agent) verify.Job {
	t.Helper()
	ctx := context.Background()
	h := sha256.Sum256([]byte(name))
	a, err := qr.st.CreateAgent(ctx, name, "🤖", h[:])
	if err != nil {
		t.Fatal(err)
	}
	code, err := qr.q.IssueCode(ctx, a.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	qr.fake.Set(scenario(code))
	j, _, err := qr.q.Enqueue(ctx, a.ID, name, code)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (qr *queueRoom) waitDone(t *testing.T, timeout time.Duration, id int64) verify.Job {
	t.Helper()
	var j verify.Job
	testenv.Eventually(t, timeout, fmt.Sprintf("job %d to finish", id), func() bool {
		var err error
		j, err = qr.q.Job(context.Background(), id)
		return err == nil && !j.Live()
	})
	return j
}

func counter(t *testing.T, v *verifier.Verifier, name, label string) float64 {
	t.Helper()
	mfs, err := v.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || hasLabel(m, label) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == value {
			return true
		}
	}
	return false
}

// Two replicas working the same queue: every job is processed exactly once
// (one Moltbook call, one attempt), and both replicas take part.
func TestTwoReplicasProcessEachJobOnce(t *testing.T) {
	qr := newQueueRoom(t)
	cfg := testConfig(qr.schema, qr.fakeURL)
	cfg.Concurrency = 3
	v1, _ := startVerifier(t, cfg)
	v2, _ := startVerifier(t, cfg)
	const n = 24
	var jobs []verify.Job
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("twin%02d", i)
		jobs = append(jobs, qr.enqueue(t, name, func(code string) fakemoltbook.Agent {
			a := fakemoltbook.Verified(name, "o", code)
			a.Delay = fakemoltbook.Duration(40 * time.Millisecond)
			return a
		}))
	}
	for i, j := range jobs {
		j = qr.waitDone(t, 20*time.Second, j.ID)
		if j.Outcome != verify.OutcomeVerified || j.Attempts != 1 {
			t.Errorf("job %d: outcome %s after %d attempts", j.ID, j.Outcome, j.Attempts)
		}
		if got := qr.fake.Requests(fmt.Sprintf("twin%02d", i)); got != 1 {
			t.Errorf("twin%02d: Moltbook asked %d times, want exactly 1", i, got)
		}
	}
	// A replica counts a job once its Finish has committed, which is just
	// after the row reads finished: wait for the counters to catch up.
	var c1, c2 float64
	testenv.Eventually(t, 10*time.Second, "both replicas to count their finished jobs", func() bool {
		c1 = counter(t, v1, "chatr_verifier_jobs_total", "verified")
		c2 = counter(t, v2, "chatr_verifier_jobs_total", "verified")
		return c1+c2 >= n
	})
	if c1+c2 != n || c1 == 0 || c2 == 0 {
		t.Fatalf("replicas finished %v and %v jobs, want %d in all, shared", c1, c2, n)
	}
	t.Logf("replica 1 finished %v jobs, replica 2 %v", c1, c2)
}

// The Moltbook budget is the fleet's: two replicas together stay under
// CHATR_MOLTBOOK_RPM, and the fake (limiting like Moltbook) never says 429.
func TestFleetStaysUnderMoltbookRate(t *testing.T) {
	qr := newQueueRoom(t)
	cfg := testConfig(qr.schema, qr.fakeURL)
	cfg.MoltbookRPM, cfg.Concurrency = 300, 3 // one request per 200ms for the whole fleet
	const n = 10
	var jobs []verify.Job
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("rate%02d", i)
		jobs = append(jobs, qr.enqueue(t, name, func(code string) fakemoltbook.Agent { return fakemoltbook.Verified(name, "o", code) }))
	}
	startVerifier(t, cfg)
	startVerifier(t, cfg)
	for _, j := range jobs {
		if j = qr.waitDone(t, 20*time.Second, j.ID); j.Outcome != verify.OutcomeVerified {
			t.Fatalf("job %d: %s (%s)", j.ID, j.Outcome, j.LastError)
		}
	}
	times := qr.fake.RequestTimes()
	if len(times) != n {
		t.Fatalf("%d Moltbook calls, want %d", len(times), n)
	}
	// No 1s window holds more than 5 calls (+ a little for network jitter).
	for i := 5; i < len(times); i++ {
		if d := times[i].Sub(times[i-5]); d < 950*time.Millisecond {
			t.Fatalf("calls %d..%d within %s: the fleet went over 300/min", i-5, i, d)
		}
	}
}

// A replica stopped in the middle of a slow Moltbook call (its context
// canceled, as on SIGTERM) gives the job back at once: another replica
// completes it without waiting for the lease, and the interrupted call is
// not counted as an attempt.
func TestStoppedWorkerGivesJobBack(t *testing.T) {
	qr := newQueueRoom(t)
	cfg := testConfig(qr.schema, qr.fakeURL)
	cfg.MoltbookTimeout, cfg.Lease = 20*time.Second, 30*time.Second
	_, stopA := startVerifier(t, cfg)
	j := qr.enqueue(t, "interrupted", func(code string) fakemoltbook.Agent {
		a := fakemoltbook.Verified("interrupted", "o", code)
		a.Faults = []fakemoltbook.Fault{{Delay: fakemoltbook.Duration(time.Minute)}}
		return a
	})
	testenv.Eventually(t, 10*time.Second, "the first Moltbook call", func() bool { return qr.fake.Requests("interrupted") == 1 })
	stopA()
	startVerifier(t, cfg)
	start := time.Now()
	done := qr.waitDone(t, 10*time.Second, j.ID)
	if done.Outcome != verify.OutcomeVerified || done.Attempts != 1 {
		t.Fatalf("job %+v", done)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %s: the job waited for its lease instead of being given back", took)
	}
}

// A replica that dies (SIGKILL: no chance to give anything back) in the
// middle of a slow Moltbook call: its job is taken again once its lease
// expires and completes on another replica, as attempt 2.
func TestCrashedWorkerJobTakenAfterLease(t *testing.T) {
	qr := newQueueRoom(t)
	cfg := testConfig(qr.schema, qr.fakeURL)
	cfg.MoltbookTimeout, cfg.Lease = 1500*time.Millisecond, 2*time.Second
	j := qr.enqueue(t, "crashy", func(code string) fakemoltbook.Agent {
		a := fakemoltbook.Verified("crashy", "o", code)
		a.Faults = []fakemoltbook.Fault{{Delay: fakemoltbook.Duration(time.Minute)}}
		return a
	})

	// Replica A in its own process, so it can really be killed.
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CHATR_VERIFIER_HELPER=1", "CHATR_DB_SCHEMA="+qr.schema,
		"CHATR_MOLTBOOK_URL="+qr.fakeURL,
		"CHATR_VERIFY_LEASE="+cfg.Lease.String(), "CHATR_MOLTBOOK_TIMEOUT="+cfg.MoltbookTimeout.String())
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var killed atomic.Bool
	t.Cleanup(func() {
		if !killed.Load() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	testenv.Eventually(t, 30*time.Second, "replica A's Moltbook call", func() bool { return qr.fake.Requests("crashy") == 1 })
	claimed, err := qr.q.Job(context.Background(), j.ID)
	if err != nil || claimed.State != verify.StateRunning || claimed.Attempts != 1 {
		t.Fatalf("job while A works: %+v %v", claimed, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed.Store(true)
	_ = cmd.Wait()
	killedAt := time.Now()

	b, _ := startVerifier(t, cfg)
	done := qr.waitDone(t, 15*time.Second, j.ID)
	if done.Outcome != verify.OutcomeVerified || done.Attempts != 2 {
		t.Fatalf("job after the crash: %+v\nreplica A said:\n%s", done, out.String())
	}
	if !done.FinishedAt.After(claimed.LeaseExpiresAt) {
		t.Fatalf("finished at %s, before A's lease expired at %s", done.FinishedAt, claimed.LeaseExpiresAt)
	}
	if got := counter(t, b, "chatr_verifier_leases_expired_total", ""); got != 1 {
		t.Fatalf("replica B took back %v expired leases, want 1", got)
	}
	if n := qr.fake.Requests("crashy"); n != 2 {
		t.Fatalf("Moltbook asked %d times, want 2", n)
	}
	t.Logf("completed %s after the kill", time.Since(killedAt).Round(time.Millisecond))
}

// TestMain runs the test binary as replica A of
// TestCrashedWorkerJobTakenAfterLease when started as that child process
// (a real process, so it can really be killed); otherwise it runs the tests.
func TestMain(m *testing.M) {
	if os.Getenv("CHATR_VERIFIER_HELPER") == "1" {
		os.Exit(helperVerifierProcess())
	}
	os.Exit(m.Run())
}

// helperVerifierProcess is replica A: a verifier configured from the
// environment, run until it is killed.
func helperVerifierProcess() int {
	cfg := testConfig(os.Getenv("CHATR_DB_SCHEMA"), os.Getenv("CHATR_MOLTBOOK_URL"))
	cfg.Lease, _ = time.ParseDuration(os.Getenv("CHATR_VERIFY_LEASE"))
	cfg.MoltbookTimeout, _ = time.ParseDuration(os.Getenv("CHATR_MOLTBOOK_TIMEOUT"))
	v, err := verifier.New(context.Background(), cfg, quietLog())
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica A:", err)
		return 1
	}
	_ = v.Run(context.Background()) // until killed
	return 0
}

// The admin endpoints serve the verifier's metrics and readiness, as
// `chatrd verifier` does.
func TestAdminEndpoints(t *testing.T) {
	qr := newQueueRoom(t)
	v, _ := startVerifier(t, testConfig(qr.schema, qr.fakeURL))
	j := qr.enqueue(t, "metered", func(code string) fakemoltbook.Agent { return fakemoltbook.Verified("metered", "o", code) })
	qr.waitDone(t, 10*time.Second, j.ID)
	admin := httptest.NewServer(serve.AdminMux([]serve.Component{v}, nil))
	defer admin.Close()
	res, err := admin.Client().Get(admin.URL + "/readyz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", res, err)
	}
	res.Body.Close()
	var body string
	testenv.Eventually(t, 5*time.Second, "the metrics", func() bool {
		res, err := admin.Client().Get(admin.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		body = string(b)
		// The gauge is measured every poll interval: wait for a measurement
		// taken after the job finished.
		return strings.Contains(body, `chatr_verifier_queue_depth{state="running"} 0`) &&
			strings.Contains(body, `chatr_verifier_queue_depth{state="queued"} 0`)
	})
	for _, want := range []string{
		`chatr_verifier_jobs_total{outcome="verified"} 1`,
		`chatr_verifier_attempts_total{result="verified"} 1`,
		`chatr_verifier_moltbook_request_duration_seconds_count{result="verified"} 1`,
		`chatr_verifier_queue_depth{state="retrying"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}
