package verifier

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatr-ai/chatr/internal/version"
)

// metrics are the verifier's own, in its own registry.
type metrics struct {
	jobs          *prometheus.CounterVec   // final outcomes
	attempts      *prometheus.CounterVec   // Moltbook calls by result
	latency       *prometheus.HistogramVec // Moltbook call latency by result
	depth         *prometheus.GaugeVec     // live jobs by state
	retries       prometheus.Counter
	deferred      prometheus.Counter
	leasesExpired prometheus.Counter
	leaseLost     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatr_verifier_jobs_total",
			Help: "Verification jobs finished, by outcome (verified, not_found, not_claimed, post_not_found, upstream_failed).",
		}, []string{"outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatr_verifier_attempts_total",
			Help: "Moltbook calls made for verification jobs, by result (verified, not_claimed, no_post, not_found, rate_limited, upstream_error, malformed, timeout).",
		}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chatr_verifier_moltbook_request_duration_seconds",
			Help:    "Latency of Moltbook profile requests, by result.",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"result"}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chatr_verifier_queue_depth",
			Help: "Live verification jobs of the room, by state (queued, running, retrying), measured every poll interval. Every replica reports the whole room's queue: aggregate with max, not sum.",
		}, []string{"state"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_verifier_retries_total",
			Help: "Attempts that ended in a scheduled retry.",
		}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_verifier_rate_deferrals_total",
			Help: "Jobs put back, uncounted, because the fleet-wide Moltbook budget was spent or paused.",
		}),
		leasesExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_verifier_leases_expired_total",
			Help: "Jobs taken back from a worker that stopped without finishing (lease expired).",
		}),
		leaseLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_verifier_results_dropped_total",
			Help: "Results dropped because the worker no longer held the job's lease.",
		}),
	}
	reg.MustRegister(m.jobs, m.attempts, m.latency, m.depth, m.retries, m.deferred, m.leasesExpired, m.leaseLost,
		version.NewCollector("verifier"))
	return m
}
