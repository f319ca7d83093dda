// Package drain checks, with real processes and a real signal, what a
// scale-down of the streamer fleet promises (docs/design.md, the operator): taking one streamer
// away with SIGTERM, as the kubelet does when the autoscaler lowers the
// replicas, loses no message and duplicates none for any client, and every
// client is streaming again within the drain time plus a few seconds.
//
// components/streamer's TestDrain shows the drain itself in one process
// (Drain called directly, clients that know both pods). This test runs the
// binary: `chatrd api` and two `chatrd streamer` processes built from
// ./cmd/chatrd, on the test Postgres and Redis (internal/testenv), behind one
// address (a round-robin reverse proxy standing in for the Service and the
// ingress), with SSE clients that resume with Last-Event-ID the way
// EventSource does: after the stream ends, wait the last retry: hint, then
// reconnect through the same address.
package drain

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/connreport"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// The drain's timing: short, so the test is quick, with the production
// shape (retry hints of 50–150 % of retryHint, closes spread over drainTime).
const (
	drainTime = 3 * time.Second
	retryHint = time.Second
	clients   = 16
)

// backAgain is "a few seconds": a client on the stopped streamer must be
// streaming again this long after SIGTERM at the latest (its close comes by
// drainTime, then it waits at most 1.5 × retryHint, then reconnects; the
// rest is slack for a loaded CI machine, stretched by testenv.Slow).
var backAgain = drainTime + retryHint*3/2 + testenv.Slow(2500*time.Millisecond)

