package streamer

import (
	"net"
	"time"
)

// The connection writer: a shard writes a connection's queue to its socket
// without ever waiting for the client. A raw socket gets one non-blocking
// writev of the queued frames (rawio_linux.go); any other connection a write
// through net.Conn with a deadline too short to hold the shard. What the
// socket does not take stays queued, the connection joins the shard's stuck
// set and is tried again every stuckRetry; one that takes no byte for
// WriteTimeout is dropped.

// stuckRetry is how soon a writer retries sockets whose buffers were full.
const stuckRetry = 10 * time.Millisecond

// retryStuck writes again to the stuck sockets, and drops those that have
// taken no byte for WriteTimeout.
func (sh *shard) retryStuck() {
	now := time.Now()
	timeout := sh.h.s.cfg.WriteTimeout
	for c := range sh.stuck {
		sh.flush(c)
		if !c.closed && !c.stuckSince.IsZero() && now.Sub(c.stuckSince) > timeout {
			sh.drop(c, reasonTimeout)
		}
	}
}

// flush writes what the socket takes of c's queue, without blocking.
func (sh *shard) flush(c *conn) {
	for len(c.queue) > 0 {
		bufs, want := c.pending(sh.bufs[:0])
		n, err := sh.write(c, bufs)
		clear(bufs)
		if err != nil {
			sh.drop(c, reasonGone)
			return
		}
		c.consume(n)
		if n < want {
			// The socket buffer is full: wait for the client.
			if n > 0 || c.stuckSince.IsZero() {
				c.stuckSince = time.Now()
			}
			sh.stuck[c] = struct{}{}
			return
		}
	}
	c.stuckSince = time.Time{}
	delete(sh.stuck, c)
	c.shrink()
	if c.closing {
		sh.drop(c, c.closeWhy)
	}
}

// write writes bufs once: raw writev where the socket allows it, otherwise
// through net.Conn with a deadline short enough never to hold the shard.
func (sh *shard) write(c *conn, bufs [][]byte) (int, error) {
	if c.fd >= 0 {
		return writeRaw(c.fd, sh.iov, bufs)
	}
	total := 0
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Millisecond))
	for _, b := range bufs {
		n, err := c.nc.Write(b)
		total += n
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return total, nil
			}
			return total, err
		}
	}
	return total, nil
}
