package streamer_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// The stream speaks the contract: its headers, unnamed events, history
// first with the last 100 messages oldest first, id lines, a retry hint,
// pings and stats.
func TestStreamContract(t *testing.T) {
	r := newRoom(t, "")
	before := r.post(t, 120)
	p := startPod(t, r, "a", func(c *streamer.Config) {
		c.PingInterval = 150 * time.Millisecond
		c.StatsInterval = 200 * time.Millisecond
	})

	resp, closeFn := sseConnect(t, p.url+"/api/stream", "", false)
	defer closeFn()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
		"X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	s := newStream()
	go s.readSSE(t, resp.Body)
	s.until(t, 100)
	live := r.post(t, 3)
	s.until(t, 103)
	s.waitFor(t, "pings and a stats event", 5*time.Second, func(s *stream) bool {
		n := 0
		for _, ty := range s.types {
			if ty == "stats" {
				n++
			}
		}
		return s.pings >= 2 && n >= 2
	})
	got := s.snapshot()
	checkExactly(t, "history then live", got, append(append([]model.Message(nil), before[20:]...), live...))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.types[0] != "history" {
		t.Errorf("first event is %q, want history", s.types[0])
	}
	if len(s.retries) == 0 || s.retries[0] <= 0 {
		t.Errorf("no retry hint at the start: %v", s.retries)
	}
	if s.lastID != live[2].IDString() {
		t.Errorf("last event id %q, want %s", s.lastID, live[2].IDString())
	}
}

// The raw response head carries the contract's headers verbatim.
func TestStreamRawHeaders(t *testing.T) {
	r := newRoom(t, "")
	p := startPod(t, r, "a", nil)
	// net/http's client hides Connection; read the raw response head.
	raw := rawGet(t, p.url, "/api/stream")
	for _, h := range []string{"HTTP/1.1 200 OK\r\n", "Content-Type: text/event-stream\r\n", "Cache-Control: no-cache\r\n",
		"Connection: keep-alive\r\n", "X-Accel-Buffering: no\r\n", "Transfer-Encoding: chunked\r\n"} {
		if !contains(raw, h) {
			t.Errorf("response head lacks %q:\n%s", h, raw)
		}
	}
}

// HEAD /api/stream answers the stream's headers without a body.
func TestStreamHead(t *testing.T) {
	r := newRoom(t, "")
	p := startPod(t, r, "a", nil)
	resp, err := http.Head(p.url + "/api/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || p.srv.Connections() != 0 {
		t.Fatalf("HEAD: %d %q, %d connections", resp.StatusCode, resp.Header.Get("Content-Type"), p.srv.Connections())
	}
}

// rawGet sends a bare HTTP/1.1 GET and returns the response head.
func rawGet(t *testing.T, base, path string) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the response head: %v (so far %q)", err, head.String())
		}
		head.WriteString(line)
		if line == "\r\n" {
			return head.String()
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// Every client on both streamers receives every message exactly once, all in
// the same order — even when two publishers race and their publishes overtake
// each other on the bus.
func TestFanoutTwoStreamers(t *testing.T) {
	r := newRoom(t, "")
	early := r.post(t, 5)
	a := startPod(t, r, "a", nil)
	b := startPod(t, r, "b", nil)
	var clients []*stream
	for _, p := range []*pod{a, b} {
		for i := 0; i < 3; i++ {
			s, _ := openSSE(t, p.url, "")
			clients = append(clients, s)
		}
		ws, _ := openWS(t, p.url, "")
		clients = append(clients, ws)
	}
	for _, s := range clients {
		s.until(t, len(early))
	}
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.post(t, 100)
		}()
	}
	wg.Wait()
	want := r.all(t)
	for i, s := range clients {
		s.until(t, len(want))
		checkExactly(t, "client "+strconv.Itoa(i), s.snapshot(), want)
	}
}

