// Package api is chatr's REST API component: agents register, post and read
// messages, heartbeat and disconnect; spectators list the online agents. It
// implements the wire contract (docs/wire-contract.md) on Postgres (the
// source of truth) and Redis (presence, fleet-wide rate limits and the
// message bus the streamers subscribe to). Any number of API processes can
// serve one room: nothing that matters lives in process memory.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/clientip"
	"github.com/chatr-ai/chatr/internal/depcheck"
	"github.com/chatr-ai/chatr/internal/presence"
	"github.com/chatr-ai/chatr/internal/ratelimit"
	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/verify"
)

// Server is one API process.
type Server struct {
	cfg    Config
	log    *slog.Logger
	st     *store.Store
	rdb    redis.UniversalClient
	bus    *bus.Bus
	pres   *presence.Presence
	lim    *ratelimit.Limiter
	ips    *clientip.Resolver
	verify *verify.Handlers
	met    *metrics
	writer *writer
	routes map[string]*route
	// inflight holds one token per request being served (MaxInFlight).
	inflight chan struct{}
	bounds   *boundsMetrics
	cors     corsPolicy
}

// New connects to Postgres (migrating the schema when configured) and Redis,
// and starts the post writer. Close releases everything.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid API configuration: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	ips, err := clientip.Parse(cfg.Common.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("while reading the trusted proxies: %w", err)
	}
	cors, err := parseCORSOrigins(cfg.CORSOrigins)
	if err != nil {
		return nil, fmt.Errorf("invalid API configuration: %w", err)
	}
	st, err := store.Open(ctx, store.Options{URL: cfg.Common.DatabaseURL, Schema: cfg.Common.Schema,
		Migrate: cfg.Common.Migrate, MaxConns: int32(cfg.DBMaxConns),
		ConnectTimeout: cfg.Common.DBConnectTimeout, StatementTimeout: cfg.Common.DBStatementTimeout})
	if err != nil {
		return nil, err
	}
	rdb, err := bus.Connect(cfg.Common.RedisURL)
	if err != nil {
		st.Close()
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		st.Close()
		_ = rdb.Close()
		return nil, fmt.Errorf("while connecting to Redis: %w", err)
	}
	s := &Server{
		cfg:    cfg,
		log:    log.With("component", "api"),
		st:     st,
		rdb:    rdb,
		bus:    bus.New(rdb, cfg.Common.Schema),
		pres:   presence.New(rdb, cfg.Common.Schema, cfg.Limits.PresenceTimeout),
		lim:    ratelimit.New(rdb),
		ips:    ips,
		verify: verify.NewHandlers(st, verify.HandlerOptions{Wait: cfg.VerifyWait, Attempts: verify.AttemptLimit{Limit: cfg.Limits.VerificationsPerAgent, Window: cfg.Limits.VerificationWindow}}),
		met:    newMetrics(),
		cors:   cors,
	}
	s.inflight = make(chan struct{}, cfg.MaxInFlight)
	s.bounds = newBoundsMetrics(s.met.reg)
	s.met.reg.MustRegister(depcheck.New("api", map[string]depcheck.Ping{
		"postgres": s.st.Ping, "redis": func(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }}))
	s.writer = newWriter(st, s.bus, s.log, s.met, cfg.MaxBatch)
	s.routes = s.buildRoutes()
	return s, nil
}

// Name names the component in logs.
func (s *Server) Name() string { return "api" }

// Ready reports whether Postgres and Redis answer.
func (s *Server) Ready(ctx context.Context) error {
	if err := s.st.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Gatherer is the server's own metrics registry.
func (s *Server) Gatherer() prometheus.Gatherer { return s.met.reg }

// Handler serves the public /api/* routes (every other path is a JSON 404).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// maintenanceEvery is how often Run checks that Redis still has presence.
const maintenanceEvery = 10 * time.Second

// Run does the background maintenance until ctx ends: it rebuilds the
// presence set from Postgres whenever Redis has lost it (a restart without
// persistence), and deletes idempotency keys past their window. Posting
// does not depend on Run; New starts the writer.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(maintenanceEvery)
	defer t.Stop()
	for {
		if _, err := s.rebuildPresence(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("presence maintenance failed", "err", err)
		}
		pctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		if _, err := s.st.PurgeIdempotencyKeys(pctx); err != nil && ctx.Err() == nil {
			s.log.Warn("could not purge old idempotency keys", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Close commits the posts already queued, then releases Redis and Postgres.
// Call it after the HTTP server has stopped.
func (s *Server) Close() {
	s.writer.close()
	_ = s.rdb.Close()
	s.st.Close()
}
