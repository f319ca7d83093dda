package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatr-ai/chatr/internal/store"
)

// State is where a job is in its life.
type State string

// Job states. queued, running and retrying are live; done is final and has an Outcome.
const (
	StateQueued   State = "queued"
	StateRunning  State = "running"
	StateRetrying State = "retrying"
	StateDone     State = "done"
)

// Outcome is how a done job ended; each maps to one answer of the contract.
type Outcome string

// Outcomes.
const (
	OutcomeVerified       Outcome = "verified"        // 200
	OutcomeNotFound       Outcome = "not_found"       // 404 Moltbook user "NAME" not found
	OutcomeNotClaimed     Outcome = "not_claimed"     // 403
	OutcomePostNotFound   Outcome = "post_not_found"  // 404 with code and hint
	OutcomeUpstreamFailed Outcome = "upstream_failed" // 502 Failed to fetch Moltbook profile
	OutcomeTaken          Outcome = "taken"           // 409 the Moltbook account verifies another agent
)

// Errors callers branch on.
var (
	// ErrNoCode: the agent never called verify/start.
	ErrNoCode = errors.New("no verification code issued")
	// ErrLeaseLost: the job is no longer this worker's attempt (its lease
	// expired and the job was requeued or taken by another worker), so the
	// result is dropped.
	ErrLeaseLost = errors.New("verification job lease lost")
)

// AttemptLimitError: the agent started as many verification attempts as
// its limit allows within the window; the next is allowed after RetryAfter.
type AttemptLimitError struct {
	Limit      int
	Window     time.Duration
	RetryAfter time.Duration
}

func (e *AttemptLimitError) Error() string {
	return fmt.Sprintf("%d verification attempts within %s already; next one allowed in %s", e.Limit, e.Window, e.RetryAfter)
}

// AttemptLimit is how many new verification jobs one agent may start per
// Window (joining the live job is always free). Limit 0 means no limit.
type AttemptLimit struct {
	Limit  int
	Window time.Duration
}

// Job is a verification job's row.
type Job struct {
	ID             int64
	AgentID        string
	MoltbookName   string
	Code           string
	State          State
	Outcome        Outcome // "" while live
	Attempts       int
	NextRunAt      time.Time
	LeaseOwner     string
	LeaseExpiresAt time.Time
	LastError      string
	OwnerTwitter   string
	PostID         string
	CreatedAt      time.Time
	FinishedAt     time.Time // zero while live
}

// Live reports whether the job is not done yet.
func (j Job) Live() bool { return j.State != StateDone }

const jobColumns = `id, agent_id::text, moltbook_name, code, state, coalesce(outcome, ''), attempts, next_run_at,
	coalesce(lease_owner, ''), lease_expires_at, coalesce(last_error, ''),
	coalesce(owner_twitter, ''), coalesce(post_id, ''), created_at, finished_at`

func scanJob(row pgx.Row) (Job, error) {
	var j Job
	var leaseExp, finished *time.Time
	err := row.Scan(&j.ID, &j.AgentID, &j.MoltbookName, &j.Code, &j.State, &j.Outcome, &j.Attempts, &j.NextRunAt,
		&j.LeaseOwner, &leaseExp, &j.LastError, &j.OwnerTwitter, &j.PostID, &j.CreatedAt, &finished)
	if leaseExp != nil {
		j.LeaseExpiresAt = *leaseExp
	}
	if finished != nil {
		j.FinishedAt = *finished
	}
	return j, err
}

// Queue is the room's verification data: codes, jobs, and the Moltbook rate
// limiter row. Handlers and workers share it; it is safe for concurrent use.
type Queue struct {
	pool   *pgxpool.Pool
	schema string
}

// NewQueue returns the queue of the room st serves.
func NewQueue(st *store.Store) *Queue { return &Queue{pool: st.Pool(), schema: st.Schema()} }

// Schema is the room's schema (it filters NOTIFY payloads).
func (q *Queue) Schema() string { return q.schema }

// --- codes ---