func TestSIGTERMDrainLosesNothing(t *testing.T) {
	bin := buildChatrd(t)
	schema := testenv.Schema(t)
	rdb := testenv.Redis(t)
	logs := t.TempDir()

	env := []string{
		"CHATR_DATABASE_URL=" + testenv.DatabaseURL(),
		"CHATR_DB_SCHEMA=" + schema,
		"CHATR_REDIS_URL=" + testenv.RedisURL(),
		"CHATR_MIGRATE=true",
		"CHATR_LOG_LEVEL=info",
		// One agent posts all the time, and every client comes from 127.0.0.1.
		"CHATR_UNVERIFIED_MESSAGES=1000000",
		"CHATR_REQUESTS_PER_IP=1000000",
		"CHATR_STREAMS_PER_IP=1000",
		"CHATR_DRAIN_TIME=" + drainTime.String(),
		"CHATR_STREAM_RETRY=" + retryHint.String(),
	}
	api := start(t, bin, "api", "api", logs, env)
	a := start(t, bin, "streamer", "streamer-a", logs, append(env, "CHATR_POD_NAME=streamer-a"))
	b := start(t, bin, "streamer", "streamer-b", logs, append(env, "CHATR_POD_NAME=streamer-b"))
	defer func() {
		if t.Failed() {
			for _, name := range []string{"api", "streamer-a", "streamer-b"} {
				out, _ := os.ReadFile(filepath.Join(logs, name+".log"))
				t.Logf("--- %s log (last 4 KiB):\n%s", name, tail(out, 4096))
			}
		}
	}()
	for _, p := range []*process{api, a, b} {
		p.waitReady(t, 60*time.Second)
	}

	lb := newBalancer(t, a, b)
	poster := newPoster(t, "http://"+api.addr)

	// The clients connect, through the balancer, before anything is posted:
	// each must end up with every message, each once, in order.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	cs := make([]*sseClient, clients)
	for i := range cs {
		cs[i] = &sseClient{url: lb.url + "/api/stream"}
		wg.Add(1)
		go func() { defer wg.Done(); cs[i].run(ctx) }()
	}
	defer func() { cancel(); wg.Wait() }()
	testenv.Eventually(t, 10*time.Second, "every client streaming", func() error {
		for i, c := range cs {
			if c.connects() == 0 {
				return fmt.Errorf("client %d not connected", i)
			}
		}
		return nil
	})
	onA := 0
	for _, c := range cs {
		if c.backend(0) == a.name {
			onA++
		}
	}
	if onA == 0 || onA == clients {
		t.Fatalf("%d of %d clients on %s: the balancer should spread them", onA, clients, a.name)
	}
	testenv.Eventually(t, 10*time.Second, "streamer-a reports its connections", func() error {
		if n, err := rdb.Get(ctx, connreport.Key(schema, a.name)).Int(); err != nil || n != onA {
			return fmt.Errorf("count %d (%v), want %d", n, err, onA)
		}
		return nil
	})

	// A steady posting load, all along.
	postCtx, stopPosting := context.WithCancel(ctx)
	posted := make(chan []int64, 1)
	go func() { posted <- poster.run(postCtx, 20*time.Millisecond) }()
	testenv.Eventually(t, 30*time.Second, "the posting load under way", func() bool { return poster.count.Load() >= 25 })

	// The scale-down: the pod leaves the Service's endpoints (in Kubernetes
	// the preStop sleep gives the ingress time to see that; this balancer
	// sees it at once), then the kubelet sends SIGTERM.
	lb.remove(a.name)
	sigterm := time.Now()
	a.signal(t, syscall.SIGTERM)

	// A drains and exits by itself, in time, cleanly.
	exitErr, exited := a.wait(drainTime + 15*time.Second)
	if !exited {
		t.Fatalf("%s still running %s after SIGTERM", a.name, time.Since(sigterm).Round(time.Millisecond))
	}
	took := time.Since(sigterm)
	if exitErr != nil {
		t.Errorf("%s exited with %v", a.name, exitErr)
	}
	if took < drainTime*2/3 {
		t.Errorf("%s exited %s after SIGTERM: it did not drain gradually over %s", a.name, took, drainTime)
	}
	// Posting goes on after the drain: those messages must reach everyone too.
	after := poster.count.Load()
	testenv.Eventually(t, 30*time.Second, "more posts after the drain", func() bool {
		return poster.count.Load() >= max(after+50, 120)
	})
	stopPosting()
	ids := <-posted
	if len(ids) < 100 {
		t.Fatalf("only %d messages posted", len(ids))
	}

	// Every client gets every message, each once, in order.
	testenv.Eventually(t, 15*time.Second, "every client has every message", func() error {
		for i, c := range cs {
			if got := c.lastID(); got < ids[len(ids)-1] {
				return fmt.Errorf("client %d is at id %d of %d", i, got, ids[len(ids)-1])
			}
		}
		return nil
	})
	cancel()
	wg.Wait()
	var worstBack time.Duration
	moved := 0
	for i, c := range cs {
		if got := c.received(); !slices.Equal(got, ids) {
			t.Errorf("client %d: %s", i, diff(got, ids))
		}
		if c.backend(0) != a.name {
			if n := c.connects(); n != 1 {
				t.Errorf("client %d on %s reconnected (%d connects) though its streamer stayed", i, c.backend(0), n)
			}
			continue
		}
		// A client of the stopped streamer: ended by the drain (with a
		// retry hint first), back on the other streamer in time.
		moved++
		if c.connects() < 2 || c.backend(1) != b.name {
			t.Errorf("client %d: connections %v, want a second one on %s", i, c.backends(), b.name)
			continue
		}
		back := c.connectedAt(1).Sub(sigterm)
		worstBack = max(worstBack, back)
		if back > backAgain {
			t.Errorf("client %d streaming again %s after SIGTERM, want within %s", i, back.Round(time.Millisecond), backAgain)
		}
		if h := c.retryHint(); h < retryHint/2 || h > retryHint*3/2 {
			t.Errorf("client %d: last retry hint %s, want the drain's 50–150 %% of %s", i, h, retryHint)
		}
	}
	if moved != onA {
		t.Errorf("%d clients moved, %d were on %s", moved, onA, a.name)
	}
	// The stopped streamer no longer counts for the autoscaler at once.
	if n, err := rdb.Exists(context.Background(), connreport.Key(schema, a.name)).Result(); err != nil || n != 0 {
		t.Errorf("%s's connection count is still in Redis after it exited (%d, %v)", a.name, n, err)
	}
	t.Logf("%d messages to %d clients (%d on the stopped streamer); %s exited %s after SIGTERM; the last moved client was streaming again %s after SIGTERM",
		len(ids), clients, onA, a.name, took.Round(time.Millisecond), worstBack.Round(time.Millisecond))
}

