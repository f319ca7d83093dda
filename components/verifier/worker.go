package verifier

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/chatr-ai/chatr/internal/moltbook"
	"github.com/chatr-ai/chatr/internal/verify"
)

// work is one worker: claim a due job, process it, repeat; when nothing is
// due, sleep until the next job is due, a notification, or PollInterval.
func (v *Verifier) work(ctx context.Context, owner string) {
	errDelay := 100 * time.Millisecond
	for ctx.Err() == nil {
		woken := v.wake.wait()
		claimedAt := time.Now()
		job, ok, err := v.q.Claim(ctx, owner, v.cfg.Lease)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			v.log.Warn("could not claim a job", "err", err, "retry_in", errDelay)
			sleep(ctx, errDelay)
			errDelay = min(errDelay*2, v.cfg.PollInterval)
			continue
		}
		errDelay = 100 * time.Millisecond
		if ok {
			v.process(ctx, job, claimedAt)
			continue
		}
		idle := v.cfg.PollInterval
		if d, ok, err := v.q.NextDueIn(ctx); err == nil && ok {
			idle = min(idle, d+time.Millisecond)
		}
		t := time.NewTimer(idle)
		select {
		case <-ctx.Done():
		case <-woken:
		case <-t.C:
		}
		t.Stop()
	}
}

// decision is what to do with a job after one Moltbook call.
type decision struct {
	finish bool
	result verify.Result // when finish
	delay  time.Duration // when retrying
	reason string        // last_error
	label  string        // the attempt's result, for metrics and logs
}

// process runs one attempt of a claimed job. The attempt never outlives
// its lease: its context ends a safety margin before the lease does, so the
// job is not worked on by two workers at once (and the lease guard in the
// queue refuses a late result anyway).
func (v *Verifier) process(ctx context.Context, job verify.Job, claimedAt time.Time) {
	log := v.log.With("job", job.ID, "agent", job.AgentID, "moltbook_name", job.MoltbookName, "attempt", job.Attempts)
	margin := min(v.cfg.Lease/10, 2*time.Second)
	jctx, cancel := context.WithDeadline(ctx, claimedAt.Add(v.cfg.Lease-margin))
	defer cancel()
	// Results are written even if the process is stopping: the work is done.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer wcancel()

	// A Moltbook account verifies one agent: when another agent holds it
	// already, the answer is known without spending the fleet's budget.
	if taken, err := v.q.MoltbookNameTaken(jctx, job.AgentID, job.MoltbookName); err == nil && taken {
		v.finish(wctx, job, decision{finish: true, label: "taken", reason: "the Moltbook account already verifies another agent",
			result: verify.Result{Outcome: verify.OutcomeTaken}}, 0, log)
		return
	}
	if !v.takeBudget(jctx, ctx, wctx, job, log) {
		return
	}
	start := time.Now()
	prof, rl, err := v.mb.Profile(jctx, job.MoltbookName)
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		// Shutting down mid-call: give the job back now rather than leave it
		// to the lease.
		v.giveBack(wctx, job, "worker stopped during the Moltbook call", log)
		return
	}
	if wait := time.Until(rl.Reset); rl.HasRemaining && rl.Remaining <= 0 && wait > 0 {
		// The budget is spent on Moltbook's side: hold the whole fleet.
		if err := v.q.PauseMoltbook(wctx, min(wait, time.Hour)); err != nil {
			log.Warn("could not pause Moltbook requests", "err", err)
		}
	}
	d := v.decide(job, prof, err)
	v.m.attempts.WithLabelValues(d.label).Inc()
	v.m.latency.WithLabelValues(d.label).Observe(elapsed.Seconds())
	var rle *moltbook.RateLimitedError
	if errors.As(err, &rle) && rle.Wait > 0 {
		if perr := v.q.PauseMoltbook(wctx, rle.Wait); perr != nil {
			log.Warn("could not pause Moltbook requests", "err", perr)
		}
	}
	if d.finish {
		v.finish(wctx, job, d, elapsed, log)
		return
	}
	if err := v.q.Retry(wctx, job, d.delay, d.reason); err != nil {
		v.resultLost(err, log)
		return
	}
	v.m.retries.Inc()
	log.Info("verification will be retried", "result", d.label, "reason", d.reason, "retry_in", d.delay.Round(time.Millisecond))
}

// finish records a job's final result. The outcome recorded may differ
// from the one decided (a verified account that another agent verified in
// the meantime is recorded as taken), so the metric and the log use it.
func (v *Verifier) finish(wctx context.Context, job verify.Job, d decision, elapsed time.Duration, log *slog.Logger) {
	if d.result.Err == "" {
		d.result.Err = d.reason
	}
	outcome, err := v.q.FinishOutcome(wctx, job, d.result)
	if err != nil {
		v.resultLost(err, log)
		return
	}
	v.m.jobs.WithLabelValues(string(outcome)).Inc()
	log.Info("verification finished", "outcome", outcome, "result", d.label, "took", elapsed.Round(time.Millisecond))
}

