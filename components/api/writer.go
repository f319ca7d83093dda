package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/store"
)

// The writer commits posts by group commit. Every message needs the room's
// counter row (that is what makes ids strictly increasing in commit order),
// so message inserts are serialised by a row lock whatever we do; a commit
// per post would cap throughput at one fsync and one round trip per message.
// Instead, posts that arrive while a batch is being committed wait in a
// queue and go together in the next one: one InsertMessages transaction and
// one pipelined Publish per batch. Under light load a batch is one message
// and nothing waits; under heavy load batches grow and throughput follows.
//
// One goroutine does insert → answer → publish, batch after batch, so what
// this process publishes on Redis is always in id order.

// errWriterClosed answers posts that arrive while the server shuts down.
var errWriterClosed = errors.New("the server is shutting down")

// Time bounds of one batch's steps. A batch's insert is bounded by the
// earliest deadline of its posts too (insertTimeout caps posts without one):
// a post whose poster has already been told "503, retry" must not commit
// afterwards, or the retry would be a second message.
const (
	insertTimeout  = 10 * time.Second
	publishTimeout = 2 * time.Second
)

type postResult struct {
	posted store.Posted
	err    error
}

// States of a queued post: the writer takes it, or its poster gives up
// while it still waits in the queue. Whichever comes first wins; a post
// given up is never inserted.
const (
	postQueued int32 = iota
	postTaken
	postAbandoned
)

type postReq struct {
	msg      store.NewMessage
	deadline time.Time // zero: none
	queued   time.Time // when it was submitted
	state    atomic.Int32
	done     chan postResult
}

type writer struct {
	st       *store.Store
	bus      *bus.Bus
	log      *slog.Logger
	met      *metrics
	maxBatch int

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan *postReq
	exited chan struct{}
	// publishes carries committed batches, in commit order, to the one
	// goroutine that publishes them, so that the next batch's transaction
	// does not wait for this one's Redis round trip.
	publishes chan []model.Message
	published chan struct{}
}

// publishBacklog bounds the committed batches waiting for their publish;
// beyond it the writer waits (Redis is slower than Postgres, or down and
// each publish waits for its timeout).
const publishBacklog = 64

func newWriter(st *store.Store, b *bus.Bus, log *slog.Logger, met *metrics, maxBatch int) *writer {
	w := &writer{st: st, bus: b, log: log, met: met, maxBatch: maxBatch,
		queue: make(chan *postReq, 4*maxBatch), exited: make(chan struct{}),
		publishes: make(chan []model.Message, publishBacklog), published: make(chan struct{})}
	go w.loop()
	go w.publisher()
	return w
}

// submit queues a message and waits for its commit.
func (w *writer) submit(ctx context.Context, m store.NewMessage) (model.Message, error) {
	p, err := w.submitPost(ctx, m)
	return p.Message, err
}

// submitPost queues a post and waits for its outcome, until ctx ends. A
// post still waiting in the queue when ctx ends is withdrawn (it will not be
// inserted); one the writer has taken is waited for, which is never long:
// its insert is bounded by ctx's deadline. So an error means the post was
// not stored, except in the one case nothing can tell apart, a commit whose
// answer from Postgres was lost; the idempotency key covers that one.
func (w *writer) submitPost(ctx context.Context, m store.NewMessage) (store.Posted, error) {
	req := &postReq{msg: m, done: make(chan postResult, 1), queued: time.Now()}
	req.deadline, _ = ctx.Deadline()
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return store.Posted{}, errWriterClosed
	}
	select {
	case w.queue <- req:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return store.Posted{}, fmt.Errorf("while queueing a post: %w", ctx.Err())
	}
	select {
	case r := <-req.done:
		return r.posted, r.err
	case <-ctx.Done():
		if req.state.CompareAndSwap(postQueued, postAbandoned) {
			return store.Posted{}, fmt.Errorf("while waiting for the post writer: %w", ctx.Err())
		}
		r := <-req.done
		return r.posted, r.err
	}
}

// close stops taking posts, commits what is queued and waits for the loop.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.exited
	<-w.published
}

// publisher publishes the committed batches in order, each with the room's
// posts count in the same round trip.
func (w *writer) publisher() {
	defer close(w.published)
	for fresh := range w.publishes {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		err, countErr := w.bus.PublishCounted(ctx, fresh)
		cancel()
		w.met.stage.publish.Observe(time.Since(start).Seconds())
		if err != nil {
			w.met.publishErrors.Inc()
			w.log.Warn("publish failed; streamers will fill the gap from Postgres",
				"first", fresh[0].ID, "last", fresh[len(fresh)-1].ID, "err", err)
		}
		// The posts counter is what the operator turns into
		// status.postsPerSecond; a failure costs only that figure.
		if countErr != nil {
			w.log.Debug("posts not counted", "n", len(fresh), "err", countErr)
		}
	}
}

func (w *writer) loop() {
	defer close(w.exited)
	defer close(w.publishes)
	batch := make([]*postReq, 0, w.maxBatch)
	for {
		first, ok := <-w.queue
		if !ok {
			return
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < w.maxBatch {
			select {
			case req, ok := <-w.queue:
				if !ok {
					break fill
				}
				batch = append(batch, req)
			default:
				break fill
			}
		}
		w.commit(w.take(batch))
	}
}

// take claims the batch's posts and returns the ones to insert: not
// withdrawn by their posters, and with time left before their deadlines.
func (w *writer) take(batch []*postReq) []*postReq {
	now := time.Now()
	live := batch[:0]
	for _, r := range batch {
		if !r.state.CompareAndSwap(postQueued, postTaken) {
			continue // withdrawn: its poster has its answer
		}
		w.met.stage.queue.Observe(now.Sub(r.queued).Seconds())
		if !r.deadline.IsZero() && !now.Before(r.deadline) {
			r.done <- postResult{err: fmt.Errorf("while waiting for the post writer: %w", context.DeadlineExceeded)}
			continue
		}
		live = append(live, r)
	}
	return live
}

// commit inserts one batch, answers its posters, and publishes it.
func (w *writer) commit(batch []*postReq) {
	if len(batch) == 0 {
		return
	}
	w.met.batchSize.Observe(float64(len(batch)))
	msgs := make([]store.NewMessage, len(batch))
	deadline := time.Now().Add(insertTimeout)
	for i, r := range batch {
		msgs[i] = r.msg
		if !r.deadline.IsZero() && r.deadline.Before(deadline) {
			deadline = r.deadline
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	start := time.Now()
	posted, err := w.st.InsertPosts(ctx, msgs)
	cancel()
	w.met.stage.commit.Observe(time.Since(start).Seconds())
	if err == nil && len(posted) != len(batch) {
		err = fmt.Errorf("inserted %d messages, got %d back", len(batch), len(posted))
	}
	if err != nil {
		for _, r := range batch {
			r.done <- postResult{err: err}
		}
		return
	}
	// Committed: the messages exist whatever happens to the publish, so the
	// posters get their answers first. If the publish fails, streamers see
	// the gap (or the room's counter) and fill it from Postgres.
	// InsertPosts returns the batch in input order.
	fresh := make([]model.Message, 0, len(posted))
	for i, r := range batch {
		r.done <- postResult{posted: posted[i]}
		if !posted[i].Replayed {
			fresh = append(fresh, posted[i].Message)
		}
	}
	if len(fresh) > 0 {
		w.publishes <- fresh
	}
}
