package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatr-ai/chatr/pkg/client"
	"github.com/chatr-ai/chatr/test/e2e/localpods"
)

// wire records what one stream client received on the wire, across all its
// connections: every message id in the order it arrived (duplicates
// included: the Go client drops them before handing messages over, so they
// are counted here, below it), the pod behind each connection and how each
// connection ended.
type wire struct {
	mu       sync.Mutex
	ids      []int64
	arrived  map[int64]time.Time // first arrival of each id
	pods     []string            // the pod of each connection, in order
	drops    int                 // connections the room ended (EOF, reset, 5xx, ...)
	refusals int                 // connection attempts answered with an error status
	lastErr  string
}

func newWire() *wire { return &wire{arrived: map[int64]time.Time{}} }

// event takes one SSE event's data.
func (w *wire) event(data string) {
	var env struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal([]byte(data), &env) != nil {
		return
	}
	var ms []struct {
		ID string `json:"id"`
	}
	switch env.Type {
	case "history":
		_ = json.Unmarshal(env.Data, &ms)
	case "message":
		var m struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(env.Data, &m) == nil {
			ms = append(ms, m)
		}
	default:
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range ms {
		n, err := strconv.ParseInt(m.ID, 10, 64)
		if err != nil {
			n = -1 // counted as out of order below
		}
		w.ids = append(w.ids, n)
		if _, ok := w.arrived[n]; !ok {
			w.arrived[n] = now
		}
	}
}

func (w *wire) connected(pod string) {
	w.mu.Lock()
	w.pods = append(w.pods, pod)
	w.mu.Unlock()
}

func (w *wire) dropped(err error) {
	w.mu.Lock()
	w.drops++
	if err != nil {
		w.lastErr = err.Error()
	}
	w.mu.Unlock()
}

func (w *wire) refused(status int) {
	w.mu.Lock()
	w.refusals++
	w.lastErr = fmt.Sprintf("status %d", status)
	w.mu.Unlock()
}

// snapshot returns copies of what was recorded.
func (w *wire) snapshot() (ids []int64, pods []string, drops int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.ids...), append([]string(nil), w.pods...), w.drops
}

// last is the highest id received (0: none).
func (w *wire) last() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var m int64
	for _, n := range w.ids {
		m = max(m, n)
	}
	return m
}

// pod is the pod of the current (latest) connection.
func (w *wire) pod() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pods) == 0 {
		return ""
	}
	return w.pods[len(w.pods)-1]
}

// sseParser splits a byte stream into SSE events (the parts a chatr client
// needs: data, id and retry; comments ignored) and calls onEvent with each
// event's data.
type sseParser struct {
	buf     []byte
	data    []string
	retry   time.Duration
	onEvent func(data string)
}

func (p *sseParser) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := strings.TrimSuffix(string(p.buf[:i]), "\r")
		p.buf = p.buf[i+1:]
		switch {
		case line == "":
			if len(p.data) > 0 {
				p.onEvent(strings.Join(p.data, "\n"))
			}
			p.data = p.data[:0]
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "data":
				p.data = append(p.data, value)
			case "retry":
				if ms, err := strconv.Atoi(value); err == nil {
					p.retry = time.Duration(ms) * time.Millisecond
				}
			}
		}
	}
}

// tapTransport records, for every /api/stream response, the pod that served
// it and a copy of the bytes as they are read, so that a Go client's stream
// can be checked on the wire.
type tapTransport struct {
	base http.RoundTripper
	w    *wire
}

func (t tapTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || req.URL.Path != "/api/stream" {
		return resp, err
	}
	if resp.StatusCode != http.StatusOK {
		t.w.refused(resp.StatusCode)
		return resp, nil
	}
	t.w.connected(resp.Header.Get(localpods.BackendHeader))
	p := &sseParser{onEvent: t.w.event}
	resp.Body = &tapBody{ReadCloser: resp.Body, p: p}
	return resp, nil
}

type tapBody struct {
	io.ReadCloser
	p *sseParser
}

func (b *tapBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if n > 0 {
		_, _ = b.p.Write(buf[:n])
	}
	return n, err
}

// spectator follows the room with the Go client (pkg/client's resuming
// stream reader). got holds the messages the client handed over, in order;
// the wire holds what arrived below it.
type spectator struct {
	name string
	wire *wire

	mu      sync.Mutex
	got     []int64
	resumes int
	err     error
	done    chan struct{}
}

func startSpectator(ctx context.Context, base, name string) *spectator {
	s := &spectator{name: name, wire: newWire(), done: make(chan struct{})}
	hc := &http.Client{Transport: tapTransport{base: &http.Transport{}, w: s.wire}}
	c := client.Must(client.New(base, client.WithHTTPClient(hc), client.WithUserAgent("e2e-spectator")))
	go func() {
		defer close(s.done)
		err := c.Stream(ctx, client.StreamOptions{
			MinBackoff: 200 * time.Millisecond,
			MaxBackoff: 2 * time.Second,
			OnConnect: func(resumed bool) {
				if resumed {
					s.mu.Lock()
					s.resumes++
					s.mu.Unlock()
				}
			},
			OnDisconnect: func(err error, _ time.Duration) { s.wire.dropped(err) },
		}, func(ev client.Event) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			switch ev := ev.(type) {
			case client.HistoryEvent:
				for _, m := range ev.Messages {
					n, _ := m.Seq()
					s.got = append(s.got, n)
				}
			case client.MessageEvent:
				n, _ := ev.Message.Seq()
				s.got = append(s.got, n)
			}
			return nil
		})
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}()
	return s
}

func (s *spectator) received() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.got...)
}

// rawClient is a surge client: a minimal SSE reader of its own (not the Go
// client), like the many small scripts that watch a room. It resumes with
// Last-Event-ID after a drop, honouring the room's retry: hint.
type rawClient struct {
	id     int
	wire   *wire
	cancel context.CancelFunc
	done   chan struct{}
	// up is closed when the first connection has received its history.
	up     chan struct{}
	upOnce sync.Once
}

func startRawClient(ctx context.Context, base string, id int) *rawClient {
	ctx, cancel := context.WithCancel(ctx)
	c := &rawClient{id: id, wire: newWire(), cancel: cancel, done: make(chan struct{}), up: make(chan struct{})}
	go c.run(ctx, base)
	return c
}

// stop closes the client's connection and waits for it to end.
func (c *rawClient) stop() {
	c.cancel()
	<-c.done
}

func (c *rawClient) run(ctx context.Context, base string) {
	defer close(c.done)
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	retry := 2 * time.Second
	for ctx.Err() == nil {
		wait, err := c.connect(ctx, hc, base, &retry)
		if ctx.Err() != nil {
			return
		}
		c.wire.dropped(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// connect runs one connection; it returns how long to wait before the next.
func (c *rawClient) connect(ctx context.Context, hc *http.Client, base string, retry *time.Duration) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/stream", nil)
	if err != nil {
		return time.Second, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if last := c.wire.last(); last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 500 * time.Millisecond, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.wire.refused(resp.StatusCode)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		return wait, fmt.Errorf("status %d", resp.StatusCode)
	}
	c.wire.connected(resp.Header.Get(localpods.BackendHeader))
	p := &sseParser{onEvent: func(data string) {
		c.wire.event(data)
		c.upOnce.Do(func() { close(c.up) })
	}}
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			_, _ = p.Write(buf[:n])
			if p.retry > 0 {
				*retry = p.retry
			}
		}
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("stream closed by the room")
			}
			return *retry, err
		}
	}
}
