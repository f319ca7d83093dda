package streamer

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatr-ai/chatr/internal/depcheck"
	"github.com/chatr-ai/chatr/internal/version"
)

// metrics are the streamer's own series, in its own registry so that
// several components can share one process (chatrd dev, tests).
type metrics struct {
	reg         *prometheus.Registry
	connections *prometheus.GaugeVec
	deliveries  prometheus.Counter
	disconnects *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	queueDrops  prometheus.Counter
	fanout      prometheus.Histogram
	messages    prometheus.Counter
	gapFills    prometheus.Counter
	pgResumes   prometheus.Counter
	redisErrors prometheus.Counter
	deleted     prometheus.Counter
	// batchedWrites is 1 while the shards send through io_uring.
	batchedWrites prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chatr_streamer_connections", Help: "Open stream connections on this pod, by transport.",
		}, []string{"transport"}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_streamer_deliveries_total", Help: "Message events queued to clients (one per message per client).",
		}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatr_streamer_disconnects_total", Help: "Closed stream connections, by reason.",
		}, []string{"reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatr_streamer_rejected_total", Help: "Refused stream requests, by reason (per_ip, pod_full, draining).",
		}, []string{"reason"}),
		queueDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_streamer_queue_drops_total", Help: "Clients disconnected because their queue overflowed.",
		}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chatr_streamer_fanout_latency_seconds",
			Help:    "From a message's arrival on this pod to its write to every client of a hub shard.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_streamer_messages_total", Help: "Messages fanned out, in id order.",
		}),
		gapFills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_streamer_gap_fills_total", Help: "Reads from Postgres to fill a gap in the bus (or after a Redis reconnect).",
		}),
		pgResumes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_streamer_postgres_resumes_total", Help: "Resumes older than the in-memory ring, served from Postgres.",
		}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_streamer_redis_errors_total", Help: "Failed Redis operations (subscription, limits, reports).",
		}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_streamer_deleted_messages_total", Help: "Messages a moderator deleted, taken out of this pod's ring.",
		}),
		batchedWrites: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chatr_streamer_batched_writes",
			Help: "1 if the hub sends its socket writes in batches through io_uring, 0 if with one writev per connection (CHATR_STREAM_WRITES, or io_uring not allowed).",
		}),
	}
	m.reg.MustRegister(m.connections, m.deliveries, m.disconnects, m.rejected, m.queueDrops, m.fanout,
		m.messages, m.gapFills, m.pgResumes, m.redisErrors, m.deleted, m.batchedWrites, version.NewCollector("streamer"))
	return m
}

// register adds what needs the server: the per-pod connection cap (for the
// "near its cap" alert) and whether Postgres (gap fills, old resumes) and
// Redis (the bus, limits, counts) answer, measured at each scrape.
func (m *metrics) register(s *Server, maxConnections int) {
	maxConns := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chatr_streamer_max_connections", Help: "The per-pod stream connection cap (CHATR_MAX_CONNECTIONS): 503 beyond it.",
	})
	maxConns.Set(float64(maxConnections))
	m.reg.MustRegister(maxConns, depcheck.New("streamer", map[string]depcheck.Ping{
		"postgres": func(ctx context.Context) error {
			if s.st == nil {
				return errors.New("not connected")
			}
			return s.st.Ping(ctx)
		},
		"redis": func(ctx context.Context) error {
			if s.rdb == nil {
				return errors.New("not connected")
			}
			return s.rdb.Ping(ctx).Err()
		},
	}))
}

func (t transport) String() string {
	if t == wsText {
		return "ws"
	}
	return "sse"
}
