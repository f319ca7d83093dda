package streamer_test

import (
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/internal/serve"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// counterValue reads a counter of the pod's registry (0 when absent).
func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}

// firstType waits for the stream's first event and returns its type.
func firstType(t *testing.T, s *stream) string {
	t.Helper()
	s.waitFor(t, "a first event", 15*time.Second, func(s *stream) bool { return len(s.types) > 0 })
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.types[0]
}

// Last-Event-IDs a client should never send, or that the room no longer
// has, get a fresh connect: the history, then every new message. An id
// beyond the room's newest one (a room whose ids were reset, another room's
// id, a huge number) used to be taken at its word, and every message up to
// it was silently withheld; now it is answered with the history and counted.
func TestResumeEdgeCases(t *testing.T) {
	r := newRoom(t, "")
	r.post(t, 5)
	p := startPod(t, r, "edge", nil)
	head := func() int64 { all := r.all(t); return all[len(all)-1].ID }
	for _, c := range []struct {
		name        string
		id          func() string
		beyondHead  bool
		wantHistory bool
	}{
		{"malformed", func() string { return "abc" }, false, true},
		{"negative", func() string { return "-3" }, false, true},
		{"huge, not an int64", func() string { return "99999999999999999999" }, false, true},
		{"the largest int64", func() string { return "9223372036854775807" }, true, true},
		{"one beyond the head", func() string { return strconv.FormatInt(head()+1, 10) }, true, true},
		{"a reset room's old id", func() string { return strconv.FormatInt(head()+5000, 10) }, true, true},
		{"the head", func() string { return strconv.FormatInt(head(), 10) }, false, false},
		{"zero", func() string { return "0" }, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c := struct {
				name, id                string
				beyondHead, wantHistory bool
			}{c.name, c.id(), c.beyondHead, c.wantHistory}
			before := counterValue(t, p.srv.Gatherer(), "chatr_streamer_resumes_beyond_head_total")
			s, stop := openSSE(t, p.url, c.id)
			defer stop()
			got := firstType(t, s)
			if c.wantHistory && got != "history" {
				t.Fatalf("Last-Event-ID %q: first event %q, want the history", c.id, got)
			}
			if !c.wantHistory && got == "history" {
				t.Fatalf("Last-Event-ID %q: a valid resume got the history", c.id)
			}
			have := len(s.snapshot())
			m := r.post(t, 1)[0]
			s.waitFor(t, "the new message", 15*time.Second, func(s *stream) bool {
				return len(s.msgs) > have && s.msgs[len(s.msgs)-1].ID == m.ID
			})
			after := counterValue(t, p.srv.Gatherer(), "chatr_streamer_resumes_beyond_head_total")
			if c.beyondHead != (after > before) {
				t.Errorf("Last-Event-ID %q: beyond-head resumes %v → %v", c.id, before, after)
			}
		})
	}
}

// A resume from an id the pod has not seen yet but the room has (another
// pod delivered it first) is a resume, not a fresh connect: the counter row
// says the id exists.
func TestResumeAheadOfThePod(t *testing.T) {
	r := newRoom(t, "")
	r.post(t, 3)
	p := startPod(t, r, "behind", nil)
	ahead := r.insertOnly(t, 1)[0] // committed, never published: this pod has not seen it
	s, stop := openSSE(t, p.url, strconv.FormatInt(ahead.ID, 10))
	defer stop()
	next := r.post(t, 1)[0]
	s.until(t, 1)
	if got := firstType(t, s); got == "history" {
		t.Fatalf("a resume from an id the room has got the history")
	}
	checkExactly(t, "resumed ahead of the pod", s.snapshot()[:1], r.all(t)[next.ID-1:next.ID])
}

