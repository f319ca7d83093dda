// Package streamer is chatr's stream fleet member: it fans the room's
// messages out to spectators and agents over Server-Sent Events
// (GET /api/stream) and WebSocket (GET /api/ws), and serves the spectator
// page at /.
//
// The data path (docs/design.md, promises 3–6): each pod subscribes to the room's
// Redis channel and keeps the recent messages in an in-memory ring warmed
// from Postgres at start, so no connection ever costs a Postgres query unless
// it resumes from further back than the ring. The feed delivers ids strictly
// in sequence and fills gaps from Postgres. A sharded hub encodes each message
// once and writes the same bytes to every client with non-blocking writes,
// from a handful of writer goroutines that own the hijacked connections: an
// idle stream has no goroutine, and a slow client only fills its own bounded
// queue (the hub's files and how data flows through them: the top of
// hub.go). Limits (per IP across the fleet, per pod) and the connection count
// the operator scales on live in Redis.
package streamer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/clientip"
	"github.com/chatr-ai/chatr/internal/connreport"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/presence"
	"github.com/chatr-ai/chatr/internal/store"
)

// Server is one streamer pod.
type Server struct {
	cfg  Config
	log  *slog.Logger
	st   *store.Store
	rdb  redis.UniversalClient
	bus  *bus.Bus
	ps   *redis.PubSub
	pres *presence.Presence
	ips  *clientip.Resolver
	met  *metrics
	hub  *hub
	feed *feed
	lim  *limiter
	ws   websocket.Upgrader

	// conns counts open streams (the per-pod cap and the autoscaler's figure).
	conns atomic.Int64
	// spectators counts the open streams that asked for the room event.
	spectators atomic.Int64
	// agents is the stats loop's cache for the room event (spectator.go).
	agents   agentCache
	draining atomic.Bool
	warm     atomic.Bool
	// pgResumes bounds concurrent resumes served from Postgres.
	pgResumes chan struct{}
	// roomLast is the room's last id as its counter row last said (resume.go).
	roomLast   atomic.Int64
	beyondHead prometheus.Counter
	closeOnce  sync.Once
}

// New connects to Postgres and Redis, subscribes to the room's channel and
// warms the ring from Postgres, in that order, so that no message published
// meanwhile is missed. The hub's writers start at once; Run starts the rest.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	ips, err := clientip.Parse(cfg.Common.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("while reading trusted proxies: %w", err)
	}
	s := &Server{cfg: cfg, log: log.With("component", "streamer", "pod", cfg.PodName), ips: ips, met: newMetrics(),
		pgResumes: make(chan struct{}, 4)}
	s.beyondHead = newBeyondHeadCounter(s.met.reg)
	s.met.register(s, cfg.MaxConnections)
	s.ws = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// The stream is public and read-only: any page may show it.
		CheckOrigin: func(*http.Request) bool { return true },
		// The hub writes frames itself; gorilla never needs a write buffer.
		WriteBufferPool: &sync.Pool{},
	}
	s.st, err = store.Open(ctx, store.Options{URL: cfg.Common.DatabaseURL, Schema: cfg.Common.Schema, Migrate: cfg.Common.Migrate,
		ConnectTimeout: cfg.Common.DBConnectTimeout, StatementTimeout: cfg.Common.DBStatementTimeout})
	if err != nil {
		return nil, err
	}
	if s.rdb, err = bus.Connect(cfg.Common.RedisURL); err != nil {
		s.st.Close()
		return nil, err
	}
	s.pres = presence.New(s.rdb, cfg.Common.Schema, cfg.Limits.PresenceTimeout)
	s.bus = bus.New(s.rdb, cfg.Common.Schema)
	if s.ps, err = s.bus.Subscribe(ctx); err != nil {
		s.closeClients()
		return nil, err
	}
	shards := cfg.Shards
	if shards <= 0 {
		// One writer per CPU: more only adds scheduling (measured: 2 shards
		// halve the p99 of 8 on two cores).
		shards = runtime.GOMAXPROCS(0)
	}
	s.hub = newHub(s, shards, cfg.RingSize)
	s.feed = newFeed(s)
	s.lim = newLimiter(s)
	if err := s.warmUp(ctx); err != nil {
		s.closeClients()
		return nil, err
	}
	s.hub.start()
	return s, nil
}

// warmUp loads the newest messages into the ring and the first stats.
func (s *Server) warmUp(ctx context.Context) error {
	msgs, err := s.st.ListMessages(ctx, s.cfg.RingSize, 0, 0)
	if err != nil {
		return fmt.Errorf("while warming the message ring: %w", err)
	}
	now := time.Now()
	for _, m := range msgs {
		js, err := encodeMessage(m)
		if err != nil {
			return err
		}
		s.hub.ring.push(entry{id: m.ID, json: js, f: messageFrame(m.ID, js, now)})
		s.feed.last = m.ID
	}
	s.hub.ring.partial = len(msgs) >= s.cfg.RingSize
	if err := s.refreshStats(ctx, false); err != nil {
		return err
	}
	s.warm.Store(true)
	return nil
}

// Name names the component in logs.
func (s *Server) Name() string { return "streamer" }

