package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/clientip"
	"github.com/chatr-ai/chatr/internal/httpjson"
	"github.com/chatr-ai/chatr/internal/openapi"
	"github.com/chatr-ai/chatr/internal/ratelimit"
)

// route is one path and the handler of each method it accepts. The router is
// this small table rather than http.ServeMux so that unknown paths and wrong
// methods answer in the contract's JSON envelope (404 / 405 with Allow).
type route struct {
	path    string
	methods map[string]http.Handler
	allow   string
}

func (s *Server) buildRoutes() map[string]*route {
	table := []struct {
		method, path string
		h            http.Handler
	}{
		{"POST", "/api/register", http.HandlerFunc(s.register)},
		{"POST", "/api/messages", s.authenticated(s.post)},
		{"GET", "/api/messages", http.HandlerFunc(s.listMessages)},
		{"POST", "/api/heartbeat", s.authed(s.heartbeat)},
		{"POST", "/api/disconnect", s.authed(s.disconnect)},
		{"GET", "/api/agents", http.HandlerFunc(s.agents)},
		{"POST", "/api/verify/start", s.authed(s.verify.Start)},
		{"POST", "/api/verify/complete", s.authed(s.verify.Complete)},
		{"GET", "/api/verify/status", s.authed(s.verify.Status)},
		// The OpenAPI description of all of the above (and the stream).
		{"GET", "/api/openapi.json", openapi.Handler()},
	}
	routes := map[string]*route{}
	for _, e := range table {
		rt := routes[e.path]
		if rt == nil {
			rt = &route{path: e.path, methods: map[string]http.Handler{}}
			routes[e.path] = rt
		}
		rt.methods[e.method] = e.h
	}
	for _, rt := range routes {
		if h, ok := rt.methods["GET"]; ok {
			rt.methods["HEAD"] = h
		}
		names := make([]string, 0, len(rt.methods))
		for m := range rt.methods {
			names = append(names, m)
		}
		sort.Strings(names)
		rt.allow = strings.Join(names, ", ")
	}
	return routes
}

// knownMethods bounds the method label of the metrics.
var knownMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

// serveHTTP is the entry of every public request: metrics, panic safety,
// the in-flight cap and the request's deadline (bounds.go), the per-IP
// request limit (every endpoint, known or not), then routing.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	rt := s.routes[r.URL.Path]
	label := "unmatched"
	if rt != nil {
		label = rt.path
	}
	method := r.Method
	if !knownMethods[method] {
		method = "OTHER"
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			err := fmt.Errorf("handler panicked: %v", p)
			if sw.code == 0 {
				s.internalError(sw, r, err)
			} else {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
		}
		d := time.Since(start)
		s.met.observe(label, method, sw.code, d)
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.Debug("request", "method", method, "route", label, "status", sw.code,
				"duration", d, "client", s.clientAddr(r))
		}
	}()

	// The in-flight cap first: it costs nothing, and while a dependency is
	// slow nothing else should be waited on.
	if !s.admitRequest(sw) {
		return
	}
	defer s.releaseRequest()
	ctx, cancel := context.WithTimeout(r.Context(), s.deadlineOf(rt, r.Method))
	defer cancel()
	r = r.WithContext(ctx)

	if !s.allowIP(sw, r) {
		return
	}
	if rt == nil {
		httpjson.Fail(sw, http.StatusNotFound, "Not found")
		return
	}
	if s.applyCORS(sw, r, rt) {
		return // a preflight, answered
	}
	h, ok := rt.methods[r.Method]
	if !ok {
		sw.Header().Set("Allow", rt.allow)
		httpjson.Fail(sw, http.StatusMethodNotAllowed, "Method not allowed")
		return
	}
	if r.ContentLength > httpjson.MaxBody {
		// Every endpoint, even one that ignores its body (heartbeat), and
		// before authentication: nobody gets to make us read that much.
		httpjson.Fail(sw, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large (max %d KB)", httpjson.MaxBody>>10))
		return
	}
	h.ServeHTTP(sw, r)
}

// Error strings of the limits.
const (
	errTooManyRequests      = "Too many requests"
	errTooManyRegistrations = "Too many registrations, try again later"
)

// key names a room's Redis key.
func (s *Server) key(parts ...string) string { return bus.Key(s.cfg.Common.Schema, parts...) }

// clientKey is the client's address as the per-IP limits count it. IPv6
// clients are counted per /64: one customer usually holds a whole /64, and
// could otherwise take a fresh address for every request.
func (s *Server) clientKey(r *http.Request) string {
	a := s.ips.ClientIP(r)
	if !a.IsValid() {
		return "unknown"
	}
	if b := clientip.Bucket(a); b.Is6() {
		return netip.PrefixFrom(b, clientip.IPv6Prefix).String()
	}
	return a.Unmap().String()
}

// clientAddr is for logs.
func (s *Server) clientAddr(r *http.Request) netip.Addr { return s.ips.ClientIP(r) }

// allowIP enforces the per-IP request limit; it answers the request itself
// when it refuses.
func (s *Server) allowIP(w http.ResponseWriter, r *http.Request) bool {
	d, err := s.lim.Allow(r.Context(), s.key("rl", "ip", s.clientKey(r)),
		ratelimit.Rule{Limit: s.cfg.Limits.RequestsPerIP, Window: s.cfg.Limits.RequestWindow})
	if err != nil {
		// Fail closed: without Redis no limit holds, and Postgres would
		// take the unlimited load.
		s.unavailable(w, r, err)
		return false
	}
	if !d.Allowed {
		s.tooMany(w, "requests_per_ip", errTooManyRequests, "", d.RetryAfter)
		return false
	}
	return true
}

// tooMany answers 429 with Retry-After and retryAfter, and counts it.
func (s *Server) tooMany(w http.ResponseWriter, limit, msg, hint string, retry time.Duration) {
	s.met.limited.WithLabelValues(limit).Inc()
	secs := httpjson.RetrySeconds(retry)
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	httpjson.WriteError(w, &httpjson.Error{Status: http.StatusTooManyRequests, Msg: msg, Hint: hint,
		Extra: map[string]any{"retryAfter": secs}})
}

// internalError logs err (never the request's headers: they hold keys) and
// answers 500.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "client", s.clientAddr(r), "err", err)
	httpjson.Fail(w, http.StatusInternalServerError, "Internal server error")
}

// per renders a limit's window for messages: "minute", "5 minutes", "hour".
func per(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	case d%time.Second == 0:
		return unit(int64(d/time.Second), "second")
	default:
		return d.String()
	}
}
