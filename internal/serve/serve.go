// Package serve runs a component's HTTP servers the same way for every
// component: the public listener, an optional admin listener for /healthz,
// /readyz and /metrics, background loops, and an orderly stop on SIGTERM —
// readiness fails at once, drainers get their drain time, then the servers
// shut down.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatr-ai/chatr/internal/config"
)

// Component is what a chatr component offers to be served.
type Component interface {
	// Name names the component in logs.
	Name() string
	// Ready reports whether the component can serve (its dependencies answer).
	Ready(ctx context.Context) error
	// Gatherer holds the component's own metrics (each component has its
	// own registry, so several can live in one process).
	Gatherer() prometheus.Gatherer
}

// Runner is a component with background loops; Run returns when ctx ends.
type Runner interface {
	Run(ctx context.Context) error
}

// Drainer is a component that needs time to let its clients go (the
// streamer). Drain is called once the process is asked to stop, with
// readiness already failing; it returns when done or when ctx ends.
type Drainer interface {
	Drain(ctx context.Context) error
}

// Options configure Run.
type Options struct {
	// Listen is the public address; Handler serves it. Listener, if set,
	// is used instead of listening on Listen (the caller bound it already).
	Listen   string
	Listener net.Listener
	Handler  http.Handler
	// AdminListen, when set, serves /healthz, /readyz and /metrics apart from
	// the public address; otherwise they are served on Listen too.
	AdminListen string
	// DrainTimeout bounds Drain; ShutdownTimeout bounds the HTTP shutdown.
	DrainTimeout, ShutdownTimeout time.Duration
	Log                           *slog.Logger
	// OnListen, if set, is called with the bound public address (tests, :0).
	OnListen func(addr net.Addr)

	// ReadTimeout bounds reading one request, headers and body (zero:
	// config.DefaultReadTimeout); IdleTimeout closes idle keep-alive
	// connections (zero: config.DefaultIdleTimeout). A handler that takes
	// its connection over (the streamer's Hijack) must clear the deadline
	// ReadTimeout has set on it.
	ReadTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's header (zero: DefaultMaxHeaderBytes);
	// a bigger one is answered 431.
	MaxHeaderBytes int
	// MaxConnsPerIP caps the open public connections of one peer address
	// (0: no cap); the ones beyond get 429 and are closed. ExemptPeer
	// exempts peers (trusted proxies, which carry many clients).
	MaxConnsPerIP int
	ExemptPeer    func(netip.Addr) bool
	// OnConnRefused, if set, is told of each connection refused by the cap.
	OnConnRefused func(netip.Addr)

	// Extra are more listeners, each with its own handler (the API's
	// moderation API): served and stopped with the others, bounded by the
	// same read and idle timeouts, without the per-peer cap.
	Extra []Extra
}

// Extra is a listener of its own: Handler served on Listen (or on
// Listener, when the caller bound it already). One with neither is skipped.
type Extra struct {
	Name     string
	Listen   string
	Listener net.Listener
	Handler  http.Handler
}

// DefaultMaxHeaderBytes is the largest request header served: ample for
// any real client (a bearer key and a few cookies), far below the 1 MiB
// net/http would otherwise read.
const DefaultMaxHeaderBytes = 64 << 10

// readHeaderTimeout bounds the header alone, within ReadTimeout.
const readHeaderTimeout = 5 * time.Second

// NewServer is the http.Server every component serves with: every phase of
// a connection bounded in time and size (docs/runtime.md, "Time bounds").
// There is no WriteTimeout: a response's time is bounded by its handler
// (the API's request deadline; the streamer's per-write deadlines).
func NewServer(h http.Handler, o Options) *http.Server {
	read := o.ReadTimeout
	if read == 0 {
		read = config.DefaultReadTimeout
	}
	idle := o.IdleTimeout
	if idle == 0 {
		idle = config.DefaultIdleTimeout
	}
	maxHeader := o.MaxHeaderBytes
	if maxHeader == 0 {
		maxHeader = DefaultMaxHeaderBytes
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(readHeaderTimeout, read),
		ReadTimeout:       read,
		IdleTimeout:       idle,
		MaxHeaderBytes:    maxHeader,
	}
}

// Listener applies Options' per-peer connection cap to ln (ln itself when
// there is none).
func Listener(ln net.Listener, o Options) net.Listener {
	if o.MaxConnsPerIP <= 0 {
		return ln
	}
	return newConnLimiter(ln, o.MaxConnsPerIP, o.ExemptPeer, o.OnConnRefused)
}

