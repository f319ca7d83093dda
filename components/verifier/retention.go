package verifier

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	for ctx.Err() == nil {
		n, last, err := v.st.DeleteOldMessages(ctx, rules, after, batch)
		if err != nil {
			v.log.Warn("retention: could not delete old messages", "err", err)
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
			break
		}
		jobs += n
		v.ret.deleted.WithLabelValues("verification_jobs").Add(float64(n))
		if n < int64(batch) {
			break
		}
		sleepCtx(ctx, retentionPause)
	}
	if messages+jobs > 0 {
		v.log.Info("retention", "messages_deleted", messages, "jobs_deleted", jobs, "took", time.Since(start))
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
