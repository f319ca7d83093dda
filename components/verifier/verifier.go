// Package verifier is the Moltbook verification worker. It claims
// verification jobs from the room's Postgres queue (FOR UPDATE SKIP LOCKED,
// woken by LISTEN/NOTIFY with a polling fallback), holds a lease on each so
// that a crashed worker's job is taken again, asks Moltbook within a
// fleet-wide request budget, retries what may succeed later with
// exponential backoff and jitter, and writes the result: the verified agent,
// or a final outcome the API turns into the contract's answer.
//
// Any number of replicas can run; each job is processed by one at a time,
// and a result is only accepted from the worker holding the job's current
// lease. See docs/verifier.md for the retry policy and the rate budget.
package verifier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/depcheck"
	"github.com/chatr-ai/chatr/internal/moltbook"
	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/verify"
)

// Verifier is one verifier replica.
type Verifier struct {
	cfg Config
	log *slog.Logger
	st  *store.Store
	q   *verify.Queue
	mb  *moltbook.Client
	reg *prometheus.Registry
	m   *metrics
	ret *retentionMetrics
	id  string
	// rdb is the room's Redis, used only to hand summaries to the operator
	// (internal/roomevents); nil without a Redis URL.
	rdb *redis.Client

	wake broadcast
}

// New connects to Postgres (migrating when configured to) and prepares the
// Moltbook client. It does not start working until Run.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid verifier configuration: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	mb, err := moltbook.New(moltbook.Options{BaseURL: cfg.MoltbookURL, APIKey: cfg.MoltbookAPIKey, Timeout: cfg.MoltbookTimeout})
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Options{URL: cfg.Common.DatabaseURL, Schema: cfg.Common.Schema, Migrate: cfg.Common.Migrate,
		ConnectTimeout: cfg.Common.DBConnectTimeout, StatementTimeout: cfg.Common.DBStatementTimeout})
	if err != nil {
		return nil, err
	}
	id := cfg.WorkerID
	if id == "" {
		id, _ = os.Hostname()
	}
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	id += "-" + hex.EncodeToString(suffix[:])
	var rdb *redis.Client
	if cfg.Common.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.Common.RedisURL)
		if err != nil {
			st.Close()
			// ParseURL's errors can quote the URL; say only what is wrong.
			return nil, fmt.Errorf("the Redis URL is not a valid redis:// or rediss:// URL")
		}
		opt.PoolSize = 2
		rdb = redis.NewClient(opt)
	}
	reg := prometheus.NewRegistry()
	pings := map[string]depcheck.Ping{"postgres": st.Ping}
	if rdb != nil {
		pings["redis"] = func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
	}
	reg.MustRegister(depcheck.New("verifier", pings))
	return &Verifier{cfg: cfg, log: log.With("component", "verifier", "worker", id), st: st, q: verify.NewQueue(st),
		mb: mb, reg: reg, m: newMetrics(reg), ret: newRetentionMetrics(reg), id: id, rdb: rdb}, nil
}

// Name names the component in logs.
func (v *Verifier) Name() string { return "verifier" }

// ID is this replica's name in leases.
func (v *Verifier) ID() string { return v.id }

// Ready reports whether Postgres answers: without it there is no queue.
func (v *Verifier) Ready(ctx context.Context) error { return v.st.Ping(ctx) }

// Gatherer exposes the verifier's metrics.
func (v *Verifier) Gatherer() prometheus.Gatherer { return v.reg }

// Close releases the database pool and the Redis client. Call it after
// Run has returned.
func (v *Verifier) Close() {
	v.st.Close()
	if v.rdb != nil {
		_ = v.rdb.Close()
	}
}

// Run works until ctx ends: a LISTEN loop that wakes the workers, a
// maintenance loop that requeues expired leases and measures the queue,
// and Concurrency workers. A job in flight when ctx ends is given back to
// the queue at once (not counted as an attempt), so a rolling update does
// not make agents wait for a lease to expire.
func (v *Verifier) Run(ctx context.Context) error {
	v.log.Info("verifier starting", "moltbook", config.Redact(v.cfg.MoltbookURL), "rpm", v.cfg.MoltbookRPM,
		"concurrency", v.cfg.Concurrency, "lease", v.cfg.Lease, "max_attempts", v.cfg.MaxAttempts)
	var wg sync.WaitGroup
	wg.Add(3 + v.cfg.Concurrency)
	go func() {
		defer wg.Done()
		_ = verify.Listen(ctx, verify.ListenOptions{
			ConnConfig: v.st.Pool().Config().ConnConfig, Channel: verify.JobsChannel, Schema: v.st.Schema(),
			Up: v.wake.signal, Notify: func(int64) { v.wake.signal() }, Log: v.log,
		})
	}()
	go func() {
		defer wg.Done()
		v.maintain(ctx)
	}()
	go func() {
		defer wg.Done()
		v.retain(ctx)
	}()
	for i := 0; i < v.cfg.Concurrency; i++ {
		go func(owner string) {
			defer wg.Done()
			v.work(ctx, owner)
		}(fmt.Sprintf("%s/%d", v.id, i))
	}
	wg.Wait()
	v.log.Info("verifier stopped")
	return nil
}

// maintain requeues jobs whose worker died (lease expired) and refreshes
// the queue-depth gauge, every PollInterval.
func (v *Verifier) maintain(ctx context.Context) {
	t := time.NewTicker(v.cfg.PollInterval)
	defer t.Stop()
	for {
		requeued, failed, err := v.q.RequeueExpired(ctx, v.cfg.MaxAttempts)
		switch {
		case err != nil && ctx.Err() == nil:
			v.log.Warn("could not requeue expired leases", "err", err)
		case requeued+failed > 0:
			v.log.Warn("took back jobs whose worker stopped (lease expired)", "requeued", requeued, "failed_for_good", failed)
			v.m.leasesExpired.Add(float64(requeued + failed))
			if failed > 0 {
				v.m.jobs.WithLabelValues(string(verify.OutcomeUpstreamFailed)).Add(float64(failed))
			}
			v.wake.signal()
		}
		if depth, err := v.q.Depth(ctx); err == nil {
			for s, n := range depth {
				v.m.depth.WithLabelValues(string(s)).Set(float64(n))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// broadcast wakes every waiting worker at once (close-and-replace channel).
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next signal. Take it BEFORE looking
// for work, so a signal sent while looking is not missed.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
