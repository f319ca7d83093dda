// How a stream is served, file by file. Data flows one way, and each step
// hands the next only frames that are already encoded:
//
//	Redis ─► feed ─► hub ─► shard ─► connection writer ─► socket
//
//   - feed.go turns the Redis subscription into ids in strict sequence,
//     filling gaps from Postgres, and gives each message to the hub once,
//     as one frame (frame.go) that every client gets byte for byte.
//   - hub.go (this file) is the registry: the ring of recent messages, the
//     latest stats and room events, which shard each connection lives on,
//     the broadcast entry points (publish, setStats, setRoom) and the
//     attach of a new connection with its backlog. Its lock orders fan-out
//     against attach, so a connection gets every later frame and none twice.
//   - shard.go is the event loop of one shard. The hub is sharded
//     (centrifuge's habit) so that no one lock or goroutine is hot: each
//     shard has one goroutine that owns its connections outright, takes its
//     inbox (frames, new connections, WebSocket replies, closes, drain
//     orders, what the peer watch saw), spreads the pings over a wheel and
//     retries stuck sockets. There is no goroutine per stream: an idle
//     stream costs only its socket and a small struct.
//   - conn.go is one connection's state and how it ends (queued to, closed
//     gracefully, dropped); queue.go its outgoing queue: the frames waiting,
//     the bytes they hold, the bound beyond which the client is too slow, and
//     the partial write of the first; writer.go writes a queue to its socket
//     without ever blocking the shard (one non-blocking writev, or a short
//     deadline through net.Conn where there is no raw descriptor). What the
//     socket does not take stays queued and is retried soon.
//   - rawio_linux.go (rawio_other.go elsewhere) has the raw writev and each
//     shard's epoll set that notices a client's close at once.
//
// Nothing flows back up: a connection that ends is accounted for by
// Server.closed; the signals that reach a shard from outside (the peer watch,
// a WebSocket's reader goroutine in stream.go, Drain in server.go) are events
// posted to its inbox like the frames.

package streamer

import (
	"sync"
	"sync/atomic"
)

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
	// uringOnce logs once why the shards write with writev.
	uringOnce sync.Once
	stop      chan struct{}
	wg        sync.WaitGroup
	// mod is what moderation deleted (moderation.go), guarded by mu.
	mod deletions
}

func newHub(s *Server, shards, ringSize int) *hub {
	h := &hub{s: s, ring: newRing(ringSize), stop: make(chan struct{})}
	for i := 0; i < shards; i++ {
		h.shards = append(h.shards, newShard(h))
	}
	return h
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
	if h.mod.deletedAhead(e.id) {
		// Deleted before it reached this pod: nobody gets it.
		h.mu.Unlock()
		return
	}
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
	if c.spectator && h.mod.frame != nil {
		// What was deleted lately, for a page that may still show it.
		backlog = append(backlog, h.mod.frame)
	}
	for _, f := range backlog {
		c.push(f)
	}
	c.bound(h.s.cfg.QueueBytes)
	sh := h.shards[int(h.next.Add(1))%len(h.shards)]
	c.sh = sh
	return 0, 0, sh.post(event{kind: evAdd, c: c})
}

// shardOf returns the shard that owns c (nil if it was never attached).
func (h *hub) shardOf(c *conn) *shard { return c.sh }

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
