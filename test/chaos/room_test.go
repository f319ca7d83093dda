package chaos

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// part is one server of the room with its own way to Postgres and Redis.
type part struct {
	name    string
	url     string
	pg, rd  *testenv.FaultProxy
	hs      *httptest.Server
	stop    func()
	ready   func(context.Context) error
	stopped bool
}

// room is two APIs and two streamers on one schema.
type room struct {
	schema     string
	dbURL      string  // the Postgres every part uses (not through a proxy when set by the scenario)
	pair       *pgPair // the primary and replica behind dbURL, for the failover
	redisURL   string  // the Redis every part uses (not through a proxy when set by the scenario)
	sentinel   *testenv.RedisSentinel
	cluster    *testenv.RedisCluster
	apis       []*part
	streamers  []*part
	requestTTL time.Duration
}

func quiet() *slog.Logger {
	if os.Getenv("CHATR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// viaProxy returns raw (a URL) with its host replaced by the proxy's.
func viaProxy(t *testing.T, raw string, p *testenv.FaultProxy) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr()
	return u.String()
}

func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// newRoom starts the room. Limits are lifted so that the workload, all from
// 127.0.0.1, is never rate limited: the suite is about faults.
func newRoom(t *testing.T) *room { return newRoomOn(t, "", "") }

// newRoomOn is newRoom on the Postgres at dbURL and the Redis at redisURL
// (every part connects to them directly, with no proxy), or on the test
// Postgres and Redis through proxies where "".
func newRoomOn(t *testing.T, dbURL, redisURL string) *room {
	t.Helper()
	r := &room{schema: testenv.Schema(t), requestTTL: 2 * time.Second, dbURL: dbURL, redisURL: redisURL}
	direct := dbURL != ""
	if !direct {
		r.dbURL = testenv.DatabaseURL()
	}
	directRedis := redisURL != ""
	r.store(t) // migrate once, before the parts start
	limits := config.DefaultLimits()
	limits.VerifiedMessages = 1_000_000
	limits.RequestsPerIP = 1_000_000
	limits.StreamsPerIP = 10_000
	pgHost := hostOf(t, r.dbURL)
	common := func(p *part) config.Common {
		db := r.dbURL
		if !direct {
			p.pg = testenv.NewFaultProxy(t, pgHost)
			db = viaProxy(t, r.dbURL, p.pg)
		}
		rdb := r.redisURL
		if !directRedis {
			p.rd = testenv.NewFaultProxy(t, hostOf(t, testenv.RedisURL()))
			rdb = viaProxy(t, testenv.RedisURL(), p.rd)
		}
		return config.Common{DatabaseURL: db, Schema: r.schema,
			RedisURL: rdb, DBConnectTimeout: time.Second,
			DBStatementTimeout: 2 * time.Second}
	}
	for _, name := range []string{"api-a", "api-b"} {
		p := &part{name: name}
		cfg := api.Config{Common: common(p), Limits: limits, DBMaxConns: 4, RequestTimeout: r.requestTTL,
			VerifyWait: time.Second}
		srv, err := api.New(context.Background(), cfg, quiet().With("part", name))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Run(ctx) }()
		p.hs = httptest.NewServer(srv.Handler())
		p.url = p.hs.URL
		p.ready = srv.Ready
		p.stop = func() { p.hs.Close(); cancel(); <-done; srv.Close() }
		t.Cleanup(func() { r.stopPart(p) })
		r.apis = append(r.apis, p)
	}
	for _, name := range []string{"streamer-a", "streamer-b"} {
		p := &part{name: name}
		cfg := streamer.Config{Common: common(p), Limits: limits, PodName: name, MaxConnections: 10_000,
			DrainTime: time.Second, GapWait: 100 * time.Millisecond, ReportInterval: 200 * time.Millisecond,
			IPHeartbeat: 200 * time.Millisecond, IPTTL: 2 * time.Second, PingInterval: time.Second}
		ctx, cancel := context.WithCancel(context.Background())
		srv, err := streamer.New(ctx, cfg, quiet().With("part", name))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Run(ctx) }()
		p.hs = httptest.NewServer(srv.Handler())
		p.url = p.hs.URL
		p.ready = srv.Ready
		p.stop = func() { p.hs.CloseClientConnections(); p.hs.Close(); cancel(); <-done; srv.Close() }
		t.Cleanup(func() { r.stopPart(p) })
		r.streamers = append(r.streamers, p)
	}
	return r
}

// store opens the room's schema on its Postgres (migrated), closed when the
// test ends.
func (r *room) store(t *testing.T) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{URL: r.dbURL, Schema: r.schema, Migrate: true})
	if err != nil {
		t.Fatalf("Postgres at %s: %v", config.Redact(r.dbURL), err)
	}
	t.Cleanup(st.Close)
	return st
}

// stopPart stops p at once, as a crash does to its clients (their
// connections are cut), once.
func (r *room) stopPart(p *part) {
	if p.stopped {
		return
	}
	p.stopped = true
	p.stop()
}

// parts are every server of the room.
func (r *room) parts() []*part { return append(append([]*part(nil), r.apis...), r.streamers...) }

func (r *room) streamerURLs() []string {
	var out []string
	for _, p := range r.streamers {
		out = append(out, p.url)
	}
	return out
}