// buildChatrd builds the binary the image ships, once per test run.
func buildChatrd(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "chatrd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/chatrd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/chatrd: %v\n%s", err, out)
	}
	return bin
}

// process is one running chatrd.
type process struct {
	name, addr, admin string
	cmd               *exec.Cmd
	done              chan struct{}
	err               error

	bin, command, logPath string
	env                   []string
}

// start runs `chatrd <command>` on free ports, logging to logs/<name>.log;
// it is killed when the test ends if it is still running.
func start(t *testing.T, bin, command, name, logs string, env []string) *process {
	t.Helper()
	p := &process{name: name, bin: bin, command: command, logPath: filepath.Join(logs, name+".log"), env: env}
	p.launch(t)
	return p
}

// launch starts the process on two new addresses (testenv.FreeAddr).
func (p *process) launch(t *testing.T) {
	t.Helper()
	p.addr, p.admin, p.done, p.err = testenv.FreeAddr(t), testenv.FreeAddr(t), make(chan struct{}), nil
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.command)
	cmd.Env = append(append(os.Environ(), p.env...), "CHATR_LISTEN="+p.addr, "CHATR_ADMIN_LISTEN="+p.admin)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	done := p.done
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(done)
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

// waitReady waits for the process's /readyz. A process that could not
// listen because its address was taken after FreeAddr chose it (another
// program on the machine) is started again on new addresses; any other
// early exit fails the test.
func (p *process) waitReady(t *testing.T, d time.Duration) {
	t.Helper()
	testenv.Eventually(t, d, p.name+" ready", func() error {
		select {
		case <-p.done:
			out, _ := os.ReadFile(p.logPath)
			if testenv.AddrInUse(p.err, string(out)) {
				p.launch(t)
				return fmt.Errorf("%s found its address taken; started again", p.name)
			}
			return testenv.StopTrying(fmt.Errorf("%s exited: %v", p.name, p.err))
		default:
		}
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
}

func (p *process) signal(t *testing.T, s os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

// wait waits up to d for the process to exit.
func (p *process) wait(d time.Duration) (error, bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(d):
		return nil, false
	}
}

// balancer is the one address in front of the streamers: round robin over
// the backends still in rotation, streaming responses through unbuffered,
// and each response tagged with the backend that served it.
type balancer struct {
	url string
	mu  sync.Mutex
	in  []*process
	n   int
}

func newBalancer(t *testing.T, backends ...*process) *balancer {
	t.Helper()
	lb := &balancer{in: backends}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			p := lb.pick()
			r.SetURL(&url.URL{Scheme: "http", Host: p.addr})
			r.Out.Header.Set("X-Test-Backend", p.name)
		},
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Set("X-Test-Backend", resp.Request.Header.Get("X-Test-Backend"))
			return nil
		},
		FlushInterval: -1,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	lb.url = "http://" + ln.Addr().String()
	return lb
}

func (lb *balancer) pick() *process {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.n++
	return lb.in[lb.n%len(lb.in)]
}

// remove takes a backend out of rotation, as the endpoint controller does
// with a terminating pod; its open streams go on until it closes them.
func (lb *balancer) remove(name string) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.in = slices.DeleteFunc(lb.in, func(p *process) bool { return p.name == name })
}

// poster is one agent posting through the API.
type poster struct {
	base, key string
	count     atomic.Int64 // messages posted so far
}

func newPoster(t *testing.T, base string) *poster {
	t.Helper()
	var out struct {
		Agent struct {
			APIKey string `json:"apiKey"`
		} `json:"agent"`
	}
	body := `{"name":"drainer"}`
	resp, err := http.Post(base+"/api/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Agent.APIKey == "" {
		t.Fatalf("register: %s %v", resp.Status, err)
	}
	return &poster{base: base, key: out.Agent.APIKey}
}

