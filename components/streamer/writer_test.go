package streamer

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// socketConn is an SSE connection over an AF_UNIX socket pair whose send
// buffer is small, so that a few frames fill it, and the peer's descriptor,
// non-blocking.
func socketConn(t *testing.T) (*conn, int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetsockoptInt(fds[1], syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[1]), "stream")
	nc, err := net.FileConn(f) // a duplicate, non-blocking
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nc.Close()
		syscall.Close(fds[0])
	})
	return &conn{nc: nc, fd: rawFD(nc), t: sseChunked, limit: 1 << 30}, fds[0]
}

// readAvailable reads what fd holds now.
func readAvailable(t *testing.T, fd int, into []byte) []byte {
	t.Helper()
	buf := make([]byte, 1<<16)
	for {
		n, err := syscall.Read(fd, buf)
		if n > 0 {
			into = append(into, buf[:n]...)
		}
		if errors.Is(err, syscall.EAGAIN) || err == nil && n == 0 {
			return into
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// queueMessages queues n distinct message frames of about 1 KB to c and
// returns the bytes they make on the wire.
func queueMessages(sh *shard, c *conn, n int) []byte {
	var want []byte
	for i := range n {
		f := eventFrame("message", []byte(`"`+strconv.Itoa(i)+string(bytes.Repeat([]byte("x"), 1000))+`"`), int64(i+1))
		sh.enqueue(c, f)
		want = append(want, f.bytes(c.t)...)
	}
	return want
}

// What the socket does not take stays queued and the connection is stuck;
// retries write the rest, in order, byte for byte. A retry that writes
// nothing leaves the time the socket got stuck as it was, one that writes
// something moves it on.
func TestFlushKeepsWhatTheSocketRefuses(t *testing.T) {
	for _, writes := range []string{"auto", "writev"} {
		t.Run(writes, func(t *testing.T) { flushKeepsWhatTheSocketRefuses(t, writes) })
	}
}

// writePass writes c as a shard's pass does (batched in "auto" mode).
func writePass(sh *shard, c *conn) {
	sh.markDirty(c)
	sh.flushDirty()
}

func flushKeepsWhatTheSocketRefuses(t *testing.T, writes string) {
	sh := testShardWrites(t, time.Second, writes)
	c, peer := socketConn(t)
	want := queueMessages(sh, c, 200)
	writePass(sh, c)
	if _, stuck := sh.stuck[c]; !stuck || c.stuckSince.IsZero() || c.qbytes == 0 || c.closed {
		t.Fatalf("a full socket: stuck %v since %v, %d bytes queued, closed %v", stuck, c.stuckSince, c.qbytes, c.closed)
	}
	since := c.stuckSince
	sh.retryStuck()
	if c.stuckSince != since {
		t.Fatal("a retry that wrote nothing moved the stuck time")
	}
	var got []byte
	for i := 0; len(sh.stuck) > 0; i++ {
		if i == 10000 {
			t.Fatalf("still stuck after %d retries, %d bytes left", i, c.qbytes)
		}
		got = readAvailable(t, peer, got)
		sh.retryStuck()
		if i == 0 && len(sh.stuck) > 0 && !c.stuckSince.After(since) {
			t.Fatal("a retry that wrote something left the stuck time")
		}
	}
	got = readAvailable(t, peer, got)
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d (equal prefix: %v)", len(got), len(want), bytes.HasPrefix(want, got))
	}
	if !c.stuckSince.IsZero() || c.qbytes != 0 || len(c.queue) != 0 || c.off != 0 || c.closed {
		t.Fatalf("written out: stuck since %v, %d bytes, %d frames, off %d, closed %v", c.stuckSince, c.qbytes, len(c.queue), c.off, c.closed)
	}
}

// A client that takes no byte for WriteTimeout is dropped at the next retry.
func TestRetryStuckDropsAfterTheWriteTimeout(t *testing.T) {
	sh := testShard(t, time.Second)
	c, _ := socketConn(t)
	sh.handle(&event{kind: evAdd, c: c})
	queueMessages(sh, c, 200)
	sh.flushDirty()
	if len(sh.stuck) != 1 || sh.n.Load() != 1 {
		t.Fatalf("%d stuck, %d streams, want 1 and 1", len(sh.stuck), sh.n.Load())
	}
	sh.retryStuck() // within the timeout: kept
	if c.closed {
		t.Fatal("dropped within the write timeout")
	}
	c.stuckSince = time.Now().Add(-sh.h.s.cfg.WriteTimeout - time.Millisecond)
	sh.retryStuck()
	if !c.closed || len(sh.stuck) != 0 || sh.n.Load() != 0 {
		t.Fatalf("after the timeout: closed %v, %d stuck, %d streams", c.closed, len(sh.stuck), sh.n.Load())
	}
	if n := metricValue(t, sh.h.s.met.reg, "chatr_streamer_disconnects_total", reasonTimeout); n != 1 {
		t.Errorf("%v disconnects for %s, want 1", n, reasonTimeout)
	}
}

// A write that fails (the peer is gone) drops the connection.
func TestFlushDropsOnAWriteError(t *testing.T) {
	for _, writes := range []string{"auto", "writev"} {
		t.Run(writes, func(t *testing.T) { flushDropsOnAWriteError(t, writes) })
	}
}

func flushDropsOnAWriteError(t *testing.T, writes string) {
	sh := testShardWrites(t, time.Second, writes)
	c, peer := socketConn(t)
	syscall.Close(peer)
	sh.enqueue(c, pingFrame)
	writePass(sh, c)
	if !c.closed {
		t.Fatal("a write to a closed peer left the connection open")
	}
	if n := metricValue(t, sh.h.s.met.reg, "chatr_streamer_disconnects_total", reasonGone); n != 1 {
		t.Errorf("%v disconnects for %s, want 1", n, reasonGone)
	}
}

// A graceful close waits for the queue: the connection ends once the last
// byte of its queue, the retry hint and the body's end are written.
func TestCloseGracefullyWritesTheQueueFirst(t *testing.T) {
	sh := testShard(t, time.Second)
	c, peer := socketConn(t)
	want := queueMessages(sh, c, 200)
	sh.closeGracefully(c, nil, reasonDrain)
	sh.flush(c)
	if c.closed {
		t.Fatal("closed with its queue unwritten")
	}
	sh.enqueue(c, pingFrame) // a closing connection takes nothing more
	var got []byte
	for i := 0; !c.closed; i++ {
		if i == 10000 {
			t.Fatalf("not closed after %d retries, %d bytes left", i, c.qbytes)
		}
		got = readAvailable(t, peer, got)
		sh.retryStuck()
	}
	got = readAvailable(t, peer, got)
	// The hint of a draining pod with a zero retry setting is "retry: 0".
	want = append(append(want, retryFrame(0).sse...), endFrame.sse...)
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes ending %q, want %d ending %q", len(got), got[max(0, len(got)-30):], len(want), want[len(want)-30:])
	}
	if n := metricValue(t, sh.h.s.met.reg, "chatr_streamer_disconnects_total", reasonDrain); n != 1 {
		t.Errorf("%v disconnects for %s, want 1", n, reasonDrain)
	}
}

// Without a raw descriptor the writer goes through net.Conn with a deadline
// short enough never to hold the shard: a peer that does not read leaves the
// connection stuck, not the shard, and the bytes arrive in order once it does.
func TestFlushThroughNetConn(t *testing.T) {
	sh := testShard(t, time.Second)
	nc, peer := net.Pipe()
	defer peer.Close()
	c := &conn{nc: nc, fd: -1, t: sseChunked, limit: 1 << 30}
	want := queueMessages(sh, c, 20)
	start := time.Now()
	sh.flush(c)
	if _, stuck := sh.stuck[c]; !stuck || c.closed || c.qbytes != len(want) {
		t.Fatalf("no reader: stuck %v, closed %v, %d of %d bytes queued", stuck, c.closed, c.qbytes, len(want))
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("a write with no reader held the shard %v", d)
	}
	read := make(chan []byte)
	go func() {
		got := make([]byte, len(want))
		_, _ = io.ReadFull(peer, got)
		read <- got
	}()
	for i := 0; len(sh.stuck) > 0; i++ {
		if i == 10000 {
			t.Fatalf("still stuck after %d retries, %d bytes left", i, c.qbytes)
		}
		sh.retryStuck()
	}
	if got := <-read; !bytes.Equal(got, want) || c.closed || c.qbytes != 0 {
		t.Fatalf("read %d bytes (equal: %v), closed %v, %d left", len(got), bytes.Equal(got, want), c.closed, c.qbytes)
	}
}