// IssueCode returns the agent's code, drawing one the first time; a later
// call keeps the code and records the Moltbook name given.
func (q *Queue) IssueCode(ctx context.Context, agentID, moltbookName string) (string, error) {
	code, err := NewCode()
	if err != nil {
		return "", err
	}
	err = q.pool.QueryRow(ctx, `
INSERT INTO verification_codes (agent_id, code, moltbook_name) VALUES ($1, $2, $3)
ON CONFLICT (agent_id) DO UPDATE SET moltbook_name = EXCLUDED.moltbook_name
RETURNING code`, agentID, code, moltbookName).Scan(&code)
	if err != nil {
		return "", fmt.Errorf("while issuing a verification code for agent %s: %w", agentID, err)
	}
	return code, nil
}

// Code returns the agent's code and the Moltbook name last given to start,
// or ErrNoCode.
func (q *Queue) Code(ctx context.Context, agentID string) (code, moltbookName string, err error) {
	err = q.pool.QueryRow(ctx, `SELECT code, moltbook_name FROM verification_codes WHERE agent_id = $1`, agentID).Scan(&code, &moltbookName)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", ErrNoCode
	}
	if err != nil {
		return "", "", fmt.Errorf("while reading the verification code of agent %s: %w", agentID, err)
	}
	return code, moltbookName, nil
}

// --- the API side ---

// Enqueue returns the agent's live job, creating one if there is none: a
// repeated verify/complete waits on the same job instead of duplicating it.
// The partial unique index decides races between concurrent calls.
func (q *Queue) Enqueue(ctx context.Context, agentID, moltbookName, code string) (j Job, created bool, err error) {
	return q.EnqueueLimited(ctx, agentID, moltbookName, code, AttemptLimit{})
}

