package streamer

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
)

// One stream connection: what its shard knows of it, and the three ways the
// shard acts on it — queue a frame (enqueue), end it once its queue is
// written (closeGracefully), end it now (drop). Its outgoing queue is in
// queue.go, the writing of that queue in writer.go.

// Disconnect reasons (the disconnects metric's label).
const (
	reasonGone     = "client_gone"   // a write failed: the peer went away
	reasonSlow     = "slow"          // the queue overflowed: the client reads too slowly
	reasonTimeout  = "write_timeout" // no byte was taken for WriteTimeout
	reasonDrain    = "drain"         // the pod is stopping
	reasonShutdown = "shutdown"      // closed at exit
	reasonClosed   = "client_close"  // a WebSocket client said goodbye
)

// conn is one stream. After attach, only its shard's writer touches it.
type conn struct {
	nc net.Conn
	fd int // raw socket for non-blocking writes; -1: use nc with short deadlines
	t  transport
	ip netip.Addr

	// lastSent is the highest message id queued to this client: fan-out
	// skips frames at or below it, so a message is never sent twice, even
	// when it is both in a resume backlog and in flight on the bus.
	lastSent int64
	// The outgoing queue (queue.go).
	queue  []*frame
	off    int // bytes of queue[0] already written
	qbytes int // bytes queued and not yet written
	limit  int // qbytes beyond which the client is too slow
	// stuckSince is when the socket last refused bytes (0: not stuck).
	stuckSince time.Time
	closing    bool   // close once the queue is written
	closeWhy   string // the disconnect reason once closing
	closed     bool
	dirty      bool
	added      bool   // the shard has taken it (evAdd)
	sh         *shard // set by attach, never changed
	// wid is the connection's id in its shard's peer watch (0: not watched).
	wid uint64
	// spectator marks a stream that asked for the spectator events
	// (?spectator=1): the named room event goes to these only.
	spectator bool
}

// enqueue adds f to c's queue; a client whose queue overflows is dropped.
func (sh *shard) enqueue(c *conn, f *frame) {
	if c.closed || c.closing {
		return
	}
	if !c.push(f) {
		return
	}
	if c.over() {
		sh.h.s.met.queueDrops.Inc()
		sh.drop(c, reasonSlow)
		return
	}
	sh.markDirty(c)
}

// closeGracefully ends c once its queue is written: with final, or by
// default with a jittered retry hint and the end of the stream (SSE) or a
// "service restart" close frame (WebSocket), so the client comes back soon,
// though not all clients at once.
func (sh *shard) closeGracefully(c *conn, final *frame, reason string) {
	if final != nil {
		sh.enqueue(c, final)
	} else if c.t == wsText {
		sh.enqueue(c, wsRestartFrame)
	} else {
		sh.enqueue(c, sh.h.s.jitteredRetry())
		sh.enqueue(c, endFrame)
	}
	c.closing = true
	c.closeWhy = reason
	sh.markDirty(c)
}

// drop closes c at once and forgets it.
func (sh *shard) drop(c *conn, reason string) {
	if c.closed {
		return
	}
	c.closed = true
	if c.added {
		sh.n.Add(-1)
		sh.nclosed++
	}
	delete(sh.stuck, c)
	c.release()
	if c.wid != 0 {
		sh.watch.remove(c.fd)
		delete(sh.watched, c.wid)
	}
	_ = c.nc.Close()
	sh.h.s.closed(c, reason)
}

// jitteredRetry is the retry hint of a draining pod: the configured delay
// spread over ±50% so its clients do not all return in the same instant.
func (s *Server) jitteredRetry() *frame {
	d := s.cfg.RetryHint
	j := time.Duration(rand.Int64N(int64(d) + 1))
	return retryFrame(d/2 + j)
}

// wsRestartFrame tells a WebSocket client the server restarts: reconnect.
var wsRestartFrame = wsCloseFrame(1012, "service restart")