// Run serves until ctx ends (the caller ties ctx to SIGTERM/SIGINT), then
// stops in order. It returns the first error that stopped it.
func Run(ctx context.Context, o Options, comps ...Component) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = time.Minute
	}
	var stopping atomic.Bool
	admin := AdminMux(comps, &stopping)

	public := o.Handler
	if public == nil {
		public = http.NotFoundHandler()
	}
	if o.AdminListen == "" {
		public = withAdmin(admin, public)
	}

	ln := o.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", o.Listen); err != nil {
			return fmt.Errorf("while listening on %s: %w", o.Listen, err)
		}
	}
	if o.OnListen != nil {
		o.OnListen(ln.Addr())
	}
	servers := []*http.Server{NewServer(public, o)}
	listeners := []net.Listener{Listener(ln, o)}
	if o.AdminListen != "" {
		aln, err := net.Listen("tcp", o.AdminListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("while listening on %s: %w", o.AdminListen, err)
		}
		servers = append(servers, NewServer(admin, Options{ReadTimeout: o.ReadTimeout, IdleTimeout: o.IdleTimeout}))
		listeners = append(listeners, aln)
	}
	for _, x := range o.Extra {
		xln := x.Listener
		if xln == nil {
			if x.Listen == "" {
				continue
			}
			var err error
			if xln, err = net.Listen("tcp", x.Listen); err != nil {
				for _, l := range listeners {
					l.Close()
				}
				return fmt.Errorf("while listening on %s (%s): %w", x.Listen, x.Name, err)
			}
		}
		log.Info("serving", x.Name, xln.Addr().String())
		servers = append(servers, NewServer(x.Handler, Options{ReadTimeout: o.ReadTimeout, IdleTimeout: o.IdleTimeout}))
		listeners = append(listeners, xln)
	}

	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	errc := make(chan error, len(comps)+len(servers))
	var wg sync.WaitGroup
	for _, c := range comps {
		if r, ok := c.(Runner); ok {
			wg.Add(1)
			go func(c Component, r Runner) {
				defer wg.Done()
				if err := r.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
					errc <- fmt.Errorf("%s: %w", c.Name(), err)
				}
			}(c, r)
		}
	}
	for i, srv := range servers {
		go func(srv *http.Server, ln net.Listener) {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(srv, listeners[i])
	}
	log.Info("serving", "listen", ln.Addr().String(), "admin", o.AdminListen)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		log.Error("stopping after a failure", "err", runErr)
	}

	// Readiness fails at once, so load balancers stop sending new clients.
	stopping.Store(true)
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), o.DrainTimeout)
	var dwg sync.WaitGroup
	for _, c := range comps {
		if d, ok := c.(Drainer); ok {
			dwg.Add(1)
			go func(c Component, d Drainer) {
				defer dwg.Done()
				log.Info("draining", "component", c.Name())
				if err := d.Drain(drainCtx); err != nil {
					log.Warn("drain ended early", "component", c.Name(), "err", err)
				}
			}(c, d)
		}
	}
	dwg.Wait()
	cancelDrain()

	shutCtx, cancelShut := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancelShut()
	for _, srv := range servers {
		if err := srv.Shutdown(shutCtx); err != nil {
			_ = srv.Close()
		}
	}
	cancelRun()
	wg.Wait()
	log.Info("stopped")
	return runErr
}

// AdminMux serves /healthz (the process is alive), /readyz (every component
// is ready and the process is not stopping) and /metrics (all components'
// registries plus the Go runtime's).
func AdminMux(comps []Component, stopping *atomic.Bool) *http.ServeMux {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gs := prometheus.Gatherers{reg}
	for _, c := range comps {
		gs = append(gs, c.Gatherer())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"success":true,"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if stopping != nil && stopping.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"success":false,"error":"shutting down"}` + "\n"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		for _, c := range comps {
			if err := c.Ready(ctx); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, `{"success":false,"error":%q}`+"\n", c.Name()+" not ready: "+err.Error())
				return
			}
		}
		_, _ = w.Write([]byte(`{"success":true,"status":"ready"}` + "\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gs, promhttp.HandlerOpts{}))
	return mux
}

// withAdmin serves the admin paths from admin and everything else from next.
func withAdmin(admin *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics":
			admin.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}
