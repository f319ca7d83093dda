package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	chatr "github.com/chatr-ai/chatr/pkg/client"
)

// openLoop posts at a fixed arrival rate: post k is due at start + k/rate
// and is sent then, in its own goroutine, whatever happened to the posts
// before it (open loop). Its latency counts from when it was due; so does
// the fan-out latency of its deliveries.
type openLoop struct {
	// post sends post k and returns the id its deliveries carry.
	post func(ctx context.Context, k int) (int64, error)
	// idOf, when set, is post k's id, known before it is sent (Centrifugo:
	// the tool numbers its publications); else the id comes with the answer,
	// possibly after the deliveries (sentTimes.deferred).
	idOf func(k int) int64

	mu     sync.Mutex
	lat    hist
	errs   map[string]int
	worst  time.Duration
	posted int
}

// run posts total messages at rate per second, then waits for every answer.
// Each stored message's due time (Unix ns) goes to sent, by id.
func (p *openLoop) run(ctx context.Context, total int, rate float64, sent *sentTimes) (lastID int64) {
	p.errs = map[string]int{}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var wg sync.WaitGroup
	var idMu sync.Mutex
	note := func(id int64, due time.Time) {
		if i := id - sent.base.Load(); i >= 0 && i < int64(len(sent.times)) {
			sent.times[i].Store(due.UnixNano())
		}
	}
	for k := range total {
		due := start.Add(time.Duration(k) * interval)
		time.Sleep(time.Until(due))
		if p.idOf != nil {
			note(p.idOf(k), due)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := p.post(ctx, k)
			took := time.Since(due)
			if err == nil {
				if p.idOf == nil {
					note(id, due)
				}
				idMu.Lock()
				lastID = max(lastID, id)
				idMu.Unlock()
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if err != nil {
				kind := "transport"
				if code := chatr.StatusCode(err); code != 0 {
					kind = fmt.Sprint(code)
				} else if se := statusError(0); errors.As(err, &se) {
					kind = fmt.Sprint(int(se))
				}
				p.errs[kind]++
				return
			}
			p.posted++
			p.lat.add(took)
			p.worst = max(p.worst, took)
		}()
	}
	wg.Wait()
	return lastID
}

func (p *openLoop) report() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := fmt.Sprintf("POST latency from due time (open loop): p50 %s p99 %s max %s; %d stored",
		p.lat.quantile(0.50).Round(10*time.Microsecond), p.lat.quantile(0.99).Round(10*time.Microsecond), p.worst.Round(10*time.Microsecond), p.posted)
	if len(p.errs) > 0 {
		s += fmt.Sprintf("; errors %v", p.errs)
	}
	return s
}

// statusError is an HTTP status a server answered a post with.
type statusError int

func (e statusError) Error() string { return fmt.Sprintf("HTTP status %d", int(e)) }

// benchHTTPClient is the posts' HTTP client: connections kept, dialled
// through dialIn (-netns).
func benchHTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 256, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, &net.Dialer{Timeout: 5 * time.Second}, network, addr)
		}}}
}

// newAPIPoster posts through chatr's REST API (-api) as n agents in turn,
// registered first. The server must run with limits no benchmark reaches
// (`apibench -print-server-env`). The fan-out latency then includes the
// API's work (authentication, limits, group commit, publish).
func newAPIPoster(ctx context.Context, base string, n int) (*openLoop, error) {
	hc := benchHTTPClient()
	var agents []*chatr.Client
	stamp := time.Now().UnixNano() % 1e9
	for i := range n {
		c, err := chatr.New(base, chatr.WithHTTPClient(hc))
		if err != nil {
			return nil, err
		}
		if _, err := c.Register(ctx, fmt.Sprintf("sb%d_%d", stamp, i), "🏎"); err != nil {
			return nil, fmt.Errorf("registering agent %d through %s (does the API run with `apibench -print-server-env`?): %w", i, base, err)
		}
		agents = append(agents, c)
	}
	return &openLoop{post: func(ctx context.Context, k int) (int64, error) {
		m, err := agents[k%len(agents)].PostWithKey(ctx, "bench message, about the length of a typical agent's chatter in the room", "")
		if err != nil {
			return 0, err
		}
		id, ok := m.Seq()
		if !ok {
			return 0, errors.New("the answer's message id is not a number")
		}
		return id, nil
	}}, nil
}
