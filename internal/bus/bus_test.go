package bus_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// A frozen Redis (it accepts bytes and answers nothing) costs a call no more
// than its context's deadline, or IOTimeout without one: go-redis's defaults
// ignored the deadline and retried, 20 s in all. Once Redis answers again the
// same client works.
func TestCallsBoundedWhileRedisIsFrozen(t *testing.T) {
	u, err := url.Parse(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewFaultProxy(t, u.Host)
	u.Host = proxy.Addr()
	rdb, err := bus.Connect(u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	b := bus.New(rdb, testenv.Schema(t))
	proxy.Pause()

	const deadline = 300 * time.Millisecond
	dctx, cancel := context.WithTimeout(ctx, deadline)
	start := time.Now()
	err = b.Publish(dctx, []model.Message{{ID: 1, Content: "x", Timestamp: time.Now()}})
	cancel()
	took := time.Since(start)
	if err == nil {
		t.Fatal("a publish to a frozen Redis succeeded")
	}
	if took > deadline+2*time.Second {
		t.Errorf("a publish with a %s deadline took %s", deadline, took)
	}

	start = time.Now()
	err = rdb.Get(ctx, "k").Err() // no deadline: IOTimeout bounds it
	took = time.Since(start)
	var ne interface{ Timeout() bool }
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("a call without a deadline to a frozen Redis: %v, want a timeout", err)
	}
	// One retry at most: two IOTimeouts and slack.
	if took > 2*bus.IOTimeout+2*time.Second {
		t.Errorf("a call without a deadline took %s", took)
	}

	proxy.Resume()
	testenv.Eventually(t, 10*time.Second, "Redis answering again", func() error { return rdb.Ping(ctx).Err() })
}
