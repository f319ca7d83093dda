package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
// One goroutine does insert → publish → answer, batch after batch, so what
// this process publishes on Redis is always in id order.

// errWriterClosed answers posts that arrive while the server shuts down.
var errWriterClosed = errors.New("the server is shutting down")

// Timeouts of one batch's steps.
const (
	insertTimeout  = 10 * time.Second
	publishTimeout = 5 * time.Second
)

type postResult struct {
	msg model.Message
	err error
}

type postReq struct {
	msg  store.NewMessage
	done chan postResult
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
}

func newWriter(st *store.Store, b *bus.Bus, log *slog.Logger, met *metrics, maxBatch int) *writer {
	w := &writer{st: st, bus: b, log: log, met: met, maxBatch: maxBatch,
		queue: make(chan *postReq, 4*maxBatch), exited: make(chan struct{})}
	go w.loop()
	return w
}

// submit queues a message and waits for its commit. Once queued the message
// is committed or failed whatever happens to the caller, so the caller
// always learns which.
func (w *writer) submit(ctx context.Context, m store.NewMessage) (model.Message, error) {
	req := &postReq{msg: m, done: make(chan postResult, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return model.Message{}, errWriterClosed
	}
	select {
	case w.queue <- req:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return model.Message{}, fmt.Errorf("while queueing a post: %w", ctx.Err())
	}
	r := <-req.done
	return r.msg, r.err
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
}

func (w *writer) loop() {
	defer close(w.exited)
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
		w.commit(batch)
	}
}

// commit inserts one batch, publishes it, and answers its posters.
func (w *writer) commit(batch []*postReq) {
	w.met.batchSize.Observe(float64(len(batch)))
	msgs := make([]store.NewMessage, len(batch))
	for i, r := range batch {
		msgs[i] = r.msg
	}
	ctx, cancel := context.WithTimeout(context.Background(), insertTimeout)
	stored, err := w.st.InsertMessages(ctx, msgs)
	cancel()
	if err == nil && len(stored) != len(batch) {
		err = fmt.Errorf("inserted %d messages, got %d back", len(batch), len(stored))
	}
	if err != nil {
		for _, r := range batch {
			r.done <- postResult{err: err}
		}
		return
	}
	// Committed: the messages exist whatever happens to the publish. If it
	// fails, streamers see the gap and fill it from Postgres, so the posts
	// still succeed.
	ctx, cancel = context.WithTimeout(context.Background(), publishTimeout)
	if err := w.bus.Publish(ctx, stored); err != nil {
		w.met.publishErrors.Inc()
		w.log.Warn("publish failed; streamers will fill the gap from Postgres",
			"first", stored[0].ID, "last", stored[len(stored)-1].ID, "err", err)
	}
	cancel()
	// InsertMessages returns the batch in id order, which is input order.
	for i, r := range batch {
		r.done <- postResult{msg: stored[i]}
	}
}