// EnqueueLimited is Enqueue with a per-agent limit: a new
// job is created only while the agent has started fewer than limit.Limit
// jobs within limit.Window; beyond, Enqueue returns an *AttemptLimitError.
// The count and the insert are one statement, and at most one job per agent
// is live, so concurrent calls cannot overshoot the limit.
func (q *Queue) EnqueueLimited(ctx context.Context, agentID, moltbookName, code string, limit AttemptLimit) (j Job, created bool, err error) {
	for try := 0; try < 3; try++ {
		j, err = scanJob(q.pool.QueryRow(ctx, `
INSERT INTO verification_jobs (agent_id, moltbook_name, code)
SELECT $1, $2, $3
WHERE $4::int <= 0 OR (SELECT count(*) FROM verification_jobs
    WHERE agent_id = $1 AND created_at > clock_timestamp() - $5::bigint * interval '1 millisecond') < $4::int
ON CONFLICT (agent_id) WHERE state <> 'done' DO NOTHING
RETURNING `+jobColumns, agentID, moltbookName, code, limit.Limit, limit.Window.Milliseconds()))
		if err == nil {
			return j, true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Job{}, false, fmt.Errorf("while enqueueing verification of agent %s: %w", agentID, err)
		}
		j, err = scanJob(q.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM verification_jobs WHERE agent_id = $1 AND state <> 'done'`, agentID))
		if err == nil {
			return j, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Job{}, false, fmt.Errorf("while reading the live verification job of agent %s: %w", agentID, err)
		}
		if wait, limited, err := q.attemptWait(ctx, agentID, limit); err != nil {
			return Job{}, false, err
		} else if limited {
			return Job{}, false, &AttemptLimitError{Limit: limit.Limit, Window: limit.Window, RetryAfter: wait}
		}
		// The live job finished between the two statements: try again.
	}
	return Job{}, false, fmt.Errorf("while enqueueing verification of agent %s: the live job kept changing", agentID)
}

// attemptWait reports whether the agent used up its attempts and, if so,
// how long until the oldest attempt of the window leaves it (by Postgres's
// clock, like the count).
func (q *Queue) attemptWait(ctx context.Context, agentID string, limit AttemptLimit) (time.Duration, bool, error) {
	if limit.Limit <= 0 {
		return 0, false, nil
	}
	var n int
	var us *int64
	err := q.pool.QueryRow(ctx, `
SELECT count(*), (extract(epoch FROM min(created_at) + $3::bigint * interval '1 millisecond' - clock_timestamp()) * 1000000)::bigint
FROM (SELECT created_at FROM verification_jobs
      WHERE agent_id = $1 AND created_at > clock_timestamp() - $3::bigint * interval '1 millisecond'
      ORDER BY created_at DESC LIMIT $2) recent`, agentID, limit.Limit, limit.Window.Milliseconds()).Scan(&n, &us)
	if err != nil {
		return 0, false, fmt.Errorf("while counting the verification attempts of agent %s: %w", agentID, err)
	}
	if n < limit.Limit || us == nil {
		return 0, false, nil
	}
	return max(time.Duration(*us)*time.Microsecond, time.Millisecond), true, nil
}

// MoltbookNameTaken reports whether another agent than agentID is verified
// with that Moltbook account.
func (q *Queue) MoltbookNameTaken(ctx context.Context, agentID, moltbookName string) (bool, error) {
	var taken bool
	err := q.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM agents WHERE moltbook_verified AND moltbook_name = $1 AND id <> $2)`,
		moltbookName, agentID).Scan(&taken)
	if err != nil {
		return false, fmt.Errorf("while checking who holds Moltbook account %s: %w", moltbookName, err)
	}
	return taken, nil
}

// RecordTaken records an attempt refused because the Moltbook account
// already verifies another agent, as a job already done with outcome taken
// (no Moltbook call is made): GET /api/verify/status then tells the same
// answer, and the refusal counts against the agent's attempts like any other.
// A live job is left alone (and returned): the agent waits on that one.
func (q *Queue) RecordTaken(ctx context.Context, agentID, moltbookName, code string, limit AttemptLimit) (Job, error) {
	j, created, err := q.EnqueueLimited(ctx, agentID, moltbookName, code, limit)
	if err != nil || !created {
		return j, err
	}
	done, err := scanJob(q.pool.QueryRow(ctx, `
UPDATE verification_jobs SET state = 'done', outcome = 'taken', finished_at = clock_timestamp(), updated_at = clock_timestamp(),
    last_error = 'the Moltbook account already verifies another agent'
WHERE id = $1 AND state = 'queued' AND attempts = 0
RETURNING `+jobColumns, j.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		// A worker claimed it in between: it finds the account taken too.
		return q.Job(ctx, j.ID)
	}
	if err != nil {
		return Job{}, fmt.Errorf("while recording a refused verification of agent %s: %w", agentID, err)
	}
	return done, nil
}

// Job reads one job.
func (q *Queue) Job(ctx context.Context, id int64) (Job, error) {
	j, err := scanJob(q.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM verification_jobs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, store.ErrNotFound
	}
	if err != nil {
		return Job{}, fmt.Errorf("while reading verification job %d: %w", id, err)
	}
	return j, nil
}

// LatestJob returns the agent's newest job, or store.ErrNotFound.
func (q *Queue) LatestJob(ctx context.Context, agentID string) (Job, error) {
	j, err := scanJob(q.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM verification_jobs WHERE agent_id = $1 ORDER BY id DESC LIMIT 1`, agentID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, store.ErrNotFound
	}
	if err != nil {
		return Job{}, fmt.Errorf("while reading the verification job of agent %s: %w", agentID, err)
	}
	return j, nil
}

// --- the worker side ---

// Claim takes the most overdue claimable job: it becomes running, leased to
// owner for lease, and its attempts go up by one. SKIP LOCKED lets many
// workers claim at once without waiting on (or taking) each other's rows.
// ok is false when nothing is due.
func (q *Queue) Claim(ctx context.Context, owner string, lease time.Duration) (j Job, ok bool, err error) {
	j, err = scanJob(q.pool.QueryRow(ctx, `
UPDATE verification_jobs j
SET state = 'running', attempts = j.attempts + 1, lease_owner = $1,
    lease_expires_at = clock_timestamp() + $2::bigint * interval '1 millisecond', updated_at = clock_timestamp()
FROM (SELECT id AS claim_id FROM verification_jobs
      WHERE state IN ('queued', 'retrying') AND next_run_at <= clock_timestamp()
      ORDER BY next_run_at, id LIMIT 1
      FOR UPDATE SKIP LOCKED) c
WHERE j.id = c.claim_id
RETURNING `+jobColumns, owner, lease.Milliseconds()))
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, false, nil
	}
	if err != nil {
		return Job{}, false, fmt.Errorf("while claiming a verification job: %w", err)
	}
	return j, true, nil
}

// Result is a job's final result.
type Result struct {
	Outcome      Outcome
	OwnerTwitter string // verified only
	PostID       string // verified only
	Err          string // why, for last_error (optional)
}

// leaseGuard makes sure only the worker that claimed this attempt, while
// its lease holds, can change the job: a worker that overran its lease
// cannot overwrite the work of the one that took the job over.
const leaseGuard = `id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3 AND lease_expires_at > clock_timestamp()`

// Finish ends the job with r. A verified outcome also marks the agent
// verified, in the same transaction, so the agent's very next request sees it.
func (q *Queue) Finish(ctx context.Context, j Job, r Result) error {
	_, err := q.FinishOutcome(ctx, j, r)
	return err
}

// FinishOutcome is Finish, returning the outcome recorded: a verified result
// whose Moltbook account already verifies another agent is recorded as
// OutcomeTaken instead, and this agent stays unverified. The unique index
// on verified Moltbook names settles two agents verifying one account at the
// same moment: the loser's transaction fails on it and is recorded as taken.
func (q *Queue) FinishOutcome(ctx context.Context, j Job, r Result) (Outcome, error) {
	err := q.finish(ctx, j, &r)
	var pgErr *pgconn.PgError
	if r.Outcome == OutcomeVerified && errors.As(err, &pgErr) && pgErr.Code == "23505" /* unique_violation */ &&
		pgErr.ConstraintName == "agents_moltbook_name_key" {
		r = takenResult()
		err = q.finish(ctx, j, &r)
	}
	if errors.Is(err, ErrLeaseLost) {
		return "", fmt.Errorf("while finishing verification job %d (attempt %d): %w", j.ID, j.Attempts, ErrLeaseLost)
	}
	if err != nil {
		return "", fmt.Errorf("while finishing verification job %d: %w", j.ID, err)
	}
	return r.Outcome, nil
}

func takenResult() Result {
	return Result{Outcome: OutcomeTaken, Err: "the Moltbook account already verifies another agent"}
}

func (q *Queue) finish(ctx context.Context, j Job, r *Result) error {
	return pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		if r.Outcome == OutcomeVerified {
			var taken bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM agents WHERE moltbook_verified AND moltbook_name = $1 AND id <> $2)`,
				j.MoltbookName, j.AgentID).Scan(&taken); err != nil {
				return err
			}
			if taken {
				*r = takenResult()
			}
		}
		tag, err := tx.Exec(ctx, `
UPDATE verification_jobs SET state = 'done', outcome = $4, owner_twitter = nullif($5, ''), post_id = nullif($6, ''),
    last_error = nullif($7, ''), lease_owner = NULL, lease_expires_at = NULL,
    finished_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE `+leaseGuard, j.ID, j.LeaseOwner, j.Attempts, string(r.Outcome), r.OwnerTwitter, r.PostID, r.Err)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrLeaseLost
		}
		if r.Outcome != OutcomeVerified {
			return nil
		}
		_, err = tx.Exec(ctx, `
UPDATE agents SET moltbook_verified = true, moltbook_name = $2, owner_twitter = nullif($3, ''),
    verified_at = clock_timestamp(), verification_post_id = nullif($4, '')
WHERE id = $1`, j.AgentID, j.MoltbookName, r.OwnerTwitter, r.PostID)
		return err
	})
}

