package streamer

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// A shard's event loop. One goroutine per shard (run) owns the shard's
// connections: everything that happens to them arrives as an event in the
// inbox, is handled in order, and ends in a write pass over the connections
// it made dirty. Between events the loop wakes for the ping wheel's tick and
// for retries of stuck sockets; it never blocks on a client.

// evKind is what a shard is asked to do.
type evKind uint8

const (
	evFrame evKind = iota // fan a frame out to every connection
	evAdd                 // take a new connection
	evSend                // send a frame to one connection
	evClose               // close one connection gracefully
	evDrop                // drop one connection now
	evDrain               // close n connections gracefully (all when n < 0)
	evPeer                // the peer watch saw connection wid close (gone) or half-close
)

type event struct {
	kind   evKind
	f      *frame
	c      *conn
	n      int
	reason string
	wid    uint64
	gone   bool
}

type shard struct {
	h     *hub
	mu    sync.Mutex
	inbox []event
	wake  chan struct{}

	// Owned by the writer goroutine.
	conns []*conn // closed ones are removed lazily (see compact)
	// nclosed counts the closed connections still in conns.
	nclosed int
	// wheel spreads the pings over the ping interval: the connections in
	// slot i get theirs when the hand reaches i, one slot per tick, so a
	// ping never costs one write to every connection at once (which would
	// delay a message arriving meanwhile). Closed ones are removed when
	// their slot comes round.
	wheel [][]*conn
	hand  int // the slot pinged at the next tick
	slot  int // the slot the last new connection went to
	// stuck holds the connections whose socket refused bytes (writer.go).
	stuck map[*conn]struct{}
	// dirty lists the connections queued to since the last write pass, each
	// once: whatever was queued to one meanwhile leaves in one writev.
	dirty []*conn
	// live holds the message frames of this pass, for the fan-out latency.
	live []*frame
	// iov and bufs are the writer's scratch for one writev.
	iov  []iovec
	bufs [][]byte
	// batch sends a pass's writes in a few system calls (nil: one writev
	// per connection); batched holds the connections of the batch being
	// filled and batchWant the bytes each was given.
	batch     sender
	batched   []*conn
	batchWant []int
	spare     []event // the inbox's previous array, reused
	closed    bool
	// n counts the shard's streams, for Drain to spread its closes.
	n atomic.Int64
	// watch reports SSE sockets whose client closed (nil: not available);
	// watched maps its ids to the connections.
	watch   *peerWatch
	watched map[uint64]*conn
	nextWID uint64
}

func newShard(h *hub) *shard {
	sh := &shard{h: h, wake: make(chan struct{}, 1), stuck: map[*conn]struct{}{},
		watch: newPeerWatch(), watched: map[uint64]*conn{},
		wheel: make([][]*conn, pingSlots(h.s.cfg.PingInterval)),
		iov:   make([]iovec, 0, maxIov), bufs: make([][]byte, 0, maxIov)}
	if h.s.cfg.Writes != "writev" {
		sh.batch = h.newSender()
	}
	return sh
}

// pingSlots is how many ticks the ping interval is cut into: one per 100 ms
// at most 100, so at the default 10 s each tick pings 1% of the streams.
func pingSlots(interval time.Duration) int {
	return max(1, min(100, int(interval/(100*time.Millisecond))))
}

// post queues an event for the shard's writer and wakes it. It returns
// false once the shard has stopped.
func (sh *shard) post(ev event) bool {
	sh.mu.Lock()
	if sh.closed {
		sh.mu.Unlock()
		return false
	}
	sh.inbox = append(sh.inbox, ev)
	sh.mu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
	return true
}

// postPeers queues what the peer watch saw, in one go.
func (sh *shard) postPeers(ids []uint64, gone []bool) {
	sh.mu.Lock()
	if sh.closed {
		sh.mu.Unlock()
		return
	}
	for i, id := range ids {
		sh.inbox = append(sh.inbox, event{kind: evPeer, wid: id, gone: gone[i]})
	}
	sh.mu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}