// A client that drops and resumes on the other streamer misses nothing and
// sees nothing twice: from memory when recent, from Postgres when older than
// the ring, with the header or the query parameter.
func TestResumeOnOtherStreamer(t *testing.T) {
	r := newRoom(t, "")
	r.post(t, 10)
	a := startPod(t, r, "a", func(c *streamer.Config) { c.RingSize = 100 })
	b := startPod(t, r, "b", func(c *streamer.Config) { c.RingSize = 100 })

	for _, tc := range []struct {
		name   string
		missed int
		header bool
	}{
		{"recent, header", 7, true},
		{"recent, query", 3, false},
		{"older than the ring, header", 150, true},
		{"older than the ring, query", 130, false},
	} {
		s, stop := openSSE(t, a.url, "")
		s.waitFor(t, "history", 5*time.Second, func(s *stream) bool { return s.lastID != "" })
		seen := len(s.snapshot())
		stop()
		s.mu.Lock()
		last := s.lastID
		s.mu.Unlock()
		missed := r.post(t, tc.missed)

		resp, closeFn := sseConnect(t, b.url+"/api/stream", last, tc.header)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", tc.name, resp.StatusCode)
		}
		s2 := newStream()
		go s2.readSSE(t, resp.Body)
		s2.until(t, tc.missed)
		live := r.post(t, 2)
		s2.until(t, tc.missed+2)
		closeFn()
		got := s2.snapshot()
		checkExactly(t, tc.name, got, append(missed, live...))
		s2.mu.Lock()
		if len(s2.types) > 0 && s2.types[0] == "history" {
			t.Errorf("%s: a resume got a history event", tc.name)
		}
		s2.mu.Unlock()
		_ = seen
	}
	// The old resumes went to Postgres; the recent ones did not.
	if n := metric(t, b.srv, "chatr_streamer_postgres_resumes_total"); n != 2 {
		t.Errorf("postgres resumes = %v, want 2", n)
	}
}

// Out-of-order publishes are reordered, and a message whose publish was lost
// is read from Postgres after a short wait.
func TestGapFill(t *testing.T) {
	r := newRoom(t, "")
	p := startPod(t, r, "a", func(c *streamer.Config) { c.StatsInterval = 300 * time.Millisecond })
	s, _ := openSSE(t, p.url, "")
	ws, _ := openWS(t, p.url, "")
	s.waitFor(t, "history", 5*time.Second, func(s *stream) bool { return len(s.types) > 0 })

	lost := r.insertOnly(t, 2)  // never published
	held := r.insertOnly(t, 1)  // published late
	after := r.insertOnly(t, 1) // published first
	if err := r.bus.Publish(t.Context(), after); err != nil {
		t.Fatal(err)
	}
	if err := r.bus.Publish(t.Context(), held); err != nil {
		t.Fatal(err)
	}
	want := append(append(lost, held...), after...)
	for name, c := range map[string]*stream{"sse": s, "ws": ws} {
		c.waitFor(t, "the filled gap", 20*time.Second, func(s *stream) bool { return len(s.msgs) >= len(want) })
		checkExactly(t, name, c.snapshot(), want)
	}
	// The newest message lost with nothing after it: only the room's counters
	// (read with the stats) reveal it.
	want = append(want, r.insertOnly(t, 1)...)
	for name, c := range map[string]*stream{"sse": s, "ws": ws} {
		c.waitFor(t, "the lost tail", 20*time.Second, func(s *stream) bool { return len(s.msgs) >= len(want) })
		checkExactly(t, name, c.snapshot(), want)
	}
}

func metric(t *testing.T, srv *streamer.Server, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := srv.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						ok = true
					}
				}
				if !ok {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				total += m.GetCounter().GetValue()
			case m.Gauge != nil:
				total += m.GetGauge().GetValue()
			case m.Histogram != nil:
				total += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return total
}

// A stream that connects between two stats broadcasts gets figures
// refreshed since the last broadcast, not the ones from it. The broadcasts
// are an hour apart here, so fresh figures on connect can only come from the
// refresh between them; the test waits for them (a new stream each look)
// rather than sleeping for one refresh period, which a busy machine can
// overrun.
func TestStatsOnConnectAreFresh(t *testing.T) {
	r := newRoom(t, "")
	p := startPod(t, r, "a", func(c *streamer.Config) { c.StatsInterval = time.Hour })
	posted := r.post(t, 5)
	s, closeFn := openSSE(t, p.url, "")
	defer closeFn()
	s.until(t, len(posted))
	closeFn()
	testenv.Eventually(t, 30*time.Second, "stats on connect that count the new messages", func() error {
		s2, close2 := openSSE(t, p.url, "")
		defer close2()
		s2.waitFor(t, "a stats event on connect", 10*time.Second, func(s *stream) bool { return len(s.stats) > 0 })
		s2.mu.Lock()
		defer s2.mu.Unlock()
		if got := s2.stats[0].TotalMessages; got != int64(len(posted)) {
			return fmt.Errorf("stats on connect say %d messages, want %d", got, len(posted))
		}
		return nil
	})
}
