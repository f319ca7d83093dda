package streamer

import (
	"bytes"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Queuing and writing a frame costs no allocation once a queue exists.
func TestQueueKeepsItsArray(t *testing.T) {
	sh := testShard(t, time.Second)
	c := &conn{fd: -1, t: sseChunked, limit: 1 << 20}
	f := sseOnly(": x\n\n")
	allocs := testing.AllocsPerRun(1000, func() {
		sh.enqueue(c, f)
		sh.enqueue(c, f)
		c.consume(len(f.sse) + 3)
		c.consume(len(f.sse) - 3)
	})
	if allocs != 0 || len(c.queue) != 0 || c.off != 0 || c.qbytes != 0 {
		t.Fatalf("%v allocations per round; queue %d frames, off %d, %d bytes", allocs, len(c.queue), c.off, c.qbytes)
	}
}

// A frame with no form on the connection's transport is not queued and
// counts no byte; the others count their transport's bytes.
func TestQueuePushCountsTheTransportsBytes(t *testing.T) {
	for _, tc := range []struct {
		t     transport
		f     *frame
		bytes int // 0: not queued
	}{
		{sseChunked, pingFrame, len(pingFrame.sse)},
		{sseRaw, pingFrame, len(": ping\n\n")},
		{wsText, pingFrame, len(pingFrame.ws)},
		{sseChunked, endFrame, len("0\r\n\r\n")},
		{sseRaw, endFrame, 0},           // chunk framing only
		{wsText, sseOnly(": x\n\n"), 0}, // SSE only
		{sseChunked, wsRestartFrame, 0}, // WebSocket only
	} {
		c := &conn{t: tc.t}
		ok := c.push(tc.f)
		frames := 0
		if tc.bytes > 0 {
			frames = 1
		}
		if ok != (tc.bytes > 0) || c.qbytes != tc.bytes || len(c.queue) != frames {
			t.Errorf("transport %d: push %v, %d bytes in %d frames; want %d bytes", tc.t, ok, c.qbytes, len(c.queue), tc.bytes)
		}
	}
}

// Whatever the socket takes at each write, what is left to write is the
// rest of the stream, exactly: the first frame from where the last write
// stopped, then the others in order, and the byte count agrees.
func TestQueuePendingIsTheRestOfTheStream(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, tr := range []transport{sseChunked, sseRaw, wsText} {
		c := &conn{t: tr}
		var stream []byte
		for i := range 50 {
			f := eventFrame("message", []byte(`{"n":`+strconv.Itoa(i)+`}`), int64(i+1))
			c.push(f)
			stream = append(stream, f.bytes(tr)...)
		}
		if c.qbytes != len(stream) {
			t.Fatalf("transport %d: %d bytes queued, want %d", tr, c.qbytes, len(stream))
		}
		written := 0
		for len(c.queue) > 0 {
			bufs, want := c.pending(nil)
			if got := bytes.Join(bufs, nil); !bytes.Equal(got, stream[written:]) || want != len(got) || want != c.qbytes {
				t.Fatalf("transport %d after %d bytes: pending %d bytes (want %d, queued %d), equal to the rest: %v",
					tr, written, len(got), want, c.qbytes, bytes.Equal(got, stream[written:]))
			}
			// A write takes anything from one byte to all of it; now and then
			// exactly up to a frame's end.
			n := 1 + rnd.IntN(want)
			if rnd.IntN(4) == 0 {
				n = len(bufs[0])
			}
			c.consume(n)
			written += n
		}
		if written != len(stream) || c.off != 0 || c.qbytes != 0 {
			t.Fatalf("transport %d: %d of %d bytes written, off %d, %d bytes left", tr, written, len(stream), c.off, c.qbytes)
		}
	}
}

// One writev takes at most maxIov frames.
func TestQueuePendingStopsAtMaxIov(t *testing.T) {
	c := &conn{t: sseChunked}
	for range maxIov + 5 {
		c.push(pingFrame)
	}
	bufs, want := c.pending(nil)
	if len(bufs) != maxIov || want != maxIov*len(pingFrame.sse) {
		t.Fatalf("%d buffers of %d bytes, want %d of %d", len(bufs), want, maxIov, maxIov*len(pingFrame.sse))
	}
}

// An empty queue gives back an array a burst grew, and keeps a small one.
func TestQueueShrink(t *testing.T) {
	c := &conn{t: sseChunked}
	for range 4 {
		c.push(pingFrame)
	}
	c.consume(c.qbytes)
	c.shrink()
	if c.queue == nil {
		t.Fatal("a small queue lost its array")
	}
	for range 100 {
		c.push(pingFrame)
	}
	c.consume(c.qbytes)
	c.shrink()
	if c.queue != nil {
		t.Fatalf("an emptied queue kept an array of %d", cap(c.queue))
	}
}

// The bound counts from the backlog: a connection may queue QueueBytes
// beyond it, and the byte after that drops it as slow.
func TestQueueBoundDropsASlowClient(t *testing.T) {
	sh := testShard(t, time.Second)
	nc, peer := net.Pipe()
	defer peer.Close()
	c := &conn{nc: nc, fd: -1, t: sseChunked}
	for range 10 {
		c.push(eventFrame("message", bytes.Repeat([]byte("x"), 1000), 1)) // a long backlog
	}
	backlog := c.qbytes
	c.bound(3 * len(pingFrame.sse))
	if c.limit != backlog+3*len(pingFrame.sse) {
		t.Fatalf("limit %d, want %d + %d", c.limit, backlog, 3*len(pingFrame.sse))
	}
	for range 3 {
		sh.enqueue(c, pingFrame)
	}
	if c.closed || c.over() || c.qbytes != c.limit {
		t.Fatalf("at its bound: closed %v, %d of %d bytes", c.closed, c.qbytes, c.limit)
	}
	sh.enqueue(c, sseOnly("\n"))
	if !c.closed || c.queue != nil {
		t.Fatalf("a byte beyond the bound: closed %v, %d frames left", c.closed, len(c.queue))
	}
	if n := metricValue(t, sh.h.s.met.reg, "chatr_streamer_queue_drops_total", ""); n != 1 {
		t.Errorf("%v queue drops, want 1", n)
	}
	if n := metricValue(t, sh.h.s.met.reg, "chatr_streamer_disconnects_total", reasonSlow); n != 1 {
		t.Errorf("%v disconnects for %s, want 1", n, reasonSlow)
	}
	sh.enqueue(c, pingFrame) // a closed connection takes nothing more
	if c.queue != nil {
		t.Fatal("a dropped connection was queued to")
	}
}

// metricValue is the value of a counter in reg, of its series whose one
// label is label (any series when label is empty); 0 when absent.
func metricValue(t *testing.T, reg prometheus.Gatherer, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
