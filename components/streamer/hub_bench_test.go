package streamer

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/model"
)

// The hot paths of the streamer: building a message's frame once per pod,
// the ring (push, resume lookup, history), and the fan-out of one frame to
// every connection of a shard over real sockets (socket pairs, and loopback
// TCP as in the tests). `make bench` runs them;
// docs/streamer.md quotes allocations per message.

// benchMessage is a message as the feed gets it, with 200 characters of content.
func benchMessage(id int64) model.Message {
	name := "bench_agent"
	return model.Message{ID: id, AgentID: "a1b2c3d4-0000-4000-8000-000000000001", AgentName: "bench_agent",
		Avatar: "🤖", Content: strings.Repeat("hello room ", 18) + "ok", Timestamp: time.Unix(1700000000, 0).UTC(),
		MoltbookVerified: true, MoltbookName: &name}
}

// BenchmarkEncodeMessage is the JSON of one message (once per pod).
func BenchmarkEncodeMessage(b *testing.B) {
	m := benchMessage(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeMessage(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMessageFrame is the SSE chunk and WebSocket frame of one message
// (once per pod; every connection gets the same bytes).
func BenchmarkMessageFrame(b *testing.B) {
	js, err := encodeMessage(benchMessage(1))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(js)))
	var id int64
	for b.Loop() {
		id++
		f := messageFrame(id, js, now)
		if len(f.sse) == 0 || len(f.ws) == 0 {
			b.Fatal("empty frame")
		}
	}
}

// benchRing is a full ring of size messages with ids 1..size.
func benchRing(b *testing.B, size int) *ring {
	r := newRing(size)
	js, err := encodeMessage(benchMessage(1))
	if err != nil {
		b.Fatal(err)
	}
	for id := int64(1); id <= int64(size); id++ {
		r.push(entry{id: id, json: js, f: messageFrame(id, js, time.Time{})})
	}
	return r
}

// BenchmarkRingPush is one message entering a full ring (the oldest leaves).
func BenchmarkRingPush(b *testing.B) {
	r := benchRing(b, 2048)
	e := *r.at(0)
	id := r.newest()
	b.ReportAllocs()
	for b.Loop() {
		id++
		e.id = id
		r.push(e)
	}
	if r.newest() != id || r.oldest() != id-2047 {
		b.Fatalf("ring holds %d..%d, want %d..%d", r.oldest(), r.newest(), id-2047, id)
	}
}

// BenchmarkRingResume is the lookup of a resuming client's backlog (binary
// search, then the frames after its Last-Event-ID) in the default 2,048 ring.
func BenchmarkRingResume(b *testing.B) {
	for _, behind := range []int{1, 10, 1000} {
		b.Run("behind="+strconv.Itoa(behind), func(b *testing.B) {
			r := benchRing(b, 2048)
			since := r.newest() - int64(behind)
			b.ReportAllocs()
			for b.Loop() {
				if fs := r.after(since); len(fs) != behind {
					b.Fatalf("%d frames, want %d", len(fs), behind)
				}
			}
		})
	}
}

// BenchmarkHistoryFrame is the history event of the last 100 messages, built
// once per new message however many clients connect.
func BenchmarkHistoryFrame(b *testing.B) {
	r := benchRing(b, 2048)
	b.ReportAllocs()
	for b.Loop() {
		f := historyFrame(r.last(historySize), r.newest())
		if f.id != r.newest() {
			b.Fatal("history frame without the last id")
		}
	}
}

// benchConns are n hub connections over real AF_UNIX stream sockets. Each
// connection has a descriptor of its own; when n is above pairs (the open-file
// limit: 20,000 in the container, two descriptors per socket pair), several
// connections' descriptors are duplicates of one socket, and its reader gets
// all their bytes.
type benchConns struct {
	conns   []*conn
	readers []int // the peers' descriptors, non-blocking
	buf     []byte
	read    int64
}

func newBenchConns(b *testing.B, n, pairs int, t transport) *benchConns {
	bc := &benchConns{buf: make([]byte, 1<<16)}
	pairs = min(n, pairs)
	for p := 0; p < pairs; p++ {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatalf("socketpair %d of %d: %v", p+1, pairs, err)
		}
		if err := syscall.SetNonblock(fds[0], true); err != nil {
			b.Fatal(err)
		}
		bc.readers = append(bc.readers, fds[0])
		f := os.NewFile(uintptr(fds[1]), "bench")
		per := n / pairs
		if p < n%pairs {
			per++
		}
		for range per {
			nc, err := net.FileConn(f) // a duplicate descriptor, non-blocking
			if err != nil {
				b.Fatalf("connection %d of %d: %v", len(bc.conns)+1, n, err)
			}
			bc.conns = append(bc.conns, &conn{nc: nc, fd: rawFD(nc), t: t, limit: 1 << 30})
		}
		f.Close()
	}
	b.Cleanup(func() {
		for _, c := range bc.conns {
			c.nc.Close()
		}
		for _, fd := range bc.readers {
			syscall.Close(fd)
		}
	})
	return bc
}

