package streamer

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The hub owns every stream connection once its handshake is done. It is
// sharded (centrifuge's habit) so that no one lock or goroutine is hot: each
// shard has one writer goroutine that owns its connections outright — no
// goroutine per stream, so an idle stream costs only its socket and a small
// struct. Writers never block: they write with non-blocking writev, keep what
// the socket did not take in the connection's bounded queue, and retry soon.

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
	queue    []*frame
	off      int // bytes of queue[0] already written
	qbytes   int // bytes queued and not yet written
	limit    int // qbytes beyond which the client is too slow
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
	wheel  [][]*conn
	hand   int // the slot pinged at the next tick
	slot   int // the slot the last new connection went to
	stuck  map[*conn]struct{}
	dirty  []*conn
	live   []*frame
	iov    []iovec
	bufs   [][]byte
	spare  []event
	closed bool
	// n counts the shard's streams, for Drain to spread its closes.
	n atomic.Int64
	// watch reports SSE sockets whose client closed (nil: not available);
	// watched maps its ids to the connections.
	watch   *peerWatch
	watched map[uint64]*conn
	nextWID uint64
}

// hub is the set of shards plus the recent-message ring they are fed from.
type hub struct {
	s *Server
	// mu orders fan-out against attach: a frame is pushed to the ring and to
	// every shard's inbox under mu, and a new connection takes its backlog
	// from the ring and enters its shard's inbox under mu too, so it gets
	// every later frame and none twice.
	mu      sync.Mutex
	ring    *ring
	history *frame // cached history event; nil when a message made it stale
	stats   *frame // latest stats event
	room    *frame // latest room event (spectator streams)
	shards  []*shard
	next    atomic.Uint32
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newHub(s *Server, shards, ringSize int) *hub {
	h := &hub{s: s, ring: newRing(ringSize), stop: make(chan struct{})}
	for i := 0; i < shards; i++ {
		sh := &shard{h: h, wake: make(chan struct{}, 1), stuck: map[*conn]struct{}{},
			watch: newPeerWatch(), watched: map[uint64]*conn{},
			wheel: make([][]*conn, pingSlots(s.cfg.PingInterval)),
			iov:   make([]iovec, 0, maxIov), bufs: make([][]byte, 0, maxIov)}
		h.shards = append(h.shards, sh)
	}
	return h
}

// pingSlots is how many ticks the ping interval is cut into: one per 100 ms
// at most 100, so at the default 10 s each tick pings 1% of the streams.
func pingSlots(interval time.Duration) int {
	return max(1, min(100, int(interval/(100*time.Millisecond))))
}

// start launches the shard writers; stopHub ends them, closing every stream.
func (h *hub) start() {
	for _, sh := range h.shards {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			sh.run(h.stop)
		}()
		if sh.watch != nil {
			go sh.watch.run(sh.postPeers)
		}
	}
}

func (h *hub) stopHub() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	h.wg.Wait()
}

// publish appends a message to the ring and fans its frame out.
func (h *hub) publish(e entry) {
	h.mu.Lock()
	h.ring.push(e)
	h.history = nil
	for _, sh := range h.shards {
		sh.post(event{kind: evFrame, f: e.f})
	}
	h.mu.Unlock()
}

// setStats records the latest stats (what a new stream gets after its
// history) and, when broadcast is set, fans them out to every stream.
func (h *hub) setStats(f *frame, broadcast bool) {
	h.mu.Lock()
	h.stats = f
	if broadcast {
		for _, sh := range h.shards {
			sh.post(event{kind: evFrame, f: f})
		}
	}
	h.mu.Unlock()
}

// setRoom records the latest room event and sends it to the spectator streams.
func (h *hub) setRoom(f *frame) {
	h.mu.Lock()
	h.room = f
	for _, sh := range h.shards {
		sh.post(event{kind: evFrame, f: f})
	}
	h.mu.Unlock()
}

// hasRoom reports whether a room event has been built.
func (h *hub) hasRoom() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.room != nil
}

// historyLocked returns the history event of the last 100 messages, built
// once per new message however many clients connect.
func (h *hub) historyLocked() *frame {
	if h.history == nil {
		h.history = historyFrame(h.ring.last(historySize), h.ring.newest())
	}
	return h.history
}