func (sh *shard) run(stop <-chan struct{}) {
	cfg := &sh.h.s.cfg
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	ping := time.NewTicker(cfg.PingInterval / time.Duration(len(sh.wheel)))
	defer ping.Stop()
	retrying := false
	for {
		select {
		case <-sh.wake:
			sh.takeInbox()
		case <-retry.C:
			retrying = false
		case <-ping.C:
			sh.pingSlot()
		case <-stop:
			sh.mu.Lock()
			sh.closed = true
			evs := sh.inbox
			sh.inbox = nil
			sh.mu.Unlock()
			for _, ev := range evs {
				if ev.kind == evAdd {
					ev.c.added = true
					sh.conns = append(sh.conns, ev.c)
					sh.n.Add(1)
				}
			}
			for _, c := range sh.conns {
				sh.drop(c, reasonShutdown)
			}
			if sh.watch != nil {
				sh.watch.stop()
			}
			if sh.batch != nil {
				_ = sh.batch.Close()
			}
			return
		}
		sh.flushDirty()
		if len(sh.stuck) > 0 {
			sh.retryStuck()
			if len(sh.stuck) > 0 && !retrying {
				retry.Reset(stuckRetry)
				retrying = true
			}
		}
		sh.compact()
	}
}

// takeInbox handles every event posted so far.
func (sh *shard) takeInbox() {
	sh.mu.Lock()
	evs := sh.inbox
	sh.inbox = sh.spare[:0]
	sh.mu.Unlock()
	for i := range evs {
		sh.handle(&evs[i])
		evs[i] = event{}
	}
	sh.spare = evs
}

// pingSlot queues a ping to the connections of the wheel's next slot.
func (sh *shard) pingSlot() {
	slot := sh.wheel[sh.hand]
	k := 0
	for _, c := range slot {
		if c.closed {
			continue
		}
		slot[k] = c
		k++
		sh.enqueue(c, pingFrame)
	}
	clear(slot[k:])
	sh.wheel[sh.hand] = slot[:k]
	sh.hand = (sh.hand + 1) % len(sh.wheel)
}

// compact removes closed connections from conns.
func (sh *shard) compact() {
	if sh.nclosed == 0 {
		return
	}
	k := 0
	for _, c := range sh.conns {
		if !c.closed {
			sh.conns[k] = c
			k++
		}
	}
	clear(sh.conns[k:])
	sh.conns = sh.conns[:k]
	sh.nclosed = 0
	if cap(sh.conns) > 64 && k < cap(sh.conns)/4 {
		sh.conns = append([]*conn(nil), sh.conns...)
	}
}

// owns reports whether c is a live connection of this shard.
func (sh *shard) owns(c *conn) bool { return c.added && !c.closed }

