package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/serve"
	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// 50 concurrent posters through two API servers: ids are dense, unique and
// strictly increasing in commit order, and what each server publishes on
// Redis is in id order and byte-for-byte what the poster got back.
func TestConcurrentPostersTwoServers(t *testing.T) {
	t.Parallel()
	const posters, perPoster = 50, 8
	cfg := testConfig(t)
	cfg.Limits.VerifiedMessages = 1000
	cfg.Limits.RegistrationsPerIP = 1000
	cfg.Limits.RequestsPerIP = 100000
	srv1, ts1 := testServer(t, cfg)
	_, ts2 := testServer(t, cfg)
	servers := []*httptest.Server{ts1, ts2}

	ctx := context.Background()
	sub, err := bus.New(testenv.Redis(t), cfg.Common.Schema).Subscribe(ctx) // live once it returns
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	agents := make([]agentKey, posters)
	server := map[string]int{} // agent id -> the server it posts through
	for i := range agents {
		agents[i] = register(t, servers[i%2], fmt.Sprintf("poster%02d", i))
		makeVerified(t, srv1, agents[i].id)
		server[agents[i].id] = i % 2
	}

	var mu sync.Mutex
	answered := map[int64]string{} // id -> the JSON the poster got
	var failed atomic.Bool
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range agents {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			var last int64
			for j := 0; j < perPoster; j++ {
				r := post(t, servers[i%2], agents[i], fmt.Sprintf("poster %d message %d", i, j))
				if r.status != 200 {
					t.Errorf("poster %d: %d %s", i, r.status, r.raw)
					failed.Store(true)
					return
				}
				var body struct{ Message json.RawMessage }
				_ = json.Unmarshal(r.raw, &body)
				var m model.Message
				if err := json.Unmarshal(body.Message, &m); err != nil {
					t.Error(err)
					return
				}
				// A post sent after another one was answered commits after it.
				if m.ID <= last {
					t.Errorf("poster %d: id %d after %d", i, m.ID, last)
				}
				last = m.ID
				mu.Lock()
				if _, dup := answered[m.ID]; dup {
					t.Errorf("id %d given twice", m.ID)
				}
				answered[m.ID] = string(body.Message)
				mu.Unlock()
			}
		}(i)
	}
	close(start)
	wg.Wait()
	if failed.Load() {
		t.FailNow()
	}
	const total = posters * perPoster
	for id := int64(1); id <= total; id++ {
		if _, ok := answered[id]; !ok {
			t.Fatalf("id %d missing: ids are not dense", id)
		}
	}

	// Postgres: dense ids 1..total, and commit order = id order (each row's
	// clock_timestamp() is taken under the counter row's lock).
	rows, err := srv1.st.Pool().Query(ctx, `SELECT id, created_at FROM messages ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var prevT time.Time
	n := int64(0)
	for rows.Next() {
		var id int64
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			t.Fatal(err)
		}
		n++
		if id != n {
			t.Fatalf("stored id %d at position %d", id, n)
		}
		if at.Before(prevT) {
			t.Fatalf("id %d committed at %s, before id %d at %s", id, at, id-1, prevT)
		}
		prevT = at
	}
	if rows.Err() != nil || n != total {
		t.Fatalf("%d rows stored (err %v), want %d", n, rows.Err(), total)
	}

	// Redis: every message once, each server's in id order, same JSON.
	lastBy := [2]int64{}
	got := 0
	for got < total {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		msg, err := sub.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			t.Fatalf("after %d of %d published messages: %v", got, total, err)
		}
		m, err := bus.Decode(msg.Payload)
		if err != nil {
			t.Fatal(err)
		}
		s := server[m.AgentID]
		if m.ID <= lastBy[s] {
			t.Fatalf("server %d published id %d after %d", s+1, m.ID, lastBy[s])
		}
		lastBy[s] = m.ID
		if msg.Payload != answered[m.ID] {
			t.Fatalf("published %s\nanswered  %s", msg.Payload, answered[m.ID])
		}
		delete(answered, m.ID)
		got++
	}
	if len(answered) != 0 {
		t.Fatalf("%d messages never published", len(answered))
	}
}

func TestReadyAndMetrics(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Limits.RequestsPerIP = 4
	srv, ts := testServer(t, cfg)
	admin := httptest.NewServer(serve.AdminMux([]serve.Component{srv}, nil))
	defer admin.Close()
	want(t, call(t, admin, "GET", "/readyz", ""), 200, "")
	want(t, call(t, admin, "GET", "/healthz", ""), 200, "")

	register(t, ts, "metered")
	call(t, ts, "GET", "/api/nope", "")
	call(t, ts, "GET", "/api/messages", "")
	call(t, ts, "GET", "/api/messages", "")
	want(t, call(t, ts, "GET", "/api/messages", ""), 429, "")

	res, err := admin.Client().Get(admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(res.Body)
	text := buf.String()
	for _, line := range []string{
		`chatr_api_requests_total{code="200",method="POST",route="/api/register"} 1`,
		`chatr_api_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`chatr_api_requests_total{code="429",method="GET",route="/api/messages"} 1`,
		`chatr_api_rate_limited_total{limit="requests_per_ip"} 1`,
		`chatr_api_request_duration_seconds_bucket{route="/api/messages",le="+Inf"} 3`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func TestNotReadyWithoutRedis(t *testing.T) {
	t.Parallel()
	srv, _ := testServer(t, testConfig(t))
	if err := srv.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = srv.rdb.Close() // as if Redis went away
	if err := srv.Ready(context.Background()); err == nil {
		t.Fatal("ready without Redis")
	}
}

// After Redis loses its data, presence comes back from Postgres.
func TestPresenceRebuild(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	srv, ts := testServer(t, cfg)
	ctx := context.Background()
	if _, err := srv.rebuildPresence(ctx); err != nil { // what Run does at start
		t.Fatal(err)
	}
	here, gone := register(t, ts, "here"), register(t, ts, "gone")
	want(t, call(t, ts, "POST", "/api/heartbeat", "", here.bearer()), 200, "")
	want(t, call(t, ts, "POST", "/api/heartbeat", "", gone.bearer()), 200, "")
	want(t, call(t, ts, "POST", "/api/disconnect", "", gone.bearer()), 200, "")
	if did, err := srv.rebuildPresence(ctx); err != nil || did {
		t.Fatalf("rebuilt (%v, %v) although Redis lost nothing", did, err)
	}

	// Redis restarts empty: every key of the room is gone.
	rdb := testenv.Redis(t)
	keys, _ := rdb.Keys(ctx, bus.Key(cfg.Common.Schema)+"*").Result()
	if len(keys) == 0 {
		t.Fatal("no room keys in Redis")
	}
	rdb.Del(ctx, keys...)
	if n := onlineNames(t, ts); n != "" {
		t.Fatalf("online after the loss: %q", n)
	}
	did, err := srv.rebuildPresence(ctx)
	if err != nil || !did {
		t.Fatalf("rebuildPresence = %v, %v; want a rebuild", did, err)
	}
	if n := onlineNames(t, ts); n != "here" {
		t.Fatalf("online after the rebuild: %q, want here (gone had disconnected)", n)
	}
}

func onlineNames(t *testing.T, ts *httptest.Server) string {
	t.Helper()
	r := call(t, ts, "GET", "/api/agents", "")
	var names []string
	for _, a := range r.body["agents"].([]any) {
		names = append(names, a.(map[string]any)["name"].(string))
	}
	return strings.Join(names, ",")
}

// Keys never reach the logs, not even at debug level.
func TestKeysNotLogged(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	cfg := testConfig(t)
	_, ts := testServerLog(t, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	a := register(t, ts, "secretive")
	post(t, ts, a, "hello")
	call(t, ts, "POST", "/api/heartbeat", "", "X-API-Key: "+a.key)
	call(t, ts, "POST", "/api/heartbeat", "", "Authorization: Bearer chatr_"+strings.Repeat("e", 32))
	if logs.String() == "" {
		t.Fatal("nothing logged: the test would prove nothing")
	}
	if strings.Contains(logs.String(), a.key[6:]) || strings.Contains(logs.String(), strings.Repeat("e", 32)) {
		t.Fatalf("a key reached the logs:\n%s", logs.String())
	}
}

// Posts queued when the server closes are committed; later ones get 503.
func TestCloseCommitsQueuedPosts(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	srv, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	a := register(t, ts, "last")
	makeVerified(t, srv, a.id)
	ag, _ := srv.st.AgentByID(context.Background(), a.id)
	results := make(chan error, 20)
	for i := 0; i < 20; i++ {
		go func() {
			_, err := srv.writer.submit(context.Background(), store.NewMessage{Agent: ag, Content: "queued"})
			results <- err
		}()
	}
	// Close while posts are in flight: once the first is stored, the others
	// are queued or on their way.
	testenv.Eventually(t, 10*time.Second, "the first post to be stored", func() bool {
		var n int
		_ = srv.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM messages`).Scan(&n)
		return n > 0
	})
	srv.writer.close()
	var committed int
	for i := 0; i < 20; i++ {
		switch err := <-results; err {
		case nil:
			committed++
		case errWriterClosed:
		default:
			t.Fatal(err)
		}
	}
	var stored int
	if err := srv.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM messages`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != committed || committed == 0 {
		t.Fatalf("%d posts answered as committed, %d stored", committed, stored)
	}
	want(t, post(t, ts, a, "too late"), 503, "")
	_ = srv.rdb.Close()
	srv.st.Close()
}

// Run rebuilds presence as soon as it starts (a pod starting after a Redis
// restart) and stops cleanly with its context.
func TestRunRebuildsAtStart(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	srv, ts := testServer(t, cfg)
	a := register(t, ts, "survivor")
	want(t, call(t, ts, "POST", "/api/heartbeat", "", a.bearer()), 200, "")
	rdb := testenv.Redis(t)
	ctx, cancel := context.WithCancel(context.Background())
	rdb.Del(ctx, bus.Key(cfg.Common.Schema, "presence"))
	if n := onlineNames(t, ts); n != "" {
		t.Fatalf("online after the loss: %q", n)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	testenv.Eventually(t, 10*time.Second, "Run to rebuild presence", func() bool { return onlineNames(t, ts) == "survivor" })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
}

// A post is timed at each stage: authentication, limits, the wait for the
// post writer and its batch's commit, then, after the answer, the publish.
func TestPostStagesAreTimed(t *testing.T) {
	t.Parallel()
	srv, ts := testServer(t, testConfig(t))
	a := register(t, ts, "timed")
	want(t, post(t, ts, a, "where does the time go"), 200, "")
	count := func(stage string) uint64 {
		mfs, err := srv.Gatherer().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "chatr_api_post_stage_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == stage {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
		return 0
	}
	for _, stage := range []string{"authenticate", "limits", "queue", "commit"} {
		if n := count(stage); n != 1 {
			t.Errorf("stage %s timed %d times for one post, want 1", stage, n)
		}
	}
	testenv.Eventually(t, 10*time.Second, "the batch's publish to be timed", func() bool { return count("publish") == 1 })
}
