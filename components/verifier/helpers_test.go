package verifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/components/verifier"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// room is a whole verification setup on a fresh schema: the real API server,
// a fake Moltbook, and a store for looking at rows. Verifiers are started
// separately (startVerifier) so tests decide how many and when.
type room struct {
	schema  string
	fake    *fakemoltbook.Server
	fakeURL string
	api     *httptest.Server
	st      *store.Store
}

func quietLog() *slog.Logger {
	if os.Getenv("CHATR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newRoom(t *testing.T, verifyWait time.Duration) *room {
	t.Helper()
	schema := testenv.Schema(t)
	fake := fakemoltbook.New()
	fsrv := httptest.NewServer(fake)
	t.Cleanup(fsrv.Close)
	limits := config.DefaultLimits()
	// The API's per-IP limits are the API's tests' business; every request
	// here comes from one address.
	limits.RegistrationsPerIP, limits.RequestsPerIP = 10000, 100000
	srv, err := api.New(context.Background(), api.Config{
		Common:     config.Common{DatabaseURL: testenv.DatabaseURL(), Schema: schema, RedisURL: testenv.RedisURL(), Migrate: true},
		Limits:     limits,
		VerifyWait: verifyWait,
		DBMaxConns: 8,
	}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return &room{schema: schema, fake: fake, fakeURL: fsrv.URL + "/api/v1", api: ts, st: testenv.StoreFor(t, schema)}
}

// testConfig is a verifier configuration with every duration short.
func testConfig(schema, moltbookURL string) verifier.Config {
	return verifier.Config{
		Common:          config.Common{DatabaseURL: testenv.DatabaseURL(), Schema: schema, Migrate: true, LogLevel: "info"},
		MoltbookURL:     moltbookURL,
		MoltbookRPM:     6000,
		MoltbookTimeout: 2 * time.Second,
		MaxAttempts:     4,
		PostAttempts:    2,
		Lease:           4 * time.Second,
		PollInterval:    200 * time.Millisecond,
		Concurrency:     2,
		BackoffBase:     50 * time.Millisecond,
		BackoffMax:      200 * time.Millisecond,
	}
}

// startVerifier runs a verifier replica until the returned stop is called
// (or the test ends). stop waits for Run to return.
func startVerifier(t *testing.T, cfg verifier.Config) (*verifier.Verifier, func()) {
	t.Helper()
	v, err := verifier.New(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := v.Run(ctx); err != nil {
			t.Errorf("verifier run: %v", err)
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		v.Close()
	}
	t.Cleanup(stop)
	return v, stop
}

// resp is a decoded answer.
type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r resp) str(k string) string { s, _ := r.body[k].(string); return s }

// call sends one request and checks the envelope every answer must have.
func (rm *room) call(t *testing.T, method, path, key, body string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, rm.api.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := rm.api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: %d, body is not JSON: %s", method, path, res.StatusCode, raw)
	}
	if r.status >= 400 && (r.body["success"] != false || r.str("error") == "") {
		t.Fatalf("%s %s: %d without the error envelope: %s", method, path, r.status, raw)
	}
	if r.status < 400 && r.body["success"] != true {
		t.Fatalf("%s %s: %d without success:true: %s", method, path, r.status, raw)
	}
	return r
}

func want(t *testing.T, r resp, status int, errMsg string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if errMsg != "" && r.str("error") != errMsg {
		t.Fatalf("error %q, want %q", r.str("error"), errMsg)
	}
}

type agentKey struct{ id, name, key string }

func (rm *room) register(t *testing.T, name string) agentKey {
	t.Helper()
	r := rm.call(t, "POST", "/api/register", "", `{"name":"`+name+`"}`)
	want(t, r, 200, "")
	ag := r.body["agent"].(map[string]any)
	return agentKey{id: ag["id"].(string), name: ag["name"].(string), key: ag["apiKey"].(string)}
}

// start calls verify/start and returns the code.
func (rm *room) start(t *testing.T, a agentKey, moltbookName string) string {
	t.Helper()
	r := rm.call(t, "POST", "/api/verify/start", a.key, `{"moltbookName":"`+moltbookName+`"}`)
	want(t, r, 200, "")
	return r.str("code")
}

// completeFinal calls verify/complete and, if it answers 202, follows the
// job with GET /api/verify/status until the answer is final. pending tells
// whether a 202 came first.
func (rm *room) completeFinal(t *testing.T, a agentKey, moltbookName string) (final resp, pending bool) {
	t.Helper()
	r := rm.call(t, "POST", "/api/verify/complete", a.key, `{"moltbookName":"`+moltbookName+`"}`)
	if r.status != http.StatusAccepted {
		return r, false
	}
	checkPending(t, r)
	testenv.Eventually(t, 30*time.Second, "verification of "+moltbookName, func() error {
		r = rm.call(t, "GET", "/api/verify/status", a.key, "")
		if r.body["pending"] == true {
			return fmt.Errorf("still pending: %s", r.raw)
		}
		return nil
	})
	return r, true
}

// checkPending checks the shape of a pending answer.
func checkPending(t *testing.T, r resp) {
	t.Helper()
	ra, _ := r.body["retryAfter"].(float64)
	switch {
	case r.body["pending"] != true, r.str("status") == "", ra < 1:
		t.Fatalf("pending answer malformed: %s", r.raw)
	case r.header.Get("Retry-After") == "":
		t.Fatalf("pending answer without Retry-After: %s", r.raw)
	}
}
