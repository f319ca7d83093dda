package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// NOTIFY channels (see migration 00002). Payloads are "<schema>:<job id>".
const (
	// JobsChannel: a job became claimable (enqueued, retried, released).
	JobsChannel = "chatr_verify_jobs"
	// ResultsChannel: a job changed state or attempt.
	ResultsChannel = "chatr_verify_results"
)

// ListenOptions configure Listen.
type ListenOptions struct {
	// ConnConfig is the connection to hold (a copy of the pool's, so it uses
	// the room's search_path); it is not part of the pool, so a long wait
	// never starves queries and closing the store never waits on it.
	ConnConfig *pgx.ConnConfig
	Channel    string
	Schema     string
	// Up is called after every (re)connect: notifications sent while
	// disconnected are lost, so callers look again then. Optional.
	Up func()
	// Notify is called with the job id of each notification of the room.
	Notify func(jobID int64)
	Log    *slog.Logger
}

// Listen holds a LISTEN connection until ctx ends, reconnecting with
// backoff after failures. Callers poll as well, so a missed notification
// costs latency, never correctness. It returns ctx's error.
func Listen(ctx context.Context, o ListenOptions) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	backoff := 500 * time.Millisecond
	for {
		err := listenOnce(ctx, o)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("LISTEN connection lost; polling until it is back", "channel", o.Channel, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// idlePing is how often a quiet LISTEN connection is checked: a dead TCP
// connection would otherwise wait for notifications forever.
const idlePing = 30 * time.Second

func listenOnce(ctx context.Context, o ListenOptions) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, o.ConnConfig.Copy())
	cancel()
	if err != nil {
		return fmt.Errorf("while connecting for LISTEN: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{o.Channel}.Sanitize()); err != nil {
		return fmt.Errorf("while subscribing to %s: %w", o.Channel, err)
	}
	if o.Up != nil {
		o.Up()
	}
	prefix := o.Schema + ":"
	for {
		wctx, cancel := context.WithTimeout(ctx, idlePing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) || pgconnTimeout(err) {
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err = conn.Ping(pctx)
				cancel()
				if err != nil {
					return fmt.Errorf("while checking the LISTEN connection: %w", err)
				}
				continue
			}
			return fmt.Errorf("while waiting for notifications: %w", err)
		}
		if rest, ok := strings.CutPrefix(n.Payload, prefix); ok {
			if id, err := strconv.ParseInt(rest, 10, 64); err == nil {
				o.Notify(id)
			}
		}
	}
}

// pgconnTimeout reports pgx's wrapping of a context deadline.
func pgconnTimeout(err error) bool {
	type timeout interface{ Timeout() bool }
	var t timeout
	return errors.As(err, &t) && t.Timeout()
}

// resultHub lets API requests wait for a job's progress without holding a
// pool connection each: one LISTEN connection per process, started when the
// first request waits and closed after a quiet minute.
type resultHub struct {
	cfg    *pgx.ConnConfig
	schema string
	log    *slog.Logger

	mu      sync.Mutex
	waiters map[int64]map[chan struct{}]struct{}
	stop    context.CancelFunc // non-nil while listening
	idle    *time.Timer
}

const hubIdle = time.Minute

func newResultHub(cfg *pgx.ConnConfig, schema string, log *slog.Logger) *resultHub {
	return &resultHub{cfg: cfg, schema: schema, log: log, waiters: map[int64]map[chan struct{}]struct{}{}}
}

// subscribe returns a channel that receives (coalesced) wake-ups for job id,
// and the function that ends the subscription.
func (h *resultHub) subscribe(id int64) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiters[id] == nil {
		h.waiters[id] = map[chan struct{}]struct{}{}
	}
	h.waiters[id][ch] = struct{}{}
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
	if h.stop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		h.stop = cancel
		go func() {
			_ = Listen(ctx, ListenOptions{ConnConfig: h.cfg, Channel: ResultsChannel, Schema: h.schema, Notify: h.deliver, Log: h.log})
		}()
	}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.waiters[id], ch)
		if len(h.waiters[id]) == 0 {
			delete(h.waiters, id)
		}
		if len(h.waiters) == 0 && h.stop != nil && h.idle == nil {
			h.idle = time.AfterFunc(hubIdle, h.stopIfIdle)
		}
	}
}

func (h *resultHub) deliver(id int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.waiters[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (h *resultHub) stopIfIdle() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.waiters) == 0 && h.stop != nil {
		h.stop()
		h.stop = nil
	}
	h.idle = nil
}

// close stops listening now.
func (h *resultHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
	if h.stop != nil {
		h.stop()
		h.stop = nil
	}
}