// Retry gives the job back to run again after delay; this attempt counts.
func (q *Queue) Retry(ctx context.Context, j Job, delay time.Duration, reason string) error {
	return q.reschedule(ctx, j, delay, reason, 0)
}

// Defer gives the job back to run again after delay without counting this
// attempt: nothing was asked of Moltbook (the fleet's rate budget was spent),
// or the worker is shutting down mid-call.
func (q *Queue) Defer(ctx context.Context, j Job, delay time.Duration, reason string) error {
	return q.reschedule(ctx, j, delay, reason, 1)
}

func (q *Queue) reschedule(ctx context.Context, j Job, delay time.Duration, reason string, uncount int) error {
	tag, err := q.pool.Exec(ctx, `
UPDATE verification_jobs SET attempts = attempts - $4,
    state = CASE WHEN attempts - $4 = 0 THEN 'queued' ELSE 'retrying' END,
    next_run_at = clock_timestamp() + $5::bigint * interval '1 millisecond',
    last_error = coalesce(nullif($6, ''), last_error), lease_owner = NULL, lease_expires_at = NULL,
    updated_at = clock_timestamp()
WHERE `+leaseGuard, j.ID, j.LeaseOwner, j.Attempts, uncount, max(delay, 0).Milliseconds(), reason)
	if err != nil {
		return fmt.Errorf("while rescheduling verification job %d: %w", j.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("while rescheduling verification job %d (attempt %d): %w", j.ID, j.Attempts, ErrLeaseLost)
	}
	return nil
}

// RequeueExpired returns running jobs whose lease expired (their worker
// died or hung) to the queue, due now. A job that has used maxAttempts is
// finished as upstream_failed instead, so a job that kills its workers
// cannot loop forever. It returns how many jobs it requeued and failed.
func (q *Queue) RequeueExpired(ctx context.Context, maxAttempts int) (requeued, failed int, err error) {
	rows, err := q.pool.Query(ctx, `
UPDATE verification_jobs SET
    state = CASE WHEN attempts >= $1 THEN 'done' ELSE 'retrying' END,
    outcome = CASE WHEN attempts >= $1 THEN 'upstream_failed' END,
    finished_at = CASE WHEN attempts >= $1 THEN clock_timestamp() END,
    next_run_at = clock_timestamp(),
    last_error = 'lease expired: worker ' || lease_owner || ' stopped during attempt ' || attempts,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = clock_timestamp()
WHERE state = 'running' AND lease_expires_at <= clock_timestamp()
RETURNING state`, maxAttempts)
	if err != nil {
		return 0, 0, fmt.Errorf("while requeueing expired verification leases: %w", err)
	}
	states, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, 0, fmt.Errorf("while requeueing expired verification leases: %w", err)
	}
	for _, s := range states {
		if s == string(StateDone) {
			failed++
		} else {
			requeued++
		}
	}
	return requeued, failed, nil
}

