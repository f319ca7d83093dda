package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/testenv"
)

func TestPostRate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		sec      int
		total    int64
		wantRate float64
		wantOK   bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"needs 10s of samples", []step{{0, 0, 0, false}, {5, 50, 0, false}, {10, 100, 10, true}}},
		{"a quiet room is 0", []step{{0, 7, 0, false}, {12, 7, 0, true}}},
		{"the window slides: only the last minute counts", []step{
			{0, 0, 0, false}, {30, 3000, 100, true}, {60, 3000, 50, true}, {90, 3000, 0, true}}},
		{"a counter that went down starts over", []step{{0, 100, 0, false}, {10, 200, 10, true}, {12, 5, 0, false}, {22, 25, 2, true}}},
		{"a clock that went back starts over", []step{{10, 0, 0, false}, {20, 100, 10, true}, {5, 100, 0, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p postRate
			for _, s := range tc.steps {
				rate, ok := p.add(postSample{at: at(s.sec), total: s.total})
				if ok != s.wantOK || rate != s.wantRate {
					t.Fatalf("at %ds, total %d: rate %v, %v; want %v, %v", s.sec, s.total, rate, ok, s.wantRate, s.wantOK)
				}
			}
		})
	}
	if got := formatRate(12.345); got != "12.3" {
		t.Errorf("formatRate = %q", got)
	}
}

// TestAutoscalerWritesThePostRate: the autoscaler reads the room's posts
// counter (as the API pods add to it, through internal/bus) every
// evaluation and writes the rate over its samples to status.postsPerSecond
// once they span 10 s.
func TestAutoscalerWritesThePostRate(t *testing.T) {
	f := newFleet(t, testenv.RedisURL(), nil)
	ctx := context.Background()
	b := bus.New(f.rdb, f.schema)
	t.Cleanup(func() { f.rdb.Del(context.Background(), bus.PostsKey(f.schema)) })
	f.syncPods()
	f.spread(0)

	f.evaluate()
	if got := f.current().Status.PostsPerSecond; got != "" {
		t.Fatalf("a rate %q from one sample", got)
	}
	for range 5 {
		f.clock.Step(2 * time.Second)
		if err := b.CountPosts(ctx, 25); err != nil {
			t.Fatal(err)
		}
		f.evaluate()
	}
	testenv.Eventually(t, 10*time.Second, "postsPerSecond written", func() error {
		if got := f.current().Status.PostsPerSecond; got != "12.5" {
			return fmt.Errorf("postsPerSecond %q, want 12.5 (125 posts in 10 s)", got)
		}
		return nil
	})
}
