// Command apibench measures how fast the REST API takes posts, against one API
// process started here, in-process, with limits relaxed, on the local Postgres
// and Redis, or against a separate server (-url). Either way it registers its
// own agents through the API.
//
// Two modes:
//
//   - closed loop (the default): -clients concurrent HTTP clients post as fast
//     as they can, each waiting for its answer before the next post. It finds
//     the most the server takes, but a slow answer also delays the posts after
//     it, so its latencies hide queueing (coordinated omission).
//   - open loop (-rate N): posts are sent on a fixed schedule of N per second
//     whatever the answers do, and each latency is measured from the post's
//     intended send time, so time spent waiting for a free connection (the
//     server fell behind) counts. It prints the achieved rate, p50/p90/p99/max
//     and the errors by kind.
//
// A separate server must run with limits no benchmark reaches:
// `apibench -print-server-env` prints them as environment variables for
// `chatrd api`. With -pid (that server's process id, on this machine) the
// server's CPU time per post is read from /proc/<pid>/stat.
//
//	go run ./cmd/apibench -duration 10s -clients 32 -agents 200
//	go run ./cmd/apibench -url http://127.0.0.1:18080 -pid 1234 -rate 3000
//
// hack/bench.d/api-open.sh runs the open loop against a separate `chatrd api`
// pinned to one core, with the load tool on the other.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/serve"
)

