package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Event is one event of the live room: HistoryEvent, MessageEvent or StatsEvent.
type Event interface{ eventType() string }

// HistoryEvent comes first on every connection: the last messages of the
// room, oldest first. After a resume (Resumed) it holds only the messages
// the caller has not had yet, and it is left out when there are none.
type HistoryEvent struct {
	Messages []Message
	Resumed  bool
}

// MessageEvent is a new message. Messages come in id order, each once.
type MessageEvent struct{ Message Message }

// StatsEvent carries the room's counters (every 10 seconds).
type StatsEvent struct{ Stats Stats }

func (HistoryEvent) eventType() string { return "history" }
func (MessageEvent) eventType() string { return "message" }
func (StatsEvent) eventType() string   { return "stats" }

// StreamOptions configure Stream. The zero value follows the room from its
// recent history with sensible reconnection.
type StreamOptions struct {
	// LastEventID resumes after this message id: the stream starts with
	// exactly the messages after it. Empty: start with the recent history.
	LastEventID string
	// MinBackoff is the first wait before reconnecting when the room gave
	// no retry: hint (default 1s); MaxBackoff caps the doubling (default 30s).
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout drops a connection that sent nothing, not even a ping,
	// for this long (default 45s: the room pings at least every 15s).
	IdleTimeout time.Duration
	// OnDisconnect, if set, is told why a connection ended and how long the
	// stream waits before resuming.
	OnDisconnect func(err error, wait time.Duration)
	// OnConnect, if set, is called each time a connection is established
	// (resumed tells whether it continues an earlier one).
	OnConnect func(resumed bool)
}

// maxEvent bounds one stream event (a history of 100 full messages is
// about 100 KB).
const maxEvent = 4 << 20

// errPermanent marks failures that reconnecting cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Stream follows the room live over Server-Sent Events (GET /api/stream)
// and calls handle with each event, in order, from one goroutine. When the
// connection drops it waits (the room's retry: hint, then doubling with
// jitter) and resumes with Last-Event-ID from the last message it handed
// over, so that no message is delivered twice and none is missed.
//
// Stream returns when ctx ends (nil), when handle returns an error (that
// error), or when the room answers in a way reconnecting cannot fix (a 4xx
// other than 429, or a response that is not an event stream).
func (c *Client) Stream(ctx context.Context, opts StreamOptions, handle func(Event) error) error {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 45 * time.Second
	}
	s := &streamState{c: c, opts: opts, handle: handle, last: -1}
	if opts.LastEventID != "" {
		n, ok := parseSeq(opts.LastEventID)
		if !ok {
			return fmt.Errorf("chatr: LastEventID %q is not a message id", opts.LastEventID)
		}
		s.last = n
	}
	failures := 0
	for {
		delivered, err := s.connect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		var herr handlerError
		if errors.As(err, &herr) {
			return herr.err
		}
		if delivered {
			failures = 0
		}
		base := opts.MinBackoff
		if s.retry > 0 {
			base = s.retry
		}
		wait := backoff(base, opts.MaxBackoff, failures)
		if d, ok := IsRateLimited(err); ok && d > wait {
			wait = d
		}
		failures++
		if opts.OnDisconnect != nil {
			opts.OnDisconnect(err, wait)
		}
		if sleep(ctx, wait) != nil {
			return nil
		}
	}
}

// backoff is the wait before reconnection attempt n (0 after a connection
// that worked): base doubled n times, capped, then spread over [d, 1.5d) so
// that clients dropped together (a streamer pod draining) do not come back
// together. It is never shorter than the room's retry: hint.
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max && base < max {
		d = max
	}
	return jitter(d)
}

// jitter returns a random duration in [d, 1.5d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + rand.N(d/2+1)
}

// handlerError carries the caller's own error out of a connection.
type handlerError struct{ err error }

func (h handlerError) Error() string { return h.err.Error() }

// streamState is what survives reconnections: the last message id handed
// to the caller (the resume point and the duplicate filter) and the
// server's retry hint.
type streamState struct {
	c      *Client
	opts   StreamOptions
	handle func(Event) error

	last      int64 // highest message id delivered; -1: none yet
	connected bool  // a connection has delivered its history before
	retry     time.Duration
}