// newTCPConns are n hub connections over loopback TCP, as the tests use and
// as clients connect (the receiving side's TCP path runs in each write).
func newTCPConns(b *testing.B, n int, t transport) *benchConns {
	bc := &benchConns{buf: make([]byte, 1<<16)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var clients []net.Conn
	for range n {
		cl, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, cl)              // keeps the reader's socket open
		bc.readers = append(bc.readers, rawFD(cl)) // non-blocking: Go's poller made it so
		bc.conns = append(bc.conns, &conn{nc: sc, fd: rawFD(sc), t: t, limit: 1 << 30})
	}
	b.Cleanup(func() {
		for _, c := range bc.conns {
			c.nc.Close()
		}
		for _, cl := range clients {
			cl.Close()
		}
	})
	return bc
}

// drain reads everything the sockets hold.
func (bc *benchConns) drain(b *testing.B) {
	for _, fd := range bc.readers {
		for {
			n, err := syscall.Read(fd, bc.buf)
			if n > 0 {
				bc.read += int64(n)
			}
			if errors.Is(err, syscall.EAGAIN) || n < len(bc.buf) && err == nil {
				break
			}
			if err != nil || n == 0 {
				b.Fatalf("reading a stream: %d, %v", n, err)
			}
		}
	}
}

// BenchmarkFanout is one message fanned out by one shard to every connection
// it owns: the frame is queued to each and written as the shard's writer
// does (driven here by the benchmark), in io_uring batches (auto) or with
// one writev per connection (writev).
// ns/op and allocs/op are per message; ns/delivery is per message and
// connection. The sockets are drained outside the timed part every 16
// messages, and every byte is checked to have arrived.
func BenchmarkFanout(b *testing.B) {
	for _, bc := range []struct {
		conns int
		t     transport
		tcp   bool
		name  string
	}{{1000, sseChunked, false, "sse"}, {10000, sseChunked, false, "sse"}, {1000, wsText, false, "ws"}, {1000, sseChunked, true, "sse-tcp"}} {
		for _, writes := range []string{"auto", "writev"} {
			b.Run("conns="+strconv.Itoa(bc.conns)+"/"+bc.name+"/"+writes, func(b *testing.B) {
				benchFanout(b, bc.conns, bc.t, bc.tcp, writes)
			})
		}
	}
}

func benchFanout(b *testing.B, n int, t transport, tcp bool, writes string) {
	s := &Server{cfg: Config{PingInterval: 10 * time.Second, QueueBytes: 1 << 30, WriteTimeout: time.Minute, Writes: writes},
		met: newMetrics(), log: slog.New(slog.DiscardHandler)}
	sh := newHub(s, 1, historySize).shards[0]
	if writes == "auto" && sh.batch == nil {
		b.Fatal("io_uring is not available here")
	}
	var bc *benchConns
	if tcp {
		bc = newTCPConns(b, n, t)
	} else {
		bc = newBenchConns(b, n, 5000, t)
	}
	for _, c := range bc.conns {
		sh.handle(&event{kind: evAdd, c: c})
	}
	sh.flushDirty()
	js, err := encodeMessage(benchMessage(1))
	if err != nil {
		b.Fatal(err)
	}
	// One frame stands for every message: its id is raised each time, since
	// a connection skips ids it has had.
	f := messageFrame(1, js, time.Now())
	per := int64(len(f.bytes(t)))
	// A first message gives every connection its queue array (kept from
	// then on), so that what is measured is the steady state.
	sh.handle(&event{kind: evFrame, f: f})
	sh.flushDirty()
	bc.drain(b)
	b.ReportAllocs()
	i := 1
	for b.Loop() {
		i++
		f.id = int64(i)
		sh.handle(&event{kind: evFrame, f: f})
		sh.flushDirty()
		if i%16 == 0 {
			b.StopTimer()
			bc.drain(b)
			b.StartTimer()
		}
	}
	b.StopTimer()
	for len(sh.stuck) > 0 {
		bc.drain(b)
		sh.retryStuck()
	}
	bc.drain(b)
	for _, c := range bc.conns {
		if c.closed {
			b.Fatalf("a connection was closed (%s)", c.closeWhy)
		}
	}
	if want := int64(i) * per * int64(n); bc.read != want {
		b.Fatalf("read %d bytes, want %d (%d messages × %d bytes × %d connections)", bc.read, want, i, per, n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(i-1)*int64(n)), "ns/delivery")
}
