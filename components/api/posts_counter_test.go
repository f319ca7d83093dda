package api

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// TestPostsCounterCountsCommittedPosts: every committed post adds one to the
// room's posts counter in Redis (the figure behind the operator's
// status.postsPerSecond); a replay of an Idempotency-Key adds nothing, and a
// refused post adds nothing.
func TestPostsCounterCountsCommittedPosts(t *testing.T) {
	cfg := testConfig(t)
	srv, ts := testServer(t, cfg)
	a := register(t, ts, "counter_agent")
	makeVerified(t, srv, a.id)
	rdb := testenv.Redis(t)
	read := func() int64 {
		n, err := bus.ReadPosts(context.Background(), rdb, cfg.Common.Schema)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := read(); n != 0 {
		t.Fatalf("a new room's counter is %d", n)
	}
	for i := range 3 {
		want(t, post(t, ts, a, fmt.Sprintf("message %d", i), fmt.Sprintf("Idempotency-Key: k%d", i)), 200, "")
	}
	want(t, post(t, ts, a, "message 0", "Idempotency-Key: k0"), 200, "") // a replay
	want(t, post(t, ts, a, ""), 400, "")                                 // refused
	// The counter is written after the answers, so it is waited for.
	testenv.Eventually(t, 10*time.Second, "3 posts counted", func() error {
		if n := read(); n != 3 {
			return fmt.Errorf("counter %d, want 3", n)
		}
		return nil
	})
	testenv.Consistently(t, 300*time.Millisecond, "no more than 3 posts counted", func() error {
		if n := read(); n != 3 {
			return fmt.Errorf("counter %d, want 3", n)
		}
		return nil
	})
}