// attach hands a connection to a shard with its backlog: the history (fresh
// clients), or the messages after `since` (resuming clients; older holds
// those read from Postgres, ending at olderTo). It returns needFrom > 0 when
// the resume reaches below the ring and Postgres must supply the messages
// after needFrom first; the caller reads them and calls attach again.
func (h *hub) attach(c *conn, resume bool, since int64, older []*frame, olderTo int64) (needFrom, floor int64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var backlog []*frame
	newest := h.ring.newest()
	switch {
	case !resume || since > newest+int64(h.s.cfg.MaxReplay):
		// A fresh client, or one that claims ids this room never had (a
		// reset room): it starts from the history.
		hist := h.historyLocked()
		backlog = append(backlog, hist)
		c.lastSent = newest
	default:
		from := since
		if len(older) > 0 {
			from = olderTo
		}
		if floor := h.ring.floor(); from < floor {
			return from, floor, true
		}
		backlog = append(older, h.ring.after(from)...)
		c.lastSent = max(since, newest)
	}
	if h.stats != nil {
		backlog = append(backlog, h.stats)
	}
	if c.spectator && h.room != nil {
		backlog = append(backlog, h.room)
	}
	for _, f := range backlog {
		if b := f.bytes(c.t); b != nil {
			c.queue = append(c.queue, f)
			c.qbytes += len(b)
		}
	}
	c.limit = c.qbytes + h.s.cfg.QueueBytes
	sh := h.shards[int(h.next.Add(1))%len(h.shards)]
	c.sh = sh
	return 0, 0, sh.post(event{kind: evAdd, c: c})
}

// shardOf returns the shard that owns c (nil if it was never attached).
func (h *hub) shardOf(c *conn) *shard { return c.sh }

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

// stuckRetry is how soon a writer retries sockets whose buffers were full.
const stuckRetry = 10 * time.Millisecond

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

// enqueue adds f to c's queue; a client whose queue overflows is dropped.
func (sh *shard) enqueue(c *conn, f *frame) {
	if c.closed || c.closing {
		return
	}
	b := f.bytes(c.t)
	if b == nil {
		return
	}
	c.queue = append(c.queue, f)
	c.qbytes += len(b)
	if c.qbytes > c.limit {
		sh.h.s.met.queueDrops.Inc()
		sh.drop(c, reasonSlow)
		return
	}
	sh.markDirty(c)
}

func (sh *shard) markDirty(c *conn) {
	if !c.dirty {
		c.dirty = true
		sh.dirty = append(sh.dirty, c)
	}
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

// inboxCheck is how many connections a writer flushes between looks at its
// inbox: a message that arrives during a long flush (a stats event to every
// client, a burst of new connections) joins it instead of waiting for its end.
const inboxCheck = 32

func (sh *shard) flushDirty() {
	// sh.dirty may grow while it is walked: events taken mid-flush mark more
	// connections dirty (those not reached yet are dirty already and write
	// the new frame in the same writev).
	for i := 0; i < len(sh.dirty); i++ {
		if i%inboxCheck == inboxCheck-1 && len(sh.wake) > 0 {
			<-sh.wake
			sh.takeInbox()
		}
		c := sh.dirty[i]
		sh.dirty[i] = nil
		c.dirty = false
		if !c.closed {
			sh.flush(c)
		}
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
		bufs := sh.bufs[:0]
		for i, f := range c.queue {
			if i == maxIov {
				break
			}
			b := f.bytes(c.t)
			if i == 0 {
				b = b[c.off:]
			}
			bufs = append(bufs, b)
		}
		want := 0
		for _, b := range bufs {
			want += len(b)
		}
		n, err := sh.write(c, bufs)
		for i := range bufs {
			bufs[i] = nil
		}
		if err != nil {
			sh.drop(c, reasonGone)
			return
		}
		sh.consume(c, n)
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
	if cap(c.queue) > 16 {
		c.queue = nil // give back what a burst grew
	}
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

// consume drops n written bytes from the head of c's queue. The queue keeps
// its array (no allocation per message and client).
func (sh *shard) consume(c *conn, n int) {
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
	for i := range c.queue {
		c.queue[i] = nil
	}
	c.queue = nil
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

// drainSome asks the shards to close k streams in all, spread over them in
// proportion to what they hold (round-robin from a rotating start, so no
// shard is always first).
func (h *hub) drainSome(k, rot int) {
	want := make([]int, len(h.shards))
	have := make([]int, len(h.shards))
	for i, sh := range h.shards {
		have[i] = int(sh.n.Load())
	}
	for k > 0 {
		progress := false
		for j := range h.shards {
			i := (rot + j) % len(h.shards)
			if k > 0 && want[i] < have[i] {
				want[i]++
				k--
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	for i, sh := range h.shards {
		if want[i] > 0 {
			sh.post(event{kind: evDrain, n: want[i]})
		}
	}
}
