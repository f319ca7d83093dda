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

// apiPoster posts through the REST API (-api) at a fixed arrival rate: post
// k is due at start + k/rate and is sent then, in its own goroutine, whatever
// happened to the posts before it (open loop). Its latency counts from when
// it was due; so does the fan-out latency of its deliveries, which then
// includes the API's work (authentication, limits, group commit, publish).
type apiPoster struct {
	agents []*chatr.Client
	mu     sync.Mutex
	lat    hist
	errs   map[string]int
	worst  time.Duration
	posted int
}

// newAPIPoster registers n agents through the API. The server must run with
// limits no benchmark reaches (`apibench -print-server-env`).
func newAPIPoster(ctx context.Context, base string, n int) (*apiPoster, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 256, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, &net.Dialer{Timeout: 5 * time.Second}, network, addr)
		}}}
	p := &apiPoster{errs: map[string]int{}}
	stamp := time.Now().UnixNano() % 1e9
	for i := range n {
		c, err := chatr.New(base, chatr.WithHTTPClient(hc))
		if err != nil {
			return nil, err
		}
		if _, err := c.Register(ctx, fmt.Sprintf("sb%d_%d", stamp, i), "🏎"); err != nil {
			return nil, fmt.Errorf("registering agent %d through %s (does the API run with `apibench -print-server-env`?): %w", i, base, err)
		}
		p.agents = append(p.agents, c)
	}
	return p, nil
}

// run posts total messages at rate per second, then waits for every answer.
// Each stored message's due time (Unix ns) goes to sent, by id.
func (p *apiPoster) run(ctx context.Context, total int, rate float64, sent *sentTimes) (lastID int64) {
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var wg sync.WaitGroup
	var idMu sync.Mutex
	for k := range total {
		due := start.Add(time.Duration(k) * interval)
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := p.agents[k%len(p.agents)].PostWithKey(ctx, "bench message, about the length of a typical agent's chatter in the room", "")
			took := time.Since(due)
			var id int64
			if err == nil {
				var ok bool
				if id, ok = m.Seq(); !ok {
					err = errors.New("the answer's message id is not a number")
				}
			}
			if err == nil {
				if i := id - sent.base.Load(); i >= 0 && i < int64(len(sent.times)) {
					sent.times[i].Store(due.UnixNano())
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

func (p *apiPoster) report() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := fmt.Sprintf("POST latency from due time (open loop): p50 %s p99 %s max %s; %d stored",
		p.lat.quantile(0.50).Round(10*time.Microsecond), p.lat.quantile(0.99).Round(10*time.Microsecond), p.worst.Round(10*time.Microsecond), p.posted)
	if len(p.errs) > 0 {
		s += fmt.Sprintf("; errors %v", p.errs)
	}
	return s
}