// Ready reports whether the pod can take streams: warmed, not draining, and
// Redis answers (without it there is no fan-out). Postgres is not required:
// streams go on from memory and Redis while it is away.
func (s *Server) Ready(ctx context.Context) error {
	if !s.warm.Load() {
		return errors.New("not warmed up")
	}
	if s.draining.Load() {
		return errors.New("draining")
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Gatherer exposes the streamer's metrics.
func (s *Server) Gatherer() prometheus.Gatherer { return s.met.reg }

// Handler serves the stream endpoints and the spectator page.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/stream", s.serveSSE)
	mux.HandleFunc("GET /api/ws", s.serveWS)
	mux.Handle("GET /", pageHandler(&guide{limits: s.cfg.Limits, public: s.cfg.PublicURL, ips: s.ips}))
	return mux
}

// Connections returns the number of open streams on this pod.
func (s *Server) Connections() int64 { return s.conns.Load() }

// Run runs the feed, the stats and report loops and the limiter until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	loops := []func(context.Context){
		func(ctx context.Context) { s.feed.receive(ctx, s.bus, s.ps) },
		s.feed.run,
		s.lim.run,
		s.statsLoop,
		s.reportLoop,
		s.moderationLoop,
	}
	for _, loop := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// statsRefresh is how often the stats a new stream receives on connect are
// refreshed between two broadcasts, so that a newcomer never sees figures
// much older than this; it is also how often the spectators' room event is
// checked for changes.
const statsRefresh = time.Second

// statsLoop sends the stats event every StatsInterval, and refreshes the
// figures new streams get on connect more often. The figures come from the
// room's counter row and the presence set: one cheap read per pod per
// refresh, never a COUNT(*). The counter's last id also reveals messages the
// bus lost with nothing after them to show the gap.
func (s *Server) statsLoop(ctx context.Context) {
	every := min(statsRefresh, s.cfg.StatsInterval)
	t := time.NewTicker(every)
	defer t.Stop()
	next := time.Now().Add(s.cfg.StatsInterval)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			broadcast := !now.Before(next.Add(-every / 2))
			if broadcast {
				if next = next.Add(s.cfg.StatsInterval); next.Before(now) {
					next = now.Add(s.cfg.StatsInterval)
				}
			}
			if err := s.refreshStats(ctx, broadcast); err != nil && ctx.Err() == nil {
				s.log.Warn("could not refresh stats", "err", err)
			}
		}
	}
}

func (s *Server) refreshStats(ctx context.Context, broadcast bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := s.st.Counters(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	online, err := s.pres.Count(ctx, now)
	if err != nil {
		s.met.redisErrors.Inc()
		online = 0
	}
	stats := model.Stats{TotalAgents: c.TotalAgents, OnlineAgents: online, TotalMessages: c.TotalMessages}
	if s.spectators.Load() > 0 {
		stats = s.refreshRoom(ctx, stats, now)
	}
	s.hub.setStats(statsFrame(stats), broadcast)
	s.noteRoomLast(c.LastMessageID)
	if s.feed != nil {
		s.feed.noteLast(c.LastMessageID)
	}
	return nil
}

// reportLoop writes this pod's live connection count for the operator's
// autoscaler (docs/runtime.md): a decimal integer under
// chatr:{schema}:streamer:conns:<pod>, every ReportInterval, with ReportTTL.
func (s *Server) reportLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ReportInterval)
	defer t.Stop()
	for {
		s.report(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) report(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := connreport.Report(ctx, s.rdb, s.cfg.Common.Schema, s.cfg.PodName, s.conns.Load(), s.cfg.ReportTTL); err != nil && ctx.Err() == nil {
		s.met.redisErrors.Inc()
		s.log.Warn("could not report the connection count", "err", err)
	}
}

// drainTick is how often Drain closes its next batch of streams.
const drainTick = 100 * time.Millisecond

// Drain stops taking streams and closes the open ones gradually over
// DrainTime (or before ctx's deadline), each with a jittered retry hint, so
// that clients resume on other pods without a thundering herd. It returns
// when every stream is closed.
func (s *Server) Drain(ctx context.Context) error {
	s.draining.Store(true)
	end := time.Now().Add(s.cfg.DrainTime)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-time.Second).Before(end) {
		end = dl.Add(-time.Second)
	}
	s.log.Info("draining", "connections", s.conns.Load(), "over", time.Until(end).Round(time.Millisecond))
	t := time.NewTicker(drainTick)
	defer t.Stop()
	acc := 0.0 // streams owed but not yet asked for (the fractional part)
	for tick := 0; ; tick++ {
		n := s.conns.Load()
		if n == 0 {
			s.report(context.WithoutCancel(ctx))
			s.log.Info("drained")
			return nil
		}
		// Close the share of the open streams that keeps the pace even until
		// the end: tick/left of them now, all of them at the last tick.
		left := time.Until(end)
		if left <= drainTick {
			for _, sh := range s.hub.shards {
				sh.post(event{kind: evDrain, n: -1})
			}
		} else {
			acc += float64(n) * float64(drainTick) / float64(left)
			k := int(acc)
			acc -= float64(k)
			s.hub.drainSome(k, tick)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("while draining %d streams: %w", s.conns.Load(), ctx.Err())
		}
	}
}

// Close closes every stream and releases the pod's connections, Redis
// entries and pools. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.draining.Store(true)
		s.hub.stopHub()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.lim.forget(ctx)
		_ = connreport.Clear(ctx, s.rdb, s.cfg.Common.Schema, s.cfg.PodName)
		s.closeClients()
	})
}

func (s *Server) closeClients() {
	if s.ps != nil {
		_ = s.ps.Close()
	}
	_ = s.rdb.Close()
	s.st.Close()
}

// closed accounts for a stream that ended.
func (s *Server) closed(c *conn, reason string) {
	s.conns.Add(-1)
	if c.spectator {
		s.spectators.Add(-1)
	}
	s.met.connections.WithLabelValues(c.t.String()).Dec()
	s.met.disconnects.WithLabelValues(reason).Inc()
	if c.ip.IsValid() {
		s.lim.release(c.ip)
	}
}
