package api

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatr-ai/chatr/internal/httpjson"
	"github.com/chatr-ai/chatr/internal/serve"
)

// The API's time and load bounds (docs/runtime.md, "Time bounds"). A request
// that waits on a frozen or unreachable Postgres or Redis must not wait for
// as long as the outage lasts: it gets a deadline, everything it waits on
// gives up with it, and the client learns to retry (503 with Retry-After).
// And while a dependency is slow the requests that arrive must not pile up
// as goroutines: beyond MaxInFlight they are shed at once.

// Error strings of the bounds.
const (
	errBusy        = "Server busy, try again shortly"
	errUnavailable = "Service temporarily unavailable, try again shortly"
	errTimedOut    = "Request timed out, try again shortly"
)

// boundsMetrics count what the bounds refused. They live in the server's
// registry next to the other API series.
type boundsMetrics struct {
	shed, timedOut, connsRefused prometheus.Counter
}

func newBoundsMetrics(reg *prometheus.Registry) *boundsMetrics {
	m := &boundsMetrics{
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_api_shed_total",
			Help: "Requests answered 503 at once because MaxInFlight requests were already being served.",
		}),
		timedOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_api_deadline_exceeded_total",
			Help: "Requests answered 503 because their deadline passed while a dependency was waited on.",
		}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatr_api_connections_refused_total",
			Help: "Connections refused with 429 because their address had ConnsPerIP open already.",
		}),
	}
	reg.MustRegister(m.shed, m.timedOut, m.connsRefused)
	return m
}

// admitRequest takes an in-flight slot, or answers 503 and returns false.
// The caller gives the slot back with releaseRequest.
func (s *Server) admitRequest(w http.ResponseWriter) bool {
	select {
	case s.inflight <- struct{}{}:
		return true
	default:
		s.bounds.shed.Inc()
		w.Header().Set("Retry-After", "1")
		httpjson.Fail(w, http.StatusServiceUnavailable, errBusy)
		return false
	}
}

func (s *Server) releaseRequest() { <-s.inflight }

// deadlineOf is the deadline a request gets: RequestTimeout, and for
// verify/complete its verifier wait on top (it waits that long by design).
func (s *Server) deadlineOf(rt *route, method string) time.Duration {
	if rt != nil && rt.path == "/api/verify/complete" && method == http.MethodPost {
		return s.cfg.RequestTimeout + s.cfg.VerifyWait
	}
	return s.cfg.RequestTimeout
}

// unavailable answers 503 when a dependency (Redis, Postgres) fails or does
// not answer within the request's deadline: the client can simply retry.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	msg := errUnavailable
	if errors.Is(err, context.DeadlineExceeded) || r.Context().Err() != nil {
		s.bounds.timedOut.Inc()
		msg = errTimedOut
	}
	s.log.Error("dependency failed", "method", r.Method, "path", r.URL.Path, "client", s.clientAddr(r), "err", err)
	w.Header().Set("Retry-After", "1")
	httpjson.Fail(w, http.StatusServiceUnavailable, msg)
}

// ServeOptions fills in what serve.Run needs to bound the API's connections:
// the read and idle timeouts and the per-address connection cap, trusted
// proxies exempt (an ingress carries many clients on its connections).
func (s *Server) ServeOptions(o serve.Options) serve.Options {
	o.ReadTimeout = s.cfg.Common.ReadTimeout
	o.IdleTimeout = s.cfg.Common.IdleTimeout
	o.MaxConnsPerIP = s.cfg.ConnsPerIP
	o.ExemptPeer = s.ips.Trusted
	o.OnConnRefused = func(netip.Addr) { s.bounds.connsRefused.Inc() }
	return o
}
