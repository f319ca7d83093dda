package streamer_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// privateRedis runs a redis-server of the test's own, so that restarting it
// disturbs nobody else's tests. kill stops it; start starts it again, empty,
// on the same port: the port comes from testenv.FreeAddr, reserved for this
// test and outside the range outgoing connections use, so nothing takes it
// while the server is down. Should a start still find it taken (or the
// server die at once for any reason), start tries again until the bound.
func privateRedis(t *testing.T) (url string, kill, start func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is needed for this test (apt-get install redis-server): %v", err)
	}
	addr := testenv.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	url = "redis://" + addr + "/0"
	var (
		cmd    *exec.Cmd
		exited chan struct{}
		out    *testenv.SyncBuffer
	)
	spawn := func() {
		out = &testenv.SyncBuffer{}
		cmd = exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited = make(chan struct{})
		go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, exited)
	}
	kill = func() {
		if cmd != nil {
			_ = cmd.Process.Kill()
			<-exited
			cmd = nil
		}
	}
	start = func() {
		t.Helper()
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		defer rdb.Close()
		spawn()
		testenv.Eventually(t, 20*time.Second, "the private redis-server on "+addr, func() error {
			select {
			case <-exited:
				err := fmt.Errorf("redis-server exited: %s", out.String())
				spawn() // the port may have been taken for a moment: again
				return err
			default:
			}
			return rdb.Ping(context.Background()).Err()
		})
	}
	start()
	t.Cleanup(kill)
	return url, kill, start
}

// Redis restarted mid-stream: the streams stay open, and every message —
// those whose publish failed while Redis was down included — arrives exactly
// once, in order, on both streamers.
func TestRedisRestart(t *testing.T) {
	url, kill, start := privateRedis(t)
	r := newRoom(t, url)
	r.post(t, 3)
	a := startPod(t, r, "a", nil)
	b := startPod(t, r, "b", nil)
	var clients []*stream
	for _, p := range []*pod{a, b} {
		s, _ := openSSE(t, p.url, "")
		ws, _ := openWS(t, p.url, "")
		clients = append(clients, s, ws)
	}
	r.post(t, 10)
	for _, s := range clients {
		s.until(t, 13)
	}
	kill()
	r.post(t, 3) // publishes fail: only Postgres has these
	start()
	r.post(t, 10)
	want := r.all(t)
	for i, s := range clients {
		s.until(t, len(want))
		checkExactly(t, "client "+strconv.Itoa(i), s.snapshot(), want)
		s.mu.Lock()
		if s.ends != 0 {
			t.Errorf("client %d: the stream was closed by the Redis restart", i)
		}
		s.mu.Unlock()
	}
}

// A client that stops reading is disconnected once its queue overflows; the
// others get every message at once all the while; the slow one resumes and
// misses nothing.
func TestSlowClient(t *testing.T) {
	r := newRoom(t, "")
	p := startPod(t, r, "a", func(c *streamer.Config) {
		c.SendBuffer = 4096
		c.QueueBytes = 16 << 10
		c.Shards = 1 // the slow client shares its writer with the others
	})
	var fast []*stream
	for i := 0; i < 3; i++ {
		s, _ := openSSE(t, p.url, "")
		fast = append(fast, s)
	}
	// The slow client: a small receive window, and it reads nothing.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
	}}
	sc, err := d.Dial("tcp", p.url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := sc.Write([]byte("GET /api/stream HTTP/1.1\r\nHost: test\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	for _, s := range fast {
		s.waitFor(t, "history", 5*time.Second, func(s *stream) bool { return len(s.types) > 0 })
	}
	start := time.Now()
	posted := r.post(t, 200)
	for i, s := range fast {
		s.until(t, len(posted))
		checkExactly(t, "fast client "+strconv.Itoa(i), s.snapshot(), posted)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("fast clients needed %s", el)
	}
	testenv.Eventually(t, 20*time.Second, "the slow client to be disconnected", func() bool {
		return metric(t, p.srv, "chatr_streamer_disconnects_total", "reason", "slow") >= 1
	})
	if n := metric(t, p.srv, "chatr_streamer_queue_drops_total"); n != 1 {
		t.Errorf("queue drops = %v, want 1", n)
	}
	// It reads what it was sent, then resumes from its last event.
	slow := newStream()
	resp, err := http.ReadResponse(bufio.NewReader(sc), nil)
	if err != nil {
		t.Fatal(err)
	}
	slow.readSSE(t, resp.Body)
	got := slow.snapshot()
	if len(got) >= len(posted) {
		t.Fatalf("the slow client got everything (%d): the queue bound was not exercised", len(got))
	}
	slow.mu.Lock()
	last := slow.lastID
	slow.mu.Unlock()
	resumed, _ := openSSE(t, p.url, last)
	resumed.until(t, len(posted)-len(got))
	all := append(got, resumed.snapshot()...)
	// got starts with the history (empty room: none) then messages.
	checkExactly(t, "slow client after resuming", all, posted)
}

// Drain: the pod refuses new streams, closes its streams gradually with a
// retry hint, and its clients reconnect to the other pod and lose nothing.
func TestDrain(t *testing.T) {
	r := newRoom(t, "")
	r.post(t, 5)
	a := startPod(t, r, "a", func(c *streamer.Config) { c.DrainTime = time.Second })
	b := startPod(t, r, "b", nil)
	var clients []*stream
	for i := 0; i < 6; i++ {
		s, _ := follow(t, []string{a.url, b.url})
		clients = append(clients, s)
	}
	for _, s := range clients {
		s.until(t, 5)
	}
	stopPosting := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stopPosting:
				return
			case <-time.After(10 * time.Millisecond):
				r.post(t, 1)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	if err := a.srv.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	close(stopPosting)
	wg.Wait()
	r.post(t, 3)
	if n := a.srv.Connections(); n != 0 {
		t.Fatalf("%d streams left after Drain", n)
	}
	expectRefused(t, a.url, http.StatusServiceUnavailable, "Server is restarting, reconnect")
	want := r.all(t)
	var first, last time.Time
	for i, s := range clients {
		s.until(t, len(want))
		checkExactly(t, "client "+strconv.Itoa(i), s.snapshot(), want)
		s.mu.Lock()
		if s.ends < 1 || len(s.retries) < 2 {
			t.Errorf("client %d: %d ends, retry hints %v: want a drain hint before the close", i, s.ends, s.retries)
		}
		if len(s.endedAt) > 0 {
			if first.IsZero() || s.endedAt[0].Before(first) {
				first = s.endedAt[0]
			}
			if s.endedAt[0].After(last) {
				last = s.endedAt[0]
			}
		}
		s.mu.Unlock()
	}
	if spread := last.Sub(first); spread < 300*time.Millisecond {
		t.Errorf("closes spread over %s: not gradual over the 1s drain time", spread)
	}
	if took > 3*time.Second {
		t.Errorf("Drain took %s for a 1s drain time", took)
	}
}
