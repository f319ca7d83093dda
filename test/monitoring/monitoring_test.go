package monitoring

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/promql/parser"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/components/verifier"
	"github.com/chatr-ai/chatr/controllers"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/testenv"
)

var chartFiles = filepath.Join("..", "..", "charts", "chatr-operator", "files")

// expressions returns every PromQL expression the chart ships, by where it
// comes from: the alerts' expr and the dashboard panels' targets (Grafana's
// $__rate_interval stands for a range).
func expressions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := os.ReadFile(filepath.Join(chartFiles, "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("prometheus-rules.yaml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	b, err = os.ReadFile(filepath.Join(chartFiles, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ RefID, Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			out["panel "+p.Title+" "+tg.RefID] = strings.ReplaceAll(tg.Expr, "$__rate_interval", "5m")
		}
	}
	return out
}

// metricNames parses expr and returns the metric names it selects.
func metricNames(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names, nil
}

// missing returns the names not in exported, sorted.
func missing(names map[string][]string, exported map[string]bool) []string {
	var out []string
	for n, users := range names {
		if !exported[n] {
			out = append(out, fmt.Sprintf("%s (used by %s)", n, strings.Join(users, ", ")))
		}
	}
	sort.Strings(out)
	return out
}

// TestChartExpressionsUseExportedMetrics: every expression of the chart's
// alerts and dashboard parses, names a metric (no expression is a bare
// constant), and every metric it names is in the /metrics of a real API,
// streamer and verifier (against the real Postgres and Redis, exercised so
// that each series exists: posts, a 429, a stream, a refused stream, a
// verification through a fake Moltbook, a retention pass) or of the
// operator (its autoscaler's series after an evaluation's record).
func TestChartExpressionsUseExportedMetrics(t *testing.T) {
	exprs := expressions(t)
	if len(exprs) < 20 {
		t.Fatalf("only %d expressions found in the chart's files", len(exprs))
	}
	used := map[string][]string{}
	for where, expr := range exprs {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s does not parse: %v\n%s", where, err, expr)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s names no metric: %s", where, expr)
		}
		for _, n := range names {
			if n == "" {
				t.Errorf("%s selects by labels only: %s", where, expr)
			}
			used[n] = append(used[n], where)
		}
	}
	// The check can fail: a name no component exports is reported.
	if m := missing(map[string][]string{"chatr_no_such_metric": {"control"}}, map[string]bool{"chatr_api_requests_total": true}); len(m) != 1 {
		t.Fatalf("the comparison missed an unknown metric: %v", m)
	}

	scrape := startRoom(t)
	testenv.Eventually(t, 60*time.Second, "every metric the chart uses exported", func() error {
		exported := map[string]bool{}
		for _, url := range scrape {
			for n := range scrapeNames(url) {
				exported[n] = true
			}
		}
		if m := missing(used, exported); len(m) > 0 {
			return fmt.Errorf("not exported:\n  %s", strings.Join(m, "\n  "))
		}
		return nil
	})
	t.Logf("%d expressions, %d metrics, all exported", len(exprs), len(used))
}

// scrapeNames GETs a /metrics page and returns the names of its samples.
func scrapeNames(url string) map[string]bool {
	out := map[string]bool{}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			out[line[:i]] = true
		}
	}
	return out
}