// A resume that needs more than MaxReplay messages from Postgres (older
// than the ring) gets the history; one within it gets exactly what it
// missed, from Postgres and the ring.
func TestResumeBeyondReplayLimit(t *testing.T) {
	r := newRoom(t, "")
	r.post(t, 130)
	// The ring holds the newest 100 (31..130): its floor is 30.
	p := startPod(t, r, "replay", func(c *streamer.Config) { c.RingSize = 100; c.MaxReplay = 10 })
	all := r.all(t)
	far, stopFar := openSSE(t, p.url, "2") // 28 from Postgres: more than 10
	defer stopFar()
	if got := firstType(t, far); got != "history" {
		t.Errorf("a resume 28 below the ring with MaxReplay 10: first event %q, want the history", got)
	}
	within, stopWithin := openSSE(t, p.url, "25") // 5 from Postgres, 100 from the ring
	defer stopWithin()
	within.until(t, 105)
	if got := firstType(t, within); got == "history" {
		t.Fatalf("a resume 5 below the ring got the history")
	}
	checkExactly(t, "resume within the limit", within.snapshot(), all[25:])
}

// faultRedisURL is the shared Redis reached through a proxy the test controls.
func faultRedisURL(t *testing.T) (string, *testenv.FaultProxy) {
	t.Helper()
	u, err := url.Parse(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.NewFaultProxy(t, u.Host)
	u.Host = p.Addr()
	return u.String(), p
}

// Redis frozen, then down, under open streams: the streams stay open, the
// messages committed meanwhile (their publish could not happen) arrive from
// Postgres while Redis is still away, and once it is back every message has
// arrived exactly once, in order.
func TestStreamsSurviveRedisFaults(t *testing.T) {
	redisURL, proxy := faultRedisURL(t)
	r := newRoom(t, redisURL)
	r.post(t, 3)
	p := startPod(t, r, "redisless", nil)
	sse, _ := openSSE(t, p.url, "")
	ws, _ := openWS(t, p.url, "")
	clients := []*stream{sse, ws}
	for _, s := range clients {
		s.until(t, 3)
	}
	for _, fault := range []struct {
		name    string
		on, off func()
	}{{"frozen", proxy.Pause, proxy.Resume}, {"down", proxy.Down, proxy.Up}} {
		fault.on()
		r.insertOnly(t, 2) // the API could not publish these
		n := len(r.all(t))
		for _, s := range clients {
			s.waitFor(t, "messages from Postgres while Redis is "+fault.name, 30*time.Second,
				func(s *stream) bool { return len(s.msgs) >= n })
		}
		fault.off()
	}
	r.post(t, 2)
	want := r.all(t)
	for i, s := range clients {
		s.until(t, len(want))
		checkExactly(t, "client "+strconv.Itoa(i), s.snapshot(), want)
		s.mu.Lock()
		if s.ends != 0 {
			t.Errorf("client %d: the stream ended during the Redis faults", i)
		}
		s.mu.Unlock()
	}
}

// The production HTTP server bounds reading a request (ReadTimeout); a
// stream, once the streamer has taken its connection over, must outlive
// that bound: it still gets pings and messages long after it.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	r := newRoom(t, "")
	p := startPod(t, r, "bounded", func(c *streamer.Config) { c.PingInterval = 100 * time.Millisecond })
	srv := serve.NewServer(p.srv.Handler(), serve.Options{ReadTimeout: readTimeout, IdleTimeout: readTimeout})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + ln.Addr().String()

	sse, _ := openSSE(t, base, "")
	ws, _ := openWS(t, base, "")
	past := time.Now().Add(3 * readTimeout)
	var pingsThen []int
	for _, s := range []*stream{sse, ws} {
		s.waitFor(t, "the stream open past the read timeout", 15*time.Second, func(*stream) bool { return time.Now().After(past) })
		s.mu.Lock()
		pingsThen = append(pingsThen, s.pings)
		s.mu.Unlock()
	}
	m := r.post(t, 1)[0]
	for i, s := range []*stream{sse, ws} {
		s.waitFor(t, "a ping and a message after the read timeout", 15*time.Second, func(s *stream) bool {
			return s.pings > pingsThen[i] && len(s.msgs) > 0 && s.msgs[len(s.msgs)-1].ID == m.ID
		})
		s.mu.Lock()
		if s.ends != 0 {
			t.Errorf("stream %d ended", i)
		}
		s.mu.Unlock()
	}
}