// NextDueIn returns how long until the earliest waiting job is due, by
// Postgres's clock (ok false when none waits), so an idle worker sleeps
// exactly until then whatever its own clock says.
func (q *Queue) NextDueIn(ctx context.Context) (d time.Duration, ok bool, err error) {
	var us *int64
	err = q.pool.QueryRow(ctx, `SELECT (extract(epoch FROM min(next_run_at) - clock_timestamp()) * 1000000)::bigint
FROM verification_jobs WHERE state IN ('queued', 'retrying')`).Scan(&us)
	if err != nil {
		return 0, false, fmt.Errorf("while reading the next due verification job: %w", err)
	}
	if us == nil {
		return 0, false, nil
	}
	return max(time.Duration(*us)*time.Microsecond, 0), true, nil
}

// Depth counts live jobs by state (the queue-depth metric).
func (q *Queue) Depth(ctx context.Context) (map[State]int, error) {
	rows, err := q.pool.Query(ctx, `SELECT state, count(*) FROM verification_jobs WHERE state <> 'done' GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("while counting verification jobs: %w", err)
	}
	defer rows.Close()
	out := map[State]int{StateQueued: 0, StateRunning: 0, StateRetrying: 0}
	for rows.Next() {
		var s State
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("while counting verification jobs: %w", err)
		}
		out[s] = n
	}
	return out, rows.Err()
}
