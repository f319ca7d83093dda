package streamer_test

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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/store"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// testLog is quiet unless CHATR_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("CHATR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// room is one test room: its schema, store and Redis.
type room struct {
	schema   string
	redisURL string
	st       *store.Store
	rdb      redis.UniversalClient
	bus      *bus.Bus
	agent    store.Agent
	seq      int
	mu       sync.Mutex
}

func newRoom(t *testing.T, redisURL string) *room {
	t.Helper()
	if redisURL == "" {
		redisURL = testenv.RedisURL()
	}
	schema := testenv.Schema(t)
	st := testenv.StoreFor(t, schema)
	var rdb redis.UniversalClient
	if topo, _ := bus.TopologyOf(redisURL); topo == bus.Standalone {
		opt, err := redis.ParseURL(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		// Publish once, like an API pod that finds Redis down: Postgres has
		// the message and the streamers must find it there.
		opt.MaxRetries = -1
		rdb = redis.NewClient(opt)
	} else {
		var err error
		if rdb, err = bus.Connect(redisURL); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = rdb.Close() })
	a, err := st.CreateAgent(context.Background(), "poster", "🦀", []byte("hash-of-poster"))
	if err != nil {
		t.Fatal(err)
	}
	return &room{schema: schema, redisURL: redisURL, st: st, rdb: rdb, bus: bus.New(rdb, schema), agent: a}
}

// post stores k messages, one insert each, and publishes each as the API
// does. A failed publish is not an error: Postgres has the message, and the
// streamers must find it.
func (r *room) post(t *testing.T, k int) []model.Message {
	t.Helper()
	var out []model.Message
	for i := 0; i < k; i++ {
		r.mu.Lock()
		r.seq++
		content := fmt.Sprintf("message %d <b>&</b> \"quoted\" 🦞\nline two", r.seq)
		r.mu.Unlock()
		ms, err := r.st.InsertMessages(context.Background(), []store.NewMessage{{Agent: r.agent, Content: content}})
		if err != nil {
			t.Fatal(err)
		}
		_ = r.bus.Publish(context.Background(), ms)
		out = append(out, ms...)
	}
	return out
}

// insertOnly stores k messages without publishing them (a lost publish).
func (r *room) insertOnly(t *testing.T, k int) []model.Message {
	t.Helper()
	var out []model.Message
	for i := 0; i < k; i++ {
		ms, err := r.st.InsertMessages(context.Background(), []store.NewMessage{{Agent: r.agent, Content: "unpublished"}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ms...)
	}
	return out
}

// all returns every message of the room, oldest first.
func (r *room) all(t *testing.T) []model.Message {
	t.Helper()
	ms, err := r.st.MessagesAfter(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// pod is a running streamer behind a test HTTP server.
type pod struct {
	srv    *streamer.Server
	url    string
	cancel context.CancelFunc
	done   chan struct{}
}

func testConfig(r *room, name string) streamer.Config {
	limits := config.DefaultLimits()
	limits.StreamsPerIP = 1000
	return streamer.Config{
		Common:         config.Common{DatabaseURL: testenv.DatabaseURL(), Schema: r.schema, RedisURL: r.redisURL, Migrate: true},
		Limits:         limits,
		PodName:        name,
		MaxConnections: 1000,
		DrainTime:      time.Second,
		GapWait:        100 * time.Millisecond,
		ReportInterval: 100 * time.Millisecond,
		IPHeartbeat:    200 * time.Millisecond,
		IPTTL:          time.Second,
	}
}

func startPod(t *testing.T, r *room, name string, tweak func(*streamer.Config)) *pod {
	t.Helper()
	cfg := testConfig(r, name)
	if tweak != nil {
		tweak(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := streamer.New(ctx, cfg, testLog().With("pod", name))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	p := &pod{srv: srv, url: hs.URL, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		_ = srv.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		srv.Close()
		hs.Close()
	})
	return p
}

// event is one SSE event as a client sees it.
type event struct {
	id, data string
	hasID    bool
}

// stream is a client's view of one or more consecutive connections.
type stream struct {
	mu      sync.Mutex
	msgs    []model.Message // history and message events, in arrival order
	types   []string
	lastID  string
	retries []int
	pings   int
	stats   []model.Stats
	ends    int // connections that ended
	endedAt []time.Time
	changed chan struct{}
}

func newStream() *stream { return &stream{changed: make(chan struct{}, 1)} }

func (s *stream) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// handle applies one event's data (the {"type","data"} object).
func (s *stream) handle(t *testing.T, ev event) {
	var env struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(ev.data), &env); err != nil {
		t.Errorf("bad event data %q: %v", ev.data, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.types = append(s.types, env.Type)
	if ev.hasID {
		s.lastID = ev.id
	}
	switch env.Type {
	case "history":
		var ms []model.Message
		if err := json.Unmarshal(env.Data, &ms); err != nil {
			t.Errorf("bad history: %v", err)
		}
		s.msgs = append(s.msgs, ms...)
	case "message":
		var m model.Message
		if err := json.Unmarshal(env.Data, &m); err != nil {
			t.Errorf("bad message: %v", err)
		}
		if !ev.hasID || ev.id != m.IDString() {
			t.Errorf("message %d came with id line %q", m.ID, ev.id)
		}
		s.msgs = append(s.msgs, m)
	case "stats":
		var st model.Stats
		if err := json.Unmarshal(env.Data, &st); err != nil {
			t.Errorf("bad stats: %v", err)
		}
		s.stats = append(s.stats, st)
	}
	s.notify()
}

// readSSE parses an event stream until it ends.
func (s *stream) readSSE(t *testing.T, body io.Reader) {
	br := bufio.NewReader(body)
	var ev event
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				s.handle(t, ev)
			}
			ev, data = event{}, nil
		case strings.HasPrefix(line, ":"):
			s.mu.Lock()
			s.pings++
			s.mu.Unlock()
		case strings.HasPrefix(line, "id: "):
			ev.id, ev.hasID = strings.TrimPrefix(line, "id: "), true
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		case strings.HasPrefix(line, "retry: "):
			n, _ := strconv.Atoi(strings.TrimPrefix(line, "retry: "))
			s.mu.Lock()
			s.retries = append(s.retries, n)
			s.mu.Unlock()
		case strings.HasPrefix(line, "event:"):
			t.Errorf("named event %q: clients using onmessage would never see it", line)
		}
	}
	s.mu.Lock()
	s.ends++
	s.endedAt = append(s.endedAt, time.Now())
	s.mu.Unlock()
	s.notify()
}

// snapshot returns a copy of what was received.
func (s *stream) snapshot() []model.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]model.Message(nil), s.msgs...)
}