// takeBudget waits for the fleet-wide Moltbook budget. Short waits are
// slept through while holding the job; a long one (Moltbook paused us)
// defers the job, without counting an attempt, to when the budget frees.
// It reports whether the call may go ahead.
func (v *Verifier) takeBudget(jctx, ctx, wctx context.Context, job verify.Job, log *slog.Logger) bool {
	inlineMax := min(2*time.Second, v.cfg.Lease/4)
	for {
		wait, err := v.q.TakeMoltbook(jctx, v.cfg.MoltbookRPM)
		if err != nil {
			if ctx.Err() != nil {
				v.giveBack(wctx, job, "worker stopped while waiting for the Moltbook budget", log)
				return false
			}
			log.Warn("could not take from the Moltbook budget", "err", err)
			v.deferJob(wctx, job, time.Second, "Moltbook rate budget unavailable: "+err.Error(), log)
			return false
		}
		if wait == 0 {
			return true
		}
		deadline, _ := jctx.Deadline()
		if wait > inlineMax || time.Now().Add(wait+v.cfg.MoltbookTimeout).After(deadline) {
			v.m.deferred.Inc()
			v.deferJob(wctx, job, wait, "waiting for the Moltbook rate budget", log)
			return false
		}
		if !sleep(jctx, wait) {
			if ctx.Err() != nil {
				v.giveBack(wctx, job, "worker stopped while waiting for the Moltbook budget", log)
			} else {
				v.deferJob(wctx, job, 0, "lease ran out waiting for the Moltbook budget", log)
			}
			return false
		}
	}
}

func (v *Verifier) deferJob(ctx context.Context, job verify.Job, delay time.Duration, reason string, log *slog.Logger) {
	if err := v.q.Defer(ctx, job, delay, reason); err != nil {
		v.resultLost(err, log)
	}
}

// giveBack returns the job to the queue at once, this attempt not counted.
func (v *Verifier) giveBack(ctx context.Context, job verify.Job, reason string, log *slog.Logger) {
	if err := v.q.Defer(ctx, job, 0, reason); err != nil {
		v.resultLost(err, log)
		return
	}
	log.Info("gave the job back", "reason", reason)
}

func (v *Verifier) resultLost(err error, log *slog.Logger) {
	if errors.Is(err, verify.ErrLeaseLost) {
		v.m.leaseLost.Inc()
		log.Warn("result dropped: the job's lease was lost (another worker owns the job now)", "err", err)
		return
	}
	log.Error("could not record the job's result; the job is retried after its lease", "err", err)
}

// decide applies the retry policy to one Moltbook answer:
//
//   - profile found: not claimed → final (403); [CODE] in a recent post →
//     verified; no such post → retried until PostAttempts calls have been
//     made (owners post late; a new post can take a moment to show), then
//     final (404 with the code).
//   - no such agent → final (404). A permanent upstream error (401, 400...)
//     → final upstream_failed (502): asking again will not help.
//   - 429 → retried after max(backoff, Retry-After / X-RateLimit-Reset);
//     5xx, network errors, timeouts, malformed answers → retried with
//     backoff. After MaxAttempts calls → final upstream_failed (502).
func (v *Verifier) decide(job verify.Job, prof *moltbook.Profile, err error) decision {
	final := func(o verify.Outcome, label, reason string) decision {
		return decision{finish: true, result: verify.Result{Outcome: o}, label: label, reason: reason}
	}
	retry := func(label, reason string, atLeast time.Duration) decision {
		if job.Attempts >= v.cfg.MaxAttempts {
			return final(verify.OutcomeUpstreamFailed, label, "gave up after "+strconv.Itoa(job.Attempts)+" attempts: "+reason)
		}
		return decision{delay: max(v.backoff(job.Attempts), atLeast), reason: reason, label: label}
	}
	var rle *moltbook.RateLimitedError
	var ue *moltbook.UpstreamError
	var me *moltbook.MalformedError
	switch {
	case err == nil:
		if !prof.Claimed {
			return final(verify.OutcomeNotClaimed, "not_claimed", "the Moltbook account is not claimed")
		}
		if post, ok := prof.FindCode(job.Code); ok {
			return decision{finish: true, label: "verified",
				result: verify.Result{Outcome: verify.OutcomeVerified, OwnerTwitter: prof.OwnerXHandle, PostID: post.ID}}
		}
		reason := "no recent post contains [" + job.Code + "]"
		if job.Attempts >= min(v.cfg.PostAttempts, v.cfg.MaxAttempts) {
			return final(verify.OutcomePostNotFound, "no_post", reason)
		}
		return decision{delay: v.backoff(job.Attempts), reason: reason + " yet", label: "no_post"}
	case errors.Is(err, moltbook.ErrNotFound), errors.Is(err, moltbook.ErrInvalidName):
		return final(verify.OutcomeNotFound, "not_found", err.Error())
	case errors.As(err, &rle):
		return retry("rate_limited", err.Error(), rle.Wait)
	case errors.As(err, &ue) && !ue.Temporary:
		return final(verify.OutcomeUpstreamFailed, "upstream_error", err.Error())
	case errors.As(err, &ue):
		return retry("upstream_error", err.Error(), 0)
	case errors.As(err, &me):
		return retry("malformed", err.Error(), 0)
	default: // our own deadline (the lease margin) ran out during the call
		return retry("timeout", err.Error(), 0)
	}
}

// backoff is the delay after the attempt-th failed call: BackoffBase
// doubling each attempt, capped at BackoffMax, with "equal jitter" (half
// fixed, half random) so that jobs failing together do not retry together.
func (v *Verifier) backoff(attempt int) time.Duration {
	d := v.cfg.BackoffBase
	for i := 1; i < attempt && d < v.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, v.cfg.BackoffMax)
	half := d / 2
	return half + rand.N(half+1)
}

// sleep waits d or until ctx ends; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
