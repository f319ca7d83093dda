package streamer

import (
	"context"
	"errors"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/model"
)

// The feed turns the Redis subscription into a gap-free, ordered sequence of
// messages. Redis pub/sub may lose messages (a reconnect) and two API pods may
// publish out of commit order, but ids are dense and strictly increasing in
// commit order: the feed delivers id last+1 and nothing else, holds later ids
// back, and when the missing one does not come within GapWait it reads it from
// Postgres, the source of truth. After a Redis reconnect it reads whatever
// came after the last id at once.

// busEvent is what the receiver hands the feed.
type busEvent struct {
	payload     string
	reconnected bool
}

type feed struct {
	s       *Server
	in      chan busEvent
	hint    chan int64
	last    int64
	want    int64 // an id known to exist (room counter), not yet delivered
	pending map[int64]model.Message
}

func newFeed(s *Server) *feed {
	return &feed{s: s, in: make(chan busEvent, 4096), hint: make(chan int64, 1), pending: map[int64]model.Message{}}
}

// receive reads the subscription until ctx ends. go-redis reconnects and
// resubscribes on its own; the first confirmation after a failure tells the
// feed that messages may have been missed.
func (f *feed) receive(ctx context.Context, b *bus.Bus, ps *redis.PubSub) {
	// A blocked receive does not watch ctx: closing the subscription does.
	var mu sync.Mutex
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		_ = ps.Close()
	})
	defer stop()
	failed := false
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !failed {
				// An idle room: make sure the connection is still alive.
				if perr := ps.Ping(ctx); perr == nil {
					continue
				}
			}
			if !failed {
				f.s.log.Warn("redis subscription lost; will fill from Postgres when it is back", "err", err)
			}
			f.s.met.redisErrors.Inc()
			failed = true
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		var ev busEvent
		switch m := msg.(type) {
		case *redis.Subscription:
			if b.Dropped(m) {
				// The server ended it (a cluster node gave up the slot): a
				// new subscription finds the node that serves it now, and
				// what was published meanwhile is filled from Postgres.
				f.s.log.Warn("redis ended the subscription; subscribing again", "kind", m.Kind)
				f.s.met.redisErrors.Inc()
				failed = true
				mu.Lock()
				_ = ps.Close()
				next, err := b.Subscribe(ctx)
				for err != nil && ctx.Err() == nil {
					mu.Unlock()
					f.s.log.Warn("redis subscription refused; trying again", "err", err)
					select {
					case <-time.After(backoff):
					case <-ctx.Done():
					}
					backoff = min(2*backoff, 2*time.Second)
					mu.Lock()
					next, err = b.Subscribe(ctx)
				}
				if err != nil {
					mu.Unlock()
					return
				}
				ps = next
				mu.Unlock()
				if ctx.Err() != nil {
					_ = ps.Close()
					return
				}
				continue
			}
			if !failed {
				continue
			}
		case *redis.Message:
			ev.payload = m.Payload
		default:
			continue
		}
		if failed {
			failed = false
			f.s.log.Info("redis subscription back")
			select {
			case f.in <- busEvent{reconnected: true}:
			case <-ctx.Done():
				return
			}
		}
		if ev.payload != "" {
			select {
			case f.in <- ev:
			case <-ctx.Done():
				return
			}
		}
	}
}

// noteLast tells the feed the room's last id (from its counters): if it is
// ahead, the newest messages were lost on the bus and will be filled.
func (f *feed) noteLast(id int64) {
	select {
	case f.hint <- id:
	default:
	}
}

// run orders and delivers messages until ctx ends.
func (f *feed) run(ctx context.Context) {
	gap := time.NewTimer(time.Hour)
	gap.Stop()
	armed := false
	arm := func(d time.Duration) {
		if !armed {
			gap.Reset(d)
			armed = true
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-f.in:
			if ev.reconnected {
				f.fill(ctx)
				break
			}
			m, err := bus.Decode(ev.payload)
			if err != nil {
				f.s.log.Warn("ignoring a bad bus message", "err", err)
				break
			}
			f.offer(m, time.Now())
		case id := <-f.hint:
			f.want = max(f.want, id)
		case <-gap.C:
			armed = false
			f.fill(ctx)
		}
		if len(f.pending) > 0 || f.want > f.last {
			arm(f.s.cfg.GapWait)
		}
	}
}

// offer takes one message from the bus.
func (f *feed) offer(m model.Message, at time.Time) {
	switch {
	case m.ID <= f.last:
		return // already delivered (a duplicate, or filled from Postgres)
	case m.ID == f.last+1:
		f.deliver(m, at)
		f.deliverPending(at)
	default:
		f.pending[m.ID] = m
	}
}

// deliverPending delivers the held-back messages that are now next in line.
func (f *feed) deliverPending(at time.Time) {
	for {
		m, ok := f.pending[f.last+1]
		if !ok {
			return
		}
		delete(f.pending, m.ID)
		f.deliver(m, at)
	}
}

// fillPage is how many messages one gap-filling query reads.
const fillPage = 1000

// fill reads from Postgres every message after the last delivered one, then
// delivers what was held back. On failure it leaves the gap for the next try.
func (f *feed) fill(ctx context.Context) {
	f.s.met.gapFills.Inc()
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msgs, err := f.s.st.MessagesAfter(qctx, f.last, fillPage)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				f.s.log.Warn("could not fill a gap from Postgres; will retry", "after", f.last, "err", err)
			}
			return
		}
		now := time.Now()
		for _, m := range msgs {
			if m.ID > f.last {
				delete(f.pending, m.ID)
				f.deliver(m, now)
			}
		}
		if len(msgs) < fillPage {
			break
		}
	}
	// Every id up to want was committed before this fill began, so one
	// Postgres did not return is deleted (a moderator's delete): the feed
	// is past it, and does not look for it again.
	f.last = max(f.last, f.want)
	f.want = 0
	for id := range f.pending {
		if id <= f.last {
			delete(f.pending, id)
		}
	}
	if len(f.pending) > 0 {
		// Postgres has nothing between the last id and the held-back ones:
		// ids were skipped (never committed). Deliver the rest in order.
		ids := make([]int64, 0, len(f.pending))
		for id := range f.pending {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		now := time.Now()
		for _, id := range ids {
			f.deliver(f.pending[id], now)
			delete(f.pending, id)
		}
	}
}

// deliver encodes m once and fans it out.
func (f *feed) deliver(m model.Message, at time.Time) {
	js, err := encodeMessage(m)
	if err != nil {
		f.s.log.Error("cannot encode a message; skipping it", "id", m.ID, "err", err)
		f.last = m.ID
		return
	}
	f.s.hub.publish(entry{id: m.ID, json: js, f: messageFrame(m.ID, js, at)})
	f.last = m.ID
	f.s.met.messages.Inc()
}
