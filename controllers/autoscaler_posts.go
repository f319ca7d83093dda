package controllers

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/bus"
)

// The room's post rate, for status.postsPerSecond: every evaluation the
// autoscaler reads the room's posts counter (internal/bus, which the API
// pods add their committed messages to) and keeps the samples of the last
// postRateWindow, in memory. The rate is the counter's rise over the time
// between the oldest and the newest sample, once they are postRateMinSpan
// apart: a real measurement, never a guess from the connections. A new
// leader measures anew (the figure stays as the status holds it until then).
const (
	postRateWindow  = time.Minute
	postRateMinSpan = 10 * time.Second
)

// postSample is the counter's value at a time of the autoscaler's clock.
type postSample struct {
	at    time.Time
	total int64
}

// postRate is one room's recent samples, oldest first.
type postRate struct {
	samples []postSample
}

// add records s and returns the rate over the samples kept, and whether
// they span at least postRateMinSpan. A counter that went down (Redis lost
// its data) or a clock that went back starts the samples over.
func (p *postRate) add(s postSample) (float64, bool) {
	if n := len(p.samples); n > 0 && (s.total < p.samples[n-1].total || !s.at.After(p.samples[n-1].at)) {
		p.samples = p.samples[:0]
	}
	p.samples = append(p.samples, s)
	// Keep the newest sample at least postRateWindow old, and none older.
	for len(p.samples) > 2 && s.at.Sub(p.samples[1].at) >= postRateWindow {
		p.samples = p.samples[1:]
	}
	first := p.samples[0]
	span := s.at.Sub(first.at)
	if span < postRateMinSpan {
		return 0, false
	}
	return float64(s.total-first.total) / span.Seconds(), true
}

// formatRate is how status.postsPerSecond shows a rate: one decimal.
func formatRate(r float64) string { return fmt.Sprintf("%.1f", r) }

// measurePosts reads the room's posts counter and returns the rate to
// write, or "" when there is none yet (too few samples, or the counter
// could not be read: the status then keeps the figure it has).
func (a *StreamerAutoscaler) measurePosts(ctx context.Context, room *chatrv1.ChatRoom) string {
	maxAge := a.SecretResync
	if maxAge <= 0 {
		maxAge = defaultSecretResync
	}
	rdb, err := a.redis.forRoom(ctx, a.APIReader, room, a.now(), maxAge)
	if err != nil {
		return ""
	}
	rctx, cancel := context.WithTimeout(ctx, countsReadTimeout)
	defer cancel()
	total, err := bus.ReadPosts(rctx, rdb, room.PostgresSchema())
	if err != nil {
		return ""
	}
	// A room's evaluations never run at once (the work queue serialises
	// a key), so its postRate needs no lock.
	v, _ := a.posts.LoadOrStore(client.ObjectKeyFromObject(room), &postRate{})
	rate, ok := v.(*postRate).add(postSample{at: a.now(), total: total})
	if !ok {
		return ""
	}
	return formatRate(rate)
}
