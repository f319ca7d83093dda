// Package liveroom starts a whole chatr room inside a test: the real API,
// streamer and verifier on a fresh Postgres schema and the test Redis
// (internal/testenv), routed on one base URL as the ingress routes them, with
// the project's fake Moltbook behind the verifier. The room is reached through
// a TCP proxy that can cut every connection at once, the way a network drop
// or a vanished pod does, so clients' resumption is tested for real.
//
// It serves the OpenAPI conformance test (test/openapi), the Go client's
// tests (pkg/client) and the chatr command's (cmd/chatr).
package liveroom

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/components/verifier"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/serve"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// Options shape the room. The zero value is a room with the contract's
// default limits.
type Options struct {
	// Limits replaces the contract's default limits.
	Limits *config.Limits
	// VerifyWait is how long verify/complete waits before answering 202
	// (default: the API's, 10s).
	VerifyWait time.Duration
	// Stream adjusts the streamer's configuration.
	Stream func(*streamer.Config)
	// Log receives the components' logs (default: discarded).
	Log *slog.Logger
}

// Room is a running room.
type Room struct {
	// URL is the room's base URL (through the proxy).
	URL string
	// Direct is the base URL without the proxy.
	Direct string
	// Schema is the room's Postgres schema.
	Schema string
	// Moltbook is the fake Moltbook the verifier asks.
	Moltbook *fakemoltbook.Server

	proxy *proxy
}

// Start runs a room until the test ends.
func Start(t testing.TB, o Options) *Room {
	t.Helper()
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	schema := testenv.Schema(t)
	limits := config.DefaultLimits()
	if o.Limits != nil {
		limits = *o.Limits
	}
	common := config.Common{DatabaseURL: testenv.DatabaseURL(), Schema: schema, RedisURL: testenv.RedisURL(), Migrate: true}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var closers []func()
	stop := func() {
		cancel()
		wg.Wait()
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(what string, err error) {
		stop()
		t.Fatalf("liveroom: %s: %v (Postgres at %s and Redis at %s are needed)", what, err, testenv.DatabaseURL(), testenv.RedisURL())
	}
	run := func(f func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f(ctx) }()
	}

	apiSrv, err := api.New(ctx, api.Config{Common: common, Limits: limits, VerifyWait: o.VerifyWait, DBMaxConns: 4}, log)
	if err != nil {
		fail("starting the API", err)
	}
	closers = append(closers, apiSrv.Close)
	run(apiSrv.Run)

	scfg := streamer.Config{Common: common, Limits: limits, PodName: "liveroom-" + schema, MaxConnections: 1000,
		DrainTime: time.Second, ReportInterval: 200 * time.Millisecond, IPHeartbeat: 200 * time.Millisecond, IPTTL: 2 * time.Second}
	if o.Stream != nil {
		o.Stream(&scfg)
	}
	streamSrv, err := streamer.New(ctx, scfg, log)
	if err != nil {
		fail("starting the streamer", err)
	}
	closers = append(closers, streamSrv.Close)
	run(streamSrv.Run)

	fake := fakemoltbook.New()
	fakeSrv := httptest.NewServer(fake)
	closers = append(closers, fakeSrv.Close)
	var vcfg verifier.Config
	verifier.RegisterFlags(flag.NewFlagSet("verifier", flag.ContinueOnError), &vcfg)
	vcfg.Common = common
	vcfg.MoltbookURL = fakeSrv.URL + "/api/v1"
	vcfg.PollInterval = 200 * time.Millisecond
	vcfg.BackoffBase, vcfg.BackoffMax = 50*time.Millisecond, 500*time.Millisecond
	vcfg.Lease = 5 * time.Second
	vcfg.MoltbookTimeout = 2 * time.Second
	vcfg.WorkerID = "liveroom"
	ver, err := verifier.New(ctx, vcfg, log)
	if err != nil {
		fail("starting the verifier", err)
	}
	closers = append(closers, ver.Close)
	run(ver.Run)

	hs := httptest.NewServer(serve.IngressRoute(apiSrv.Handler(), streamSrv.Handler()))
	// The HTTP server stops first (streams are hijacked: the streamer's
	// Close ends them), then the components, as in production.
	closers = append(closers, func() { streamSrv.Close(); hs.Close() })
	px, err := newProxy(strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		fail("starting the proxy", err)
	}
	closers = append(closers, px.close)
	t.Cleanup(stop)
	return &Room{URL: "http://" + px.addr(), Direct: hs.URL, Schema: schema, Moltbook: fake, proxy: px}
}

// DropConnections cuts every connection through the proxy at once (a
// network drop); new connections work at once.
func (r *Room) DropConnections() int { return r.proxy.drop() }

// proxy is a TCP relay whose connections can all be cut at once.
type proxy struct {
	ln      net.Listener
	backend string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(backend string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, backend: backend, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.backend)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[b] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, b)
		go p.pipe(b, c)
	}
}

// pipe copies one direction; when it ends, both sides are closed.
func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

func (p *proxy) drop() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		_ = c.Close()
		n++
	}
	return n / 2
}

func (p *proxy) close() {
	if err := p.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return
	}
	p.drop()
	p.wg.Wait()
}
