package streamer

import (
	"errors"
	"net"
	"time"

	"github.com/chatr-ai/chatr/internal/uring"
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
		if !sh.wrote(c, n, want, err) {
			return
		}
	}
	sh.emptied(c)
}

// wrote applies one write of c's queue (n of want bytes taken, or err) and
// reports whether the socket may take more now.
func (sh *shard) wrote(c *conn, n, want int, err error) bool {
	if err != nil {
		sh.drop(c, reasonGone)
		return false
	}
	c.consume(n)
	if n < want {
		// The socket buffer is full: wait for the client.
		if n > 0 || c.stuckSince.IsZero() {
			c.stuckSince = time.Now()
		}
		sh.stuck[c] = struct{}{}
		return false
	}
	return true
}

// emptied is called once c's whole queue is written.
func (sh *shard) emptied(c *conn) {
	c.stuckSince = time.Time{}
	delete(sh.stuck, c)
	c.shrink()
	if c.closing {
		sh.drop(c, c.closeWhy)
	}
}

// batchSize is how many connections' writes go in one batch.
const batchSize = 128

// sender sends a batch of writes, each to its own socket, in a few system
// calls (internal/uring).
type sender interface {
	Add(fd int, bufs [][]byte) bool
	Flush() ([]uring.Result, error)
	Close() error
}

// newSender returns a batch sender, or nil where io_uring cannot be used
// (then the shards write with writev; the first shard to find out logs why).
func (h *hub) newSender() sender {
	r, err := uring.New(batchSize, maxIov)
	if err != nil {
		h.uringOnce.Do(func() {
			h.s.log.Info("stream writes use writev: io_uring is not available", "err", err)
		})
		return nil
	}
	h.s.met.batchedWrites.Set(1)
	return r
}

// addToBatch queues c's pending bytes (as one writev would take them) to
// the batch, sending the batch first if it is full.
func (sh *shard) addToBatch(c *conn) {
	bufs, want := c.pending(sh.bufs[:0])
	if !sh.batch.Add(c.fd, bufs) {
		sh.sendBatch()
		if sh.batch == nil || !sh.batch.Add(c.fd, bufs) {
			clear(bufs)
			sh.flush(c)
			return
		}
	}
	clear(bufs)
	sh.batched = append(sh.batched, c)
	sh.batchWant = append(sh.batchWant, want)
}

// sendBatch sends the batch and applies each connection's result as flush
// would. A connection with more queued than one write takes (a long
// backlog) goes on with writev; so does every connection of a batch the
// ring never sent, and the shard then stops batching. One whose send may
// or may not have gone (the ring failed under it) is dropped: it resumes
// from its last id, where a second write could have duplicated a message.
func (sh *shard) sendBatch() {
	if len(sh.batched) == 0 {
		return
	}
	res, err := sh.batch.Flush()
	if err != nil {
		sh.h.s.log.Warn("batched stream writes failed: writing with writev from now on", "err", err)
		_ = sh.batch.Close()
		sh.batch = nil
		sh.h.s.met.batchedWrites.Set(0)
	}
	for i, c := range sh.batched {
		sh.batched[i] = nil
		switch {
		case i >= len(res) || errors.Is(res[i].Err, uring.ErrNotSent):
			sh.flush(c)
		case sh.wrote(c, res[i].N, sh.batchWant[i], res[i].Err):
			if len(c.queue) > 0 {
				sh.flush(c)
			} else {
				sh.emptied(c)
			}
		}
	}
	sh.batched = sh.batched[:0]
	sh.batchWant = sh.batchWant[:0]
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