func (sh *shard) handle(ev *event) {
	switch ev.kind {
	case evFrame:
		f := ev.f
		if f.live {
			sh.live = append(sh.live, f)
		}
		n := 0
		// Start at a random connection, so that the same clients are not
		// always written last.
		conns := sh.conns
		start := 0
		if len(conns) > 1 {
			start = rand.IntN(len(conns))
		}
		for k := range conns {
			c := conns[(start+k)%len(conns)]
			if c.closed || f.spectator && !c.spectator {
				continue
			}
			if f.live {
				if f.id <= c.lastSent {
					continue
				}
				c.lastSent = f.id
				n++
			}
			sh.enqueue(c, f)
		}
		if n > 0 {
			sh.h.s.met.deliveries.Add(float64(n))
		}
	case evAdd:
		c := ev.c
		c.added = true
		sh.conns = append(sh.conns, c)
		// Slots are taken in turn, so that streams that connect together
		// (a drained pod's clients) are still pinged apart. The first ping
		// comes within one interval, then one every interval.
		sh.slot = (sh.slot + 1) % len(sh.wheel)
		sh.wheel[sh.slot] = append(sh.wheel[sh.slot], c)
		sh.n.Add(1)
		sh.watchPeer(c)
		sh.markDirty(c)
	case evPeer:
		c := sh.watched[ev.wid]
		if c == nil || !sh.owns(c) {
			break
		}
		if ev.gone {
			sh.drop(c, reasonGone)
			break
		}
		// A FIN: the client closed, or only shut its sending half and
		// still reads. A ping tells them apart: a closed socket answers it
		// with a reset, which the watch reports as gone; a reader just
		// gets a ping.
		sh.enqueue(c, pingFrame)
	case evSend:
		if sh.owns(ev.c) {
			sh.enqueue(ev.c, ev.f)
		}
	case evClose:
		if sh.owns(ev.c) {
			sh.closeGracefully(ev.c, ev.f, reasonClosed)
		}
	case evDrop:
		if sh.owns(ev.c) {
			sh.drop(ev.c, ev.reason)
		}
	case evDrain:
		n := ev.n
		if n < 0 {
			n = len(sh.conns)
		}
		for _, c := range sh.conns {
			if n <= 0 {
				break
			}
			if !c.closed && !c.closing {
				sh.closeGracefully(c, nil, reasonDrain)
				n--
			}
		}
	}
}

// watchPeer adds an SSE connection's socket to the shard's peer watch, so
// that its slot is released as soon as the client closes rather than at the
// next write to it (up to a ping interval and more later). WebSocket
// connections need none: their reader goroutine sees the close.
func (sh *shard) watchPeer(c *conn) {
	if sh.watch == nil || c.fd < 0 || c.t == wsText {
		return
	}
	sh.nextWID++
	if sh.watch.add(c.fd, sh.nextWID) {
		c.wid = sh.nextWID
		sh.watched[c.wid] = c
	}
}

func (sh *shard) markDirty(c *conn) {
	if !c.dirty {
		c.dirty = true
		sh.dirty = append(sh.dirty, c)
	}
}

// inboxCheck is how many connections a writer flushes between looks at its
// inbox: a message that arrives during a long flush (a stats event to every
// client, a burst of new connections) joins it instead of waiting for its end.
// With batched writes the look comes after each batch (batchSize
// connections, each costing about a third of a writev).
const inboxCheck = 32

func (sh *shard) flushDirty() {
	// sh.dirty may grow while it is walked: events taken mid-flush mark more
	// connections dirty (those not reached yet are dirty already and write
	// the new frame in the same writev). A batch being filled is sent
	// before the inbox is looked at, so a connection is never in a batch
	// and dirty again at once (its bytes would go twice).
	every := inboxCheck
	if sh.batch != nil {
		every = batchSize
	}
	for i := 0; ; i++ {
		if i == len(sh.dirty) {
			// The end of the walk is a look too: what arrived during the
			// last stretch goes out now, not after the next wake-up.
			sh.sendBatch()
			if len(sh.wake) == 0 {
				break
			}
			<-sh.wake
			sh.takeInbox()
			if i == len(sh.dirty) {
				break
			}
		} else if i%every == every-1 && len(sh.wake) > 0 {
			sh.sendBatch()
			<-sh.wake
			sh.takeInbox()
		}
		c := sh.dirty[i]
		sh.dirty[i] = nil
		c.dirty = false
		if c.closed {
			continue
		}
		if sh.batch != nil && c.fd >= 0 {
			sh.addToBatch(c)
			continue
		}
		sh.flush(c)
	}
	sh.dirty = sh.dirty[:0]
	if len(sh.live) > 0 {
		now := time.Now()
		for i, f := range sh.live {
			sh.h.s.met.fanout.Observe(now.Sub(f.at).Seconds())
			sh.live[i] = nil
		}
		sh.live = sh.live[:0]
	}
}