// run posts one message every interval until ctx ends and returns the ids
// the API gave them, in order. A failed post is a test failure later: its
// absence would show as a message the clients have and the poster does not.
func (p *poster) run(ctx context.Context, interval time.Duration) []int64 {
	var ids []int64
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return ids
		case <-tick.C:
		}
		req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, p.base+"/api/messages",
			strings.NewReader(fmt.Sprintf(`{"content":"message %d"}`, i)))
		req.Header.Set("Authorization", "Bearer "+p.key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var out struct {
			Message struct {
				ID string `json:"id"`
			} `json:"message"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if id, perr := strconv.ParseInt(out.Message.ID, 10, 64); err == nil && perr == nil {
			ids = append(ids, id)
			p.count.Add(1)
		}
	}
}

// sseClient reads the stream like EventSource: it keeps the last event id
// and the last retry: hint, and when the stream ends it waits the hint and
// reconnects with Last-Event-ID. It records every message id it receives
// (duplicates included) and every connection: when, and to which backend.
type sseClient struct {
	url string

	mu    sync.Mutex
	ids   []int64
	conns []conn
	retry time.Duration
	last  string
}

type conn struct {
	at      time.Time
	backend string
}

func (c *sseClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := c.once(ctx)
		c.mu.Lock()
		wait := c.retry
		c.mu.Unlock()
		if wait == 0 || err != nil {
			wait = 200 * time.Millisecond // refused or failed: try again soon
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// once reads one stream until it ends; a non-nil error means it never
// started.
func (c *sseClient) once(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.last != "" {
		req.Header.Set("Last-Event-ID", c.last)
	}
	c.mu.Unlock()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return errors.New(resp.Status)
	}
	c.mu.Lock()
	c.conns = append(c.conns, conn{at: time.Now(), backend: resp.Header.Get("X-Test-Backend")})
	c.mu.Unlock()

	r := bufio.NewReader(resp.Body)
	var id string
	var data bytes.Buffer
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil // the stream ended
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			c.dispatch(id, data.Bytes())
			id = ""
			data.Reset()
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "retry:"):
			if ms, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "retry:"))); err == nil {
				c.mu.Lock()
				c.retry = time.Duration(ms) * time.Millisecond
				c.mu.Unlock()
			}
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
}

// dispatch handles one event: history and message events carry messages.
func (c *sseClient) dispatch(id string, data []byte) {
	if len(data) == 0 {
		return
	}
	var ev struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return
	}
	type msg struct {
		ID string `json:"id"`
	}
	var msgs []msg
	switch ev.Type {
	case "history":
		_ = json.Unmarshal(ev.Data, &msgs)
	case "message":
		var m msg
		if json.Unmarshal(ev.Data, &m) == nil {
			msgs = []msg{m}
		}
	default:
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		if n, err := strconv.ParseInt(m.ID, 10, 64); err == nil {
			c.ids = append(c.ids, n)
		}
	}
	if id != "" {
		c.last = id
	}
}

func (c *sseClient) received() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids)
}

func (c *sseClient) lastID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids) == 0 {
		return 0
	}
	return c.ids[len(c.ids)-1]
}

func (c *sseClient) connects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

func (c *sseClient) backend(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i >= len(c.conns) {
		return ""
	}
	return c.conns[i].backend
}

func (c *sseClient) backends() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, cn := range c.conns {
		out = append(out, cn.backend)
	}
	return out
}

func (c *sseClient) connectedAt(i int) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns[i].at
}

func (c *sseClient) retryHint() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retry
}

// diff says how got differs from want: missing, duplicated or out of order.
func diff(got, want []int64) string {
	seen := map[int64]int{}
	for _, id := range got {
		seen[id]++
	}
	var missing, dup []int64
	for _, id := range want {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id, n := range seen {
		if n > 1 {
			dup = append(dup, id)
		}
	}
	slices.Sort(dup)
	ordered := slices.IsSorted(got)
	return fmt.Sprintf("%d received, %d posted; missing %v, duplicated %v, in order %v", len(got), len(want), head(missing), head(dup), ordered)
}

func head(ids []int64) []int64 {
	if len(ids) > 10 {
		return ids[:10]
	}
	return ids
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