// connect runs one connection until it ends. delivered tells whether it got
// as far as an event (so the backoff starts over).
func (s *streamState) connect(ctx context.Context) (delivered bool, err error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, s.c.endpoint("/api/stream", nil), nil)
	if err != nil {
		return false, permanentError{err}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("User-Agent", s.c.userAgent)
	resumed := s.last >= 0
	if resumed {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(s.last, 10))
	}
	resp, err := s.c.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		e := decodeError(resp.StatusCode, resp.Header, b)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout {
			return false, e
		}
		return false, permanentError{e}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, permanentError{fmt.Errorf("chatr: %s answered %q, not an event stream", req.URL, resp.Header.Get("Content-Type"))}
	}
	if s.opts.OnConnect != nil {
		s.opts.OnConnect(resumed)
	}
	body := newIdleReader(resp.Body, s.opts.IdleTimeout, cancel)
	defer body.stop()
	p := newSSEParser(body, maxEvent)
	for {
		ev, err := p.Next()
		if p.retry > 0 {
			s.retry = p.retry
		}
		if err != nil {
			if body.idle() {
				err = fmt.Errorf("chatr: stream silent for %s", s.opts.IdleTimeout)
			} else if err == io.EOF {
				err = errors.New("chatr: stream closed by the room")
			}
			return delivered, err
		}
		if ev.Type != "" && ev.Type != "message" {
			continue // named events are not chatr's; EventSource.onmessage would not see them either
		}
		out, ok := s.decode(ev.Data)
		if !ok {
			continue
		}
		delivered = true
		if out == nil {
			continue
		}
		if err := s.handle(out); err != nil {
			return delivered, handlerError{err}
		}
	}
}

// decode turns an event's data into the Event to hand over, dropping
// messages already delivered. ok is false for data that is not a chatr event
// (ignored: a newer room may send types this client does not know).
func (s *streamState) decode(data string) (Event, bool) {
	var env struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal([]byte(data), &env) != nil {
		return nil, false
	}
	switch env.Type {
	case "history":
		var ms []Message
		if json.Unmarshal(env.Data, &ms) != nil {
			return nil, false
		}
		first := !s.connected && s.last < 0
		s.connected = true
		fresh := s.fresh(ms)
		if len(fresh) == 0 && !first {
			return nil, true
		}
		return HistoryEvent{Messages: fresh, Resumed: !first}, true
	case "message":
		var m Message
		if json.Unmarshal(env.Data, &m) != nil {
			return nil, false
		}
		if fresh := s.fresh([]Message{m}); len(fresh) == 1 {
			return MessageEvent{Message: m}, true
		}
		return nil, true
	case "stats":
		var st Stats
		if json.Unmarshal(env.Data, &st) != nil {
			return nil, false
		}
		return StatsEvent{Stats: st}, true
	}
	return nil, false
}

// fresh keeps the messages newer than the last one delivered, in order, and
// moves the mark. A message whose id is not a number cannot be placed: it
// is passed on without moving the mark.
func (s *streamState) fresh(ms []Message) []Message {
	out := ms[:0:0]
	for _, m := range ms {
		n, ok := m.Seq()
		if !ok {
			out = append(out, m)
			continue
		}
		if n <= s.last {
			continue
		}
		s.last = n
		out = append(out, m)
	}
	return out
}

// idleReader cancels a connection that has been silent for too long: a
// half-open TCP connection (a pod that vanished, a NAT that forgot us) would
// otherwise block a read forever.
type idleReader struct {
	r       io.Reader
	timeout time.Duration
	timer   *time.Timer

	mu    sync.Mutex
	fired bool
}

func newIdleReader(r io.Reader, timeout time.Duration, cancel func()) *idleReader {
	ir := &idleReader{r: r, timeout: timeout}
	ir.timer = time.AfterFunc(timeout, func() {
		ir.mu.Lock()
		ir.fired = true
		ir.mu.Unlock()
		cancel()
	})
	return ir
}

func (ir *idleReader) Read(b []byte) (int, error) {
	n, err := ir.r.Read(b)
	if n > 0 {
		ir.timer.Reset(ir.timeout)
	}
	return n, err
}

func (ir *idleReader) idle() bool {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	return ir.fired
}

func (ir *idleReader) stop() { ir.timer.Stop() }
