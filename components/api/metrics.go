package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatr-ai/chatr/internal/version"
)

// metrics are the API's own Prometheus series, in a registry of the server's
// own (several servers live in one test process).
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	limited       *prometheus.CounterVec
	batchSize     prometheus.Histogram
	publishErrors prometheus.Counter
	// stage times the parts of a post: authenticate (the key's agent row;
	// every authenticated request), limits (rate-limit script with the
	// presence touch, and the throttled Postgres presence write), queue
	// (waiting for the post writer), commit (one batch's transaction) and
	// publish (one batch's publish and posts count, after its posters were
	// answered). The observers are resolved once, not per request.
	stage struct{ authenticate, limits, queue, commit, publish prometheus.Observer }
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatr_api_requests_total",
			Help: "API requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chatr_api_request_duration_seconds",
			Help:    "API request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatr_api_rate_limited_total",
			Help: "Requests refused with 429, by limit.",
		}, []string{"limit"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chatr_api_post_batch_size",
			Help:    "Messages committed per Postgres transaction (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_api_publish_errors_total",
			Help: "Committed batches whose Redis publish failed (streamers fill such gaps from Postgres).",
		}),
	}
	stages := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chatr_api_post_stage_seconds",
		Help:    "Where a post's time goes, by stage: authenticate (every authenticated request), limits, queue (per post); commit, publish (per batch).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"stage"})
	m.stage.authenticate = stages.WithLabelValues("authenticate")
	m.stage.limits = stages.WithLabelValues("limits")
	m.stage.queue = stages.WithLabelValues("queue")
	m.stage.commit = stages.WithLabelValues("commit")
	m.stage.publish = stages.WithLabelValues("publish")
	m.reg.MustRegister(m.requests, m.latency, m.limited, m.batchSize, m.publishErrors, stages,
		version.NewCollector("api"))
	return m
}

// statusWriter remembers the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe records one finished request.
func (m *metrics) observe(route, method string, code int, d time.Duration) {
	if code == 0 {
		code = http.StatusOK
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}