// metricsServer serves g as /metrics, as the components' admin port does.
func metricsServer(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s.URL + "/metrics"
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startRoom starts an API, a streamer (capped at one connection), a
// verifier and a fake Moltbook on one fresh schema, exercises them, and
// returns the /metrics URLs of the three and of the operator.
func startRoom(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	schema := testenv.Schema(t)
	common := config.Common{DatabaseURL: testenv.DatabaseURL(), Schema: schema, RedisURL: testenv.RedisURL(), Migrate: true}

	fake := fakemoltbook.New()
	fsrv := httptest.NewServer(fake)
	t.Cleanup(fsrv.Close)

	limits := config.DefaultLimits()
	apiSrv, err := api.New(ctx, api.Config{Common: common, Limits: limits, VerifyWait: 10 * time.Second, DBMaxConns: 4}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	apiHTTP := httptest.NewServer(apiSrv.Handler())
	t.Cleanup(func() { apiHTTP.Close(); apiSrv.Close() })
	go func() { _ = apiSrv.Run(ctx) }()

	st, err := streamer.New(ctx, streamer.Config{Common: common, Limits: limits, PodName: "streamer-0", MaxConnections: 1,
		DrainTime: time.Second, GapWait: 100 * time.Millisecond, ReportInterval: 100 * time.Millisecond,
		IPHeartbeat: 200 * time.Millisecond, IPTTL: time.Second}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	stHTTP := httptest.NewServer(st.Handler())
	stDone := make(chan struct{})
	go func() { defer close(stDone); _ = st.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-stDone; stHTTP.Close(); st.Close() })

	v, err := verifier.New(ctx, verifier.Config{Common: common, MoltbookURL: fsrv.URL + "/api/v1", MoltbookRPM: 6000,
		MoltbookTimeout: 2 * time.Second, MaxAttempts: 4, PostAttempts: 2, Lease: 4 * time.Second,
		PollInterval: 200 * time.Millisecond, Concurrency: 1, BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		RetentionMaxMessages: 100, RetentionInterval: 100 * time.Millisecond, RetentionBatch: 100}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	vDone := make(chan struct{})
	go func() { defer close(vDone); _ = v.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-vDone; v.Close() })

	testenv.Eventually(t, 30*time.Second, "the streamer ready", func() error { return st.Ready(ctx) })

	// One stream holds the streamer's only slot; a second is refused (pod_full).
	sctx, scancel := context.WithCancel(ctx)
	t.Cleanup(scancel)
	req, _ := http.NewRequestWithContext(sctx, "GET", stHTTP.URL+"/api/stream", nil)
	first, err := http.DefaultClient.Do(req)
	if err != nil || first.StatusCode != 200 {
		t.Fatalf("first stream: %v %v", err, first)
	}
	t.Cleanup(func() { first.Body.Close() })
	go func() { _, _ = io.Copy(io.Discard, first.Body) }()
	testenv.Eventually(t, 20*time.Second, "a second stream refused", func() error {
		resp, err := http.Get(stHTTP.URL + "/api/stream")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("second stream: %s", resp.Status)
		}
		return nil
	})

	call := func(method, path, key, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, apiHTTP.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	register := func(name string) string {
		code, out := call("POST", "/api/register", "", `{"name":"`+name+`"}`)
		if code != 200 {
			t.Fatalf("register %s: %d %v", name, code, out)
		}
		return out["agent"].(map[string]any)["apiKey"].(string)
	}
	// An unverified agent: one post, then its limit (429).
	quietKey := register("quiet_one")
	if code, out := call("POST", "/api/messages", quietKey, `{"content":"hello"}`); code != 200 {
		t.Fatalf("post: %d %v", code, out)
	}
	if code, _ := call("POST", "/api/messages", quietKey, `{"content":"again"}`); code != 429 {
		t.Fatalf("second unverified post: %d, want 429", code)
	}
	// A verification through the fake Moltbook: the verifier calls it.
	key := register("lobster")
	code, out := call("POST", "/api/verify/start", key, `{"moltbookName":"Clawd"}`)
	if code != 200 {
		t.Fatalf("verify/start: %d %v", code, out)
	}
	fake.Set(fakemoltbook.Verified("Clawd", "someone", out["code"].(string)))
	if code, out := call("POST", "/api/verify/complete", key, `{"moltbookName":"Clawd"}`); code != 200 || out["verified"] != true {
		t.Fatalf("verify/complete: %d %v", code, out)
	}

	controllers.ObserveAutoscaler("chat", "lobby", 3, true, "TooManyReplicas")
	return []string{metricsServer(t, apiSrv.Gatherer()), metricsServer(t, st.Gatherer()), metricsServer(t, v.Gatherer()),
		metricsServer(t, crmetrics.Registry)}
}
