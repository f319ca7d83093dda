package verifier

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatr-ai/chatr/internal/roomevents"
	"github.com/chatr-ai/chatr/internal/store"
)

// The retention: the verifier's deployment is the room's worker, so it also
// deletes what the room no longer keeps (RetentionMaxAge,
// RetentionMaxMessages) and verification jobs finished longer ago than
// RetentionJobs. Every replica runs it; the deletes are idempotent, and a
// batch that finds nothing due costs one short index scan.

// minKeptMessages is the least a count limit may keep: the history a new
// stream shows (the streamers also keep that many in memory).
const minKeptMessages = 100

const (
	defaultRetentionInterval = time.Minute
	defaultRetentionBatch    = 1000
	// retentionPause separates batches, so posting and readers get the
	// table between them.
	retentionPause = 20 * time.Millisecond
)

type retentionMetrics struct {
	deleted *prometheus.CounterVec
}

func newRetentionMetrics(reg *prometheus.Registry) *retentionMetrics {
	m := &retentionMetrics{deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chatr_retention_deleted_total",
		Help: "Rows the retention deleted, by table (messages, verification_jobs).",
	}, []string{"table"})}
	reg.MustRegister(m.deleted)
	return m
}

// retain applies the retention every interval until ctx ends.
func (v *Verifier) retain(ctx context.Context) {
	rules := store.Retention{MaxAge: v.cfg.RetentionMaxAge, MaxMessages: int64(v.cfg.RetentionMaxMessages)}
	if rules == (store.Retention{}) && v.cfg.RetentionJobs <= 0 {
		return
	}
	every := v.cfg.RetentionInterval
	if every <= 0 {
		every = defaultRetentionInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		v.retainOnce(ctx, rules)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// retainOnce deletes what is due, batch after batch, and logs what it did.
func (v *Verifier) retainOnce(ctx context.Context, rules store.Retention) {
	batch := v.cfg.RetentionBatch
	if batch <= 0 {
		batch = defaultRetentionBatch
	}
	start := time.Now()
	var messages, jobs, after int64
	var failures []string
	for ctx.Err() == nil {
		n, last, err := v.st.DeleteOldMessages(ctx, rules, after, batch)
		if err != nil {
			v.log.Warn("retention: could not delete old messages", "err", err)
			failures = append(failures, "deleting old messages: "+err.Error())
			break
		}
		messages += n
		after = last
		v.ret.deleted.WithLabelValues("messages").Add(float64(n))
		if n < int64(batch) {
			break
		}
		sleepCtx(ctx, retentionPause)
	}
	for ctx.Err() == nil {
		n, err := v.st.DeleteFinishedJobs(ctx, v.cfg.RetentionJobs, batch)
		if err != nil {
			v.log.Warn("retention: could not delete finished verification jobs", "err", err)
			failures = append(failures, "deleting finished verification jobs: "+err.Error())
			break
		}
		jobs += n
		v.ret.deleted.WithLabelValues("verification_jobs").Add(float64(n))
		if n < int64(batch) {
			break
		}
		sleepCtx(ctx, retentionPause)
	}
	took := time.Since(start)
	if messages+jobs > 0 {
		v.log.Info("retention", "messages_deleted", messages, "jobs_deleted", jobs, "took", took)
	}
	if ctx.Err() != nil {
		return
	}
	// The pass's summary, for the operator to emit as an Event on the room:
	// a pass that deleted something, or failed. A pass with nothing due
	// (most of them, once a room is caught up) says nothing.
	switch {
	case len(failures) > 0:
		v.publish(ctx, roomevents.Event{Type: roomevents.Warning, Reason: "RetentionFailed", Message: fmt.Sprintf(
			"retention pass failed after deleting %d messages and %d finished verification jobs: %s", messages, jobs, strings.Join(failures, "; "))})
	case messages+jobs > 0:
		v.publish(ctx, roomevents.Event{Type: roomevents.Normal, Reason: "RetentionRun", Message: fmt.Sprintf(
			"retention deleted %d messages and %d finished verification jobs in %s (%s)", messages, jobs, took.Round(time.Millisecond), v.retentionRules())})
	}
}

// retentionRules says what the room keeps, for the summary.
func (v *Verifier) retentionRules() string {
	var parts []string
	if v.cfg.RetentionMaxAge > 0 {
		parts = append(parts, "messages younger than "+v.cfg.RetentionMaxAge.String())
	}
	if v.cfg.RetentionMaxMessages > 0 {
		parts = append(parts, fmt.Sprintf("the newest %d messages", v.cfg.RetentionMaxMessages))
	}
	if len(parts) == 0 {
		parts = append(parts, "every message")
	}
	s := "keeps " + strings.Join(parts, " and ")
	if v.cfg.RetentionJobs > 0 {
		s += ", finished jobs for " + v.cfg.RetentionJobs.String()
	}
	return s
}

// publish hands a summary to the operator through the room's Redis
// (internal/roomevents). The verifier works without Redis: a summary that
// cannot be published is logged and dropped.
func (v *Verifier) publish(ctx context.Context, e roomevents.Event) {
	if v.rdb == nil {
		return
	}
	e.Source = "verifier/" + v.id
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := roomevents.Publish(pctx, v.rdb, v.st.Schema(), e); err != nil {
		v.log.Warn("room event not published", "reason", e.Reason, "err", err)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
