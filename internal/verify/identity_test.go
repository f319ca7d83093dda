package verify_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
	"github.com/chatr-ai/chatr/internal/verify"
)

// claimOne claims the only due job, leased to owner.
func claimOne(t *testing.T, q *verify.Queue, owner string) verify.Job {
	t.Helper()
	j, ok, err := q.Claim(context.Background(), owner, time.Minute)
	if !ok || err != nil {
		t.Fatalf("claim: ok %v, err %v", ok, err)
	}
	return j
}

// Two agents prove the same Moltbook account in jobs that run side by side
// (both claimed before either finishes): the first to finish gets the
// badge, the second is recorded as taken and its agent stays unverified.
func TestOneMoltbookAccountVerifiesOneAgent(t *testing.T) {
	ctx := context.Background()
	st := testenv.Store(t)
	q := verify.NewQueue(st)
	first, second := newAgent(t, st, "first"), newAgent(t, st, "second")
	for _, a := range []store.Agent{first, second} {
		if _, _, err := q.Enqueue(ctx, a.ID, "shared", "ABCD2345"); err != nil {
			t.Fatal(err)
		}
	}
	j1, j2 := claimOne(t, q, "w1"), claimOne(t, q, "w2")
	if taken, err := q.MoltbookNameTaken(ctx, j2.AgentID, "shared"); err != nil || taken {
		t.Fatalf("taken before anyone verified: %v %v", taken, err)
	}
	if o, err := q.FinishOutcome(ctx, j1, verify.Result{Outcome: verify.OutcomeVerified, PostID: "p1"}); err != nil || o != verify.OutcomeVerified {
		t.Fatalf("first finish: %s %v", o, err)
	}
	o, err := q.FinishOutcome(ctx, j2, verify.Result{Outcome: verify.OutcomeVerified, PostID: "p2"})
	if err != nil || o != verify.OutcomeTaken {
		t.Fatalf("second finish: %s %v, want taken", o, err)
	}
	if j, _ := q.Job(ctx, j2.ID); j.Outcome != verify.OutcomeTaken || j.Live() {
		t.Errorf("second job %+v", j)
	}
	a1, _ := st.AgentByID(ctx, first.ID)
	a2, _ := st.AgentByID(ctx, second.ID)
	if !a1.MoltbookVerified || a2.MoltbookVerified {
		t.Errorf("verified: first %v, second %v; want only the first", a1.MoltbookVerified, a2.MoltbookVerified)
	}
	if taken, err := q.MoltbookNameTaken(ctx, second.ID, "shared"); err != nil || !taken {
		t.Errorf("taken for the second: %v %v", taken, err)
	}
	if taken, err := q.MoltbookNameTaken(ctx, first.ID, "shared"); err != nil || taken {
		t.Errorf("taken for its own holder: %v %v", taken, err)
	}

	// The schema itself refuses a second verified agent on one account, so
	// no code path (or a concurrent finish) can get round the rule.
	_, err = st.Pool().Exec(ctx, `UPDATE agents SET moltbook_verified = true, moltbook_name = 'shared' WHERE id = $1`, second.ID)
	if err == nil {
		t.Fatal("the database let a second agent verify with the same Moltbook account")
	}
}

// A refused attempt (the account verifies another agent) is a finished job
// with outcome taken: no Moltbook call, the same answer on status, and it
// counts against the agent's attempts. A live job is left to run.
func TestRecordTaken(t *testing.T) {
	ctx := context.Background()
	st := testenv.Store(t)
	q := verify.NewQueue(st)
	a := newAgent(t, st, "latecomer")
	limit := verify.AttemptLimit{Limit: 1, Window: time.Hour}
	j, err := q.RecordTaken(ctx, a.ID, "someone", "ABCD2345", limit)
	if err != nil || j.Live() || j.Outcome != verify.OutcomeTaken {
		t.Fatalf("recorded %+v, %v", j, err)
	}
	if _, ok, _ := q.Claim(ctx, "w", time.Minute); ok {
		t.Error("a refused attempt was left for a worker to claim")
	}
	var le *verify.AttemptLimitError
	if _, err := q.RecordTaken(ctx, a.ID, "someone", "ABCD2345", limit); !errors.As(err, &le) {
		t.Errorf("second refusal within the limit's window: %v, want an attempt limit error", err)
	}
}

// The per-agent attempt limit: new jobs up to the limit per window; joining
// the live job is always allowed and counts nothing; beyond the limit, the
// error says when the oldest attempt leaves the window; other agents are
// not affected; no limit means no limit.
func TestAttemptLimit(t *testing.T) {
	ctx := context.Background()
	st := testenv.Store(t)
	q := verify.NewQueue(st)
	a, other := newAgent(t, st, "eager"), newAgent(t, st, "other")
	limit := verify.AttemptLimit{Limit: 2, Window: 10 * time.Minute}
	finish := func(j verify.Job) {
		t.Helper()
		c := claimOne(t, q, "w")
		if c.ID != j.ID {
			t.Fatalf("claimed job %d, want %d", c.ID, j.ID)
		}
		if err := q.Finish(ctx, c, verify.Result{Outcome: verify.OutcomePostNotFound}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < limit.Limit; i++ {
		j, created, err := q.EnqueueLimited(ctx, a.ID, "eagerbook", "ABCD2345", limit)
		if err != nil || !created {
			t.Fatalf("attempt %d: created %v, %v", i+1, created, err)
		}
		// Asking again while it runs joins it, even at the limit.
		if again, created, err := q.EnqueueLimited(ctx, a.ID, "eagerbook", "ABCD2345", limit); err != nil || created || again.ID != j.ID {
			t.Fatalf("attempt %d asked again: job %d created %v, %v; want to join %d", i+1, again.ID, created, err, j.ID)
		}
		finish(j)
	}
	_, _, err := q.EnqueueLimited(ctx, a.ID, "eagerbook", "ABCD2345", limit)
	var le *verify.AttemptLimitError
	if !errors.As(err, &le) {
		t.Fatalf("attempt %d: %v, want an attempt limit error", limit.Limit+1, err)
	}
	if le.Limit != 2 || le.Window != limit.Window || le.RetryAfter <= limit.Window-time.Minute || le.RetryAfter > limit.Window {
		t.Errorf("limit error %+v: want the wait until the first attempt is 10 minutes old", le)
	}
	if _, created, err := q.EnqueueLimited(ctx, other.ID, "otherbook", "ABCD2345", limit); err != nil || !created {
		t.Errorf("another agent: created %v, %v", created, err)
	}
	// Without a limit (Enqueue), nothing is refused.
	if _, created, err := q.Enqueue(ctx, a.ID, "eagerbook", "ABCD2345"); err != nil || !created {
		t.Errorf("unlimited enqueue: created %v, %v", created, err)
	}
}