func main() {
	var (
		url      = flag.String("url", "", "base URL of a running API with relaxed limits (empty: start one in-process)")
		agents   = flag.Int("agents", 200, "agents registered and posting")
		clients  = flag.Int("clients", 32, "concurrent HTTP clients")
		duration = flag.Duration("duration", 10*time.Second, "measured time")
		warmup   = flag.Duration("warmup", 2*time.Second, "unmeasured time before it")
		dbURL    = flag.String("database-url", envOr("CHATR_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "Postgres for the in-process server")
		redisURL = flag.String("redis-url", envOr("CHATR_REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis for the in-process server")
		batch    = flag.Int("post-batch", 256, "group-commit batch cap of the in-process server")
		conns    = flag.Int("db-max-conns", 12, "Postgres connections of the in-process server")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the measured time (client and in-process server) to this file")
		rate     = flag.Float64("rate", 0, "open loop: posts per second on a fixed schedule (0: closed loop with -clients)")
		workers  = flag.Int("workers", 256, "open loop: most posts in flight (HTTP connections); a post due while all are busy waits, and its wait counts")
		pid      = flag.Int("pid", 0, "process id of the -url server on this machine: report its CPU time per post")
		printEnv = flag.Bool("print-server-env", false, "print the environment a separate chatrd api needs for this benchmark (limits no benchmark reaches) and exit")
	)
	flag.Parse()
	cpuProfile = *cpuprof
	if *printEnv {
		printServerEnv(relaxed())
		return
	}
	if *rate > 0 {
		o := openLoop{url: *url, agents: *agents, rate: *rate, workers: *workers, duration: *duration, warmup: *warmup,
			pid: *pid, dbURL: *dbURL, redisURL: *redisURL, batch: *batch, conns: *conns}
		if err := o.run(); err != nil {
			fmt.Fprintln(os.Stderr, "apibench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*url, *agents, *clients, *duration, *warmup, *dbURL, *redisURL, *batch, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "apibench:", err)
		os.Exit(1)
	}
}

// cpuProfile is the -cpuprofile file.
var cpuProfile string

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// startServer starts an in-process API server on a fresh schema with relaxed
// limits; stop ends it and drops the schema.
func startServer(dbURL, redisURL string, batch, conns int) (srv *api.Server, url, where string, stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	var b [4]byte
	_, _ = rand.Read(b[:])
	schema := "apibench_" + hex.EncodeToString(b[:])
	cfg := api.Config{
		Common: config.Common{DatabaseURL: dbURL, RedisURL: redisURL, Schema: schema, Migrate: true},
		Limits: relaxed(), MaxBatch: batch, DBMaxConns: conns, ConnsPerIP: benchConnsPerIP,
	}
	srv, err = api.New(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		cancel()
		dropRoom(dbURL, redisURL, schema)
		return nil, "", "", nil, err
	}
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve.Run(ctx, serve.Options{Listen: "127.0.0.1:0", Handler: srv.Handler(),
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), OnListen: func(a net.Addr) { addr <- a }}, srv)
	}()
	select {
	case a := <-addr:
		url = "http://" + a.String()
	case err := <-done:
		cancel()
		srv.Close()
		dropRoom(dbURL, redisURL, schema)
		return nil, "", "", nil, err
	}
	stop = func() { cancel(); <-done; srv.Close(); dropRoom(dbURL, redisURL, schema) }
	where = fmt.Sprintf("in-process server (schema %s, post batch ≤ %d, %d Postgres conns)", schema, batch, conns)
	return srv, url, where, stop, nil
}

func run(url string, nAgents, nClients int, duration, warmup time.Duration, dbURL, redisURL string, batch, conns int) error {
	var srv *api.Server
	where := url
	if url == "" {
		var stop func()
		var err error
		srv, url, where, stop, err = startServer(dbURL, redisURL, batch, conns)
		if err != nil {
			return err
		}
		defer stop()
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: nClients, MaxIdleConnsPerHost: nClients,
		MaxConnsPerHost: nClients, IdleConnTimeout: time.Minute}, Timeout: 30 * time.Second}
	keys, err := registerAgents(client, url, nAgents)
	if err != nil {
		return err
	}

	fmt.Printf("apibench: %d agents, %d clients, %s measured after %s warm-up, GOMAXPROCS=%d, against %s\n",
		nAgents, nClients, duration, warmup, runtime.GOMAXPROCS(0), where)
	var measuring atomic.Bool
	var failed, sent atomic.Int64
	lat := make([][]time.Duration, nClients)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < nClients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1<<14)
			for i := 0; ; i++ {
				select {
				case <-stop:
					lat[c] = mine
					return
				default:
				}
				key := keys[(c+i*nClients)%len(keys)]
				body := fmt.Sprintf(`{"content":"bench message %d from client %d"}`, i, c)
				t0 := time.Now()
				err := postOnce(client, url, key, body)
				d := time.Since(t0)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					if failed.Add(1) <= 5 {
						fmt.Fprintln(os.Stderr, "post failed:", err)
					}
					continue
				}
				sent.Add(1)
				mine = append(mine, d)
			}
		}(c)
	}
	time.Sleep(warmup)
	batchCount0, batchSum0 := batchStats(srv)
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	measuring.Store(true)
	start := time.Now()
	time.Sleep(duration)
	measuring.Store(false)
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	elapsed := time.Since(start)
	batchCount1, batchSum1 := batchStats(srv)
	close(stop)
	wg.Wait()

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(p*float64(len(all))))]
	}
	fmt.Printf("posts:      %d ok, %d failed in %.1fs\n", sent.Load(), failed.Load(), elapsed.Seconds())
	fmt.Printf("throughput: %.0f posts/s\n", float64(sent.Load())/elapsed.Seconds())
	fmt.Printf("latency:    p50 %s  p90 %s  p99 %s  max %s\n", ms(pct(.50)), ms(pct(.90)), ms(pct(.99)), ms(pct(1)))
	if n := batchCount1 - batchCount0; n > 0 {
		fmt.Printf("group commit: %.0f transactions/s, %.1f posts per transaction\n", n/elapsed.Seconds(), (batchSum1-batchSum0)/n)
	}
	if failed.Load() > 0 {
		return fmt.Errorf("%d posts failed", failed.Load())
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// relaxed are limits no benchmark reaches; the limiter still runs on every
// request. Short windows keep the sliding logs (one entry per event in the
// window) small.
func relaxed() config.Limits {
	l := config.DefaultLimits()
	l.VerifiedMessages, l.VerifiedWindow = 1<<30, time.Second
	l.UnverifiedMessages, l.UnverifiedWindow = 1<<30, time.Second
	l.RegistrationsPerIP, l.RegistrationWindow = 1<<30, time.Second
	l.RequestsPerIP, l.RequestWindow = 1<<30, time.Second
	return l
}

func registerAgents(c *http.Client, url string, n int) ([]string, error) {
	var b [3]byte
	_, _ = rand.Read(b[:])
	keys := make([]string, 0, n)
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"name":"bench_%s_%d"}`, hex.EncodeToString(b[:]), i)
		res, err := c.Post(url+"/api/register", "application/json", bytes.NewBufferString(body))
		if err != nil {
			return nil, fmt.Errorf("while registering: %w", err)
		}
		var r struct {
			Agent struct{ APIKey string } `json:"agent"`
			Error string                  `json:"error"`
		}
		err = json.NewDecoder(res.Body).Decode(&r)
		res.Body.Close()
		if res.StatusCode == http.StatusTooManyRequests {
			return nil, fmt.Errorf("while registering agent %d of %d: 429 %s: the server runs with the contract's limits; "+
				"start it with the environment `apibench -print-server-env` prints", i+1, n, r.Error)
		}
		if err != nil || r.Agent.APIKey == "" {
			return nil, fmt.Errorf("while registering: %d %s %v", res.StatusCode, r.Error, err)
		}
		keys = append(keys, r.Agent.APIKey)
	}
	return keys, nil
}

func postOnce(c *http.Client, url, key, body string) error {
	req, _ := http.NewRequest("POST", url+"/api/messages", bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return fmt.Errorf("%d %s", res.StatusCode, b)
	}
	return nil
}

// batchStats reads the in-process server's group-commit histogram.
func batchStats(srv *api.Server) (count, sum float64) {
	if srv == nil {
		return 0, 0
	}
	mfs, err := srv.Gatherer().Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() == "chatr_api_post_batch_size" && len(mf.GetMetric()) > 0 {
			var h *dto.Histogram = mf.GetMetric()[0].GetHistogram()
			return float64(h.GetSampleCount()), h.GetSampleSum()
		}
	}
	return 0, 0
}

// dropRoom removes the benchmark's schema and Redis keys.
func dropRoom(dbURL, redisURL, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, dbURL); err == nil {
		_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		_ = conn.Close(ctx)
	}
	if rdb, err := bus.Connect(redisURL); err == nil {
		iter := rdb.Scan(ctx, 0, bus.Key(schema)+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "apibench: while cleaning Redis:", err)
		}
		_ = rdb.Close()
	}
}