// waitFor waits until cond holds on the stream, or fails the test.
func (s *stream) waitFor(t *testing.T, what string, d time.Duration, cond func(s *stream) bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond(s)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s (have %d messages, last id %q)", d, what, len(s.msgs), s.lastID)
		}
	}
}

// until waits for the stream to hold at least n messages.
func (s *stream) until(t *testing.T, n int) {
	t.Helper()
	s.waitFor(t, fmt.Sprintf("%d messages", n), 15*time.Second, func(s *stream) bool { return len(s.msgs) >= n })
}

// sseConnect opens one SSE connection. It returns the response (status
// checked by the caller) and a function that closes it.
func sseConnect(t *testing.T, url, lastID string, hdr bool) (*http.Response, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if lastID != "" && !hdr {
		url += "?lastEventId=" + lastID
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if lastID != "" && hdr {
		req.Header.Set("Last-Event-ID", lastID)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, func() { cancel(); _ = resp.Body.Close() }
}

// openSSE connects a stream client to base+/api/stream and reads it in the
// background until the test ends or close is called.
func openSSE(t *testing.T, base, lastID string) (*stream, func()) {
	t.Helper()
	s := newStream()
	resp, closeFn := sseConnect(t, base+"/api/stream", lastID, true)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		closeFn()
		t.Fatalf("stream answered %d: %s", resp.StatusCode, b)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.readSSE(t, resp.Body) }()
	stop := func() { closeFn(); <-done }
	t.Cleanup(stop)
	return s, stop
}

// follow is a client that reconnects whenever its stream ends, to the next
// of bases in turn, resuming with Last-Event-ID, as EventSource does.
func follow(t *testing.T, bases []string) (*stream, func()) {
	t.Helper()
	s := newStream()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			s.mu.Lock()
			last := s.lastID
			s.mu.Unlock()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, bases[i%len(bases)]+"/api/stream", nil)
			if last != "" {
				req.Header.Set("Last-Event-ID", last)
			}
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if resp.StatusCode == http.StatusOK {
				s.readSSE(t, resp.Body)
			}
			resp.Body.Close()
		}
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return s, stop
}

// openWS connects a WebSocket client and reads it in the background.
func openWS(t *testing.T, base, lastID string) (*stream, *websocket.Conn) {
	t.Helper()
	s := newStream()
	u := "ws" + strings.TrimPrefix(base, "http") + "/api/ws"
	if lastID != "" {
		u += "?lastEventId=" + lastID
	}
	c, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", u, err, resp)
	}
	done := make(chan struct{})
	c.SetPingHandler(func(string) error {
		s.mu.Lock()
		s.pings++
		s.mu.Unlock()
		return c.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second))
	})
	go func() {
		defer close(done)
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				s.mu.Lock()
				s.ends++
				s.mu.Unlock()
				s.notify()
				return
			}
			// Each frame is one event; message ids ride inside the data.
			var probe struct {
				Type string `json:"type"`
				Data struct {
					ID string `json:"id"`
				} `json:"data"`
			}
			_ = json.Unmarshal(data, &probe)
			ev := event{data: string(data)}
			if probe.Type == "message" {
				ev.id, ev.hasID = probe.Data.ID, true
			}
			s.handle(t, ev)
		}
	}()
	t.Cleanup(func() { _ = c.Close(); <-done })
	return s, c
}

// checkExactly fails unless got is exactly want: same ids, same order, same
// content, nothing twice.
func checkExactly(t *testing.T, who string, got, want []model.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d messages, want %d (got ids %s)", who, len(got), len(want), ids(got))
		return
	}
	for i := range want {
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(want[i])
		if string(g) != string(w) {
			t.Errorf("%s: message %d is\n%s\nwant\n%s", who, i, g, w)
			return
		}
	}
}

func ids(ms []model.Message) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.IDString())
	}
	return b.String()
}
