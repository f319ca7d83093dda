package ratelimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/ratelimit"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// key returns a Redis key unique to this test, deleted when it ends.
func key(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	k := "chatr:{rltest_" + hex.EncodeToString(b[:]) + "}:rl"
	t.Cleanup(func() { rdb.Del(context.Background(), k) })
	return k
}

func allow(t *testing.T, l *ratelimit.Limiter, k string, r ratelimit.Rule) ratelimit.Decision {
	t.Helper()
	d, err := l.Allow(context.Background(), k, r)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestAllowUpToLimit(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	l, k := ratelimit.New(rdb), key(t, rdb)
	r := ratelimit.Rule{Limit: 3, Window: time.Minute}
	for i := 1; i <= 3; i++ {
		d := allow(t, l, k, r)
		if !d.Allowed || d.Count != i || d.Remaining != 3-i || d.RetryAfter != 0 {
			t.Fatalf("attempt %d: %+v, want allowed with count %d", i, d, i)
		}
	}
	d := allow(t, l, k, r)
	if d.Allowed || d.Remaining != 0 {
		t.Fatalf("4th attempt: %+v, want denied", d)
	}
	if d.RetryAfter <= 58*time.Second || d.RetryAfter > time.Minute {
		t.Fatalf("RetryAfter = %s, want just under a minute", d.RetryAfter)
	}
	ttl := rdb.PTTL(context.Background(), k).Val()
	if ttl <= 0 || ttl > time.Minute {
		t.Fatalf("key TTL = %s, want (0, 1m]: a key must not outlive its window", ttl)
	}
}

// The window slides: an event leaves it exactly one window after it happened,
// not at a fixed boundary.
func TestWindowSlides(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	l, k := ratelimit.New(rdb), key(t, rdb)
	r := ratelimit.Rule{Limit: 2, Window: 600 * time.Millisecond}
	allow(t, l, k, r) // t0
	time.Sleep(300 * time.Millisecond)
	allow(t, l, k, r) // t0+300ms
	if d := allow(t, l, k, r); d.Allowed {
		t.Fatal("third event inside the window allowed")
	} else if d.RetryAfter > 300*time.Millisecond+50*time.Millisecond {
		t.Fatalf("RetryAfter = %s, want about 300ms (when the first event leaves)", d.RetryAfter)
	}
	time.Sleep(350 * time.Millisecond) // t0 has left, t0+300ms has not
	if d := allow(t, l, k, r); !d.Allowed || d.Count != 2 {
		t.Fatalf("after the first event left: %+v, want allowed with count 2", d)
	}
	if d := allow(t, l, k, r); d.Allowed {
		t.Fatal("window holds 2 events again, yet a third was allowed")
	}
}

// Waiting exactly RetryAfter is enough; waiting less is not.
func TestRetryAfterIsExact(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	l, k := ratelimit.New(rdb), key(t, rdb)
	r := ratelimit.Rule{Limit: 1, Window: 500 * time.Millisecond}
	allow(t, l, k, r)
	d := allow(t, l, k, r)
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > r.Window {
		t.Fatalf("second attempt: %+v", d)
	}
	time.Sleep(d.RetryAfter / 2)
	if d := allow(t, l, k, r); d.Allowed {
		t.Fatal("allowed before RetryAfter elapsed")
	}
	time.Sleep(d.RetryAfter/2 + 20*time.Millisecond)
	if d := allow(t, l, k, r); !d.Allowed {
		t.Fatalf("denied after RetryAfter elapsed: %+v", d)
	}
}

// Denied attempts are not recorded: a client hammering a full window gets a
// slot as soon as the window frees, not later.
func TestDeniedAttemptsDoNotCount(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	l, k := ratelimit.New(rdb), key(t, rdb)
	r := ratelimit.Rule{Limit: 1, Window: 400 * time.Millisecond}
	allow(t, l, k, r)
	for i := 0; i < 20; i++ {
		if allow(t, l, k, r).Allowed {
			t.Fatal("allowed over the limit")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(220 * time.Millisecond)
	if d := allow(t, l, k, r); !d.Allowed {
		t.Fatalf("denied attempts extended the window: %+v", d)
	}
}

func TestRefund(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	l, k := ratelimit.New(rdb), key(t, rdb)
	ctx := context.Background()
	r := ratelimit.Rule{Limit: 1, Window: time.Minute}
	d := allow(t, l, k, r)
	denied := allow(t, l, k, r)
	if denied.Allowed {
		t.Fatal("second attempt allowed")
	}
	if err := l.Refund(ctx, denied); err != nil {
		t.Fatal(err)
	}
	if allow(t, l, k, r).Allowed {
		t.Fatal("refunding a denied decision freed a slot")
	}
	if err := l.Refund(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := l.Refund(ctx, d); err != nil { // twice: no-op
		t.Fatal(err)
	}
	if d2 := allow(t, l, k, r); !d2.Allowed || d2.Count != 1 {
		t.Fatalf("after refund: %+v, want allowed with count 1", d2)
	}
	if allow(t, l, k, r).Allowed {
		t.Fatal("double refund gave two slots back")
	}
}

// Two processes (two clients, two limiters) share one limit.
func TestSharedAcrossLimiters(t *testing.T) {
	t.Parallel()
	rdb1, rdb2 := testenv.Redis(t), testenv.Redis(t)
	l1, l2 := ratelimit.New(rdb1), ratelimit.New(rdb2)
	k := key(t, rdb1)
	r := ratelimit.Rule{Limit: 4, Window: time.Minute}
	var allowed int
	for i := 0; i < 10; i++ {
		l := l1
		if i%2 == 1 {
			l = l2
		}
		if allow(t, l, k, r).Allowed {
			allowed++
		}
	}
	if allowed != 4 {
		t.Fatalf("%d allowed across two limiters, want 4", allowed)
	}
}

// Under contention exactly Limit attempts win: the check and the take are one
// atomic step.
func TestConcurrentExactlyLimit(t *testing.T) {
	t.Parallel()
	rdb1, rdb2 := testenv.Redis(t), testenv.Redis(t)
	ls := []*ratelimit.Limiter{ratelimit.New(rdb1), ratelimit.New(rdb2)}
	k := key(t, rdb1)
	r := ratelimit.Rule{Limit: 37, Window: time.Minute}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				d, err := ls[g%2].Allow(context.Background(), k, r)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		}(g)
	}
	wg.Wait()
	if n := allowed.Load(); n != 37 {
		t.Fatalf("%d of 200 concurrent attempts allowed, want exactly 37", n)
	}
	if n := rdb1.ZCard(context.Background(), k).Val(); n != 37 {
		t.Fatalf("log holds %d entries, want 37", n)
	}
}

// Lowering a limit (a config change) is enforced at once, and RetryAfter
// points at the event whose expiry brings the window under the new limit.
func TestLoweredLimit(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	l, k := ratelimit.New(rdb), key(t, rdb)
	wide := ratelimit.Rule{Limit: 3, Window: 900 * time.Millisecond}
	allow(t, l, k, wide)
	time.Sleep(300 * time.Millisecond)
	allow(t, l, k, wide)
	allow(t, l, k, wide)
	d := allow(t, l, k, ratelimit.Rule{Limit: 2, Window: 900 * time.Millisecond})
	if d.Allowed {
		t.Fatal("allowed with 3 events under a limit of 2")
	}
	// A slot frees when the window holds at most 1 event: when the second
	// oldest leaves, ~900ms from now (the oldest leaving at ~600ms is not enough).
	if d.RetryAfter < 800*time.Millisecond || d.RetryAfter > 900*time.Millisecond {
		t.Fatalf("RetryAfter = %s, want ~900ms (the 2nd oldest event's expiry)", d.RetryAfter)
	}
}

func TestInvalidRule(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	l, k := ratelimit.New(rdb), key(t, rdb)
	for _, r := range []ratelimit.Rule{{Limit: 0, Window: time.Minute}, {Limit: -1, Window: time.Minute}, {Limit: 1, Window: 0}} {
		if _, err := l.Allow(context.Background(), k, r); !errors.Is(err, ratelimit.ErrRule) {
			t.Errorf("rule %+v: err = %v, want ErrRule", r, err)
		}
	}
}
