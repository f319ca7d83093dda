package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatr-ai/chatr/internal/testenv"
)

// comp is a component whose readiness and drain the test controls.
type comp struct {
	ready    atomic.Pointer[error]
	draining chan struct{}
	release  chan struct{}
	ran      atomic.Bool
	reg      *prometheus.Registry
}

func newComp() *comp {
	c := &comp{draining: make(chan struct{}), release: make(chan struct{}), reg: prometheus.NewRegistry()}
	c.setReady(errors.New("warming up"))
	c.reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "test_component_total", Help: "x"}))
	return c
}

func (c *comp) Name() string                    { return "test" }
func (c *comp) Ready(context.Context) error     { return *c.ready.Load() }
func (c *comp) setReady(err error)              { c.ready.Store(&err) }
func (c *comp) Gatherer() prometheus.Gatherer   { return c.reg }
func (c *comp) Run(ctx context.Context) error   { c.ran.Store(true); <-ctx.Done(); return ctx.Err() }
func (c *comp) Drain(ctx context.Context) error { close(c.draining); <-c.release; return nil }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Readiness follows the components, fails at once when the process is asked
// to stop (while the drain is still going on), and the public handler keeps
// serving until the drain is over.
func TestRunLifecycle(t *testing.T) {
	c := newComp()
	ctx, stop := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Listen:   "127.0.0.1:0",
			Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "public") }),
			OnListen: func(a net.Addr) { addrc <- a },
		}, c)
	}()
	base := "http://" + (<-addrc).String()

	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "warming up") {
		t.Fatalf("readyz before ready: %d %s", code, body)
	}
	c.setReady(nil)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz when ready: %d", code)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "test_component_total") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics miss the component's or the runtime's series")
	}
	if _, body := get(t, base+"/anything"); body != "public" {
		t.Fatalf("public handler: %q", body)
	}
	if !c.ran.Load() {
		t.Fatal("Run was not started")
	}

	stop()
	select {
	case <-c.draining:
	case <-time.After(5 * time.Second):
		t.Fatal("Drain was not called")
	}
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Fatalf("readyz while draining: %d, want 503", code)
	}
	if _, body := get(t, base+"/anything"); body != "public" {
		t.Fatalf("public handler stopped before the drain ended: %q", body)
	}
	close(c.release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("still serving after Run returned")
	}
}

// A separate admin address keeps /metrics and /readyz off the public one.
func TestAdminListenSeparates(t *testing.T) {
	c := newComp()
	c.setReady(nil)
	adminAddr := testenv.FreeAddr(t) // Run listens on it itself
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	addrc := make(chan net.Addr, 1)
	go func() {
		_ = Run(ctx, Options{Listen: "127.0.0.1:0", AdminListen: adminAddr, OnListen: func(a net.Addr) { addrc <- a }}, c)
	}()
	base := "http://" + (<-addrc).String()
	if code, _ := get(t, base+"/metrics"); code != 404 {
		t.Fatalf("public /metrics: %d, want 404", code)
	}
	testenv.Eventually(t, 10*time.Second, "the admin address serving", func() error {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return testenv.StopTrying(fmt.Errorf("admin readyz: %d", resp.StatusCode))
		}
		return nil
	})
	close(c.release)
}
