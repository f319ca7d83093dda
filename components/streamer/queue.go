package streamer

// A connection's outgoing queue: the frames waiting to be written, in order
// (c.queue), the bytes they hold on the connection's transport (c.qbytes),
// how much of the first one the socket has taken already (c.off), and the
// bound beyond which the client is too slow (c.limit). The queue holds
// frames, not copies of their bytes: every connection shares each frame's
// encoding. It keeps its array from one write to the next, so queuing and
// writing a message costs no allocation per client; only the shard that owns
// the connection touches it.

// push appends f to the queue. It returns false, and queues nothing, when f
// has no form on the connection's transport (a WebSocket-only frame on an
// SSE stream, the chunked body's end on a close-delimited one).
func (c *conn) push(f *frame) bool {
	b := f.bytes(c.t)
	if b == nil {
		return false
	}
	c.queue = append(c.queue, f)
	c.qbytes += len(b)
	return true
}

// bound sets the queue's bound to what it holds now plus extra: a new
// connection's backlog (its history or resume, however long) never counts
// against it, only what queues up beyond (CHATR_STREAM_QUEUE_BYTES).
func (c *conn) bound(extra int) { c.limit = c.qbytes + extra }

// over reports whether the queue holds more than its bound.
func (c *conn) over() bool { return c.qbytes > c.limit }

// pending appends to bufs the bytes waiting, for one writev: those of the
// first maxIov frames, the first without what was written of it already. It
// returns them and how many bytes they hold.
func (c *conn) pending(bufs [][]byte) ([][]byte, int) {
	want := 0
	for i, f := range c.queue {
		if i == maxIov {
			break
		}
		b := f.bytes(c.t)
		if i == 0 {
			b = b[c.off:]
		}
		bufs = append(bufs, b)
		want += len(b)
	}
	return bufs, want
}

// consume drops n written bytes from the head of the queue. The queue keeps
// its array (no allocation per message and client).
func (c *conn) consume(n int) {
	c.qbytes -= n
	i := 0
	for n > 0 && i < len(c.queue) {
		rest := len(c.queue[i].bytes(c.t)) - c.off
		if n < rest {
			c.off += n
			break
		}
		n -= rest
		i++
		c.off = 0
	}
	if i > 0 {
		k := copy(c.queue, c.queue[i:])
		clear(c.queue[k:])
		c.queue = c.queue[:k]
	}
}

// shrink gives back the array of an empty queue that a burst grew; a small
// one is kept for the next message.
func (c *conn) shrink() {
	if cap(c.queue) > 16 {
		c.queue = nil
	}
}

// release forgets every frame queued (the connection is closed).
func (c *conn) release() {
	for i := range c.queue {
		c.queue[i] = nil
	}
	c.queue = nil
}
