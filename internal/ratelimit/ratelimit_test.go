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

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/ratelimit"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// key returns a Redis key unique to this test, deleted when it ends.
func key(t *testing.T, rdb redis.Cmdable) string {
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

// The timing tests below run against Redis's clock, so they cannot use a
// fake one. Each measures, on this machine's clock (the same clock, to the
// millisecond the script uses), when every call was made, checks its
// expectations against those measurements, and when the machine was too
// slow for a step's premise (an event that should still be in the window
// might have left it) runs again with a window twice as long
// (testenv.Timed). slack covers the script's millisecond rounding.
const slack = 3 * time.Millisecond

// timedAllow is allow with the local time just before and just after the
// call: the event's time in Redis lies between the two.
func timedAllow(t *testing.T, l *ratelimit.Limiter, k string, r ratelimit.Rule) (d ratelimit.Decision, before, after time.Time) {
	t.Helper()
	before = time.Now()
	d = allow(t, l, k, r)
	return d, before, time.Now()
}

// sleepUntil waits for a point in time: here the passing of time is the
// event, a window sliding past an entry.
func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

// The window slides: an event leaves it exactly one window after it happened,
// not at a fixed boundary.
func TestWindowSlides(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	l := ratelimit.New(rdb)
	testenv.Timed(t, 600*time.Millisecond, func(w time.Duration) error {
		k := key(t, rdb)
		r := ratelimit.Rule{Limit: 2, Window: w}
		_, t0, t0end := timedAllow(t, l, k, r) // e0
		time.Sleep(w / 2)
		_, t1, _ := timedAllow(t, l, k, r) // e1, half a window later
		d, _, t2end := timedAllow(t, l, k, r)
		if t2end.Sub(t0) >= w {
			return testenv.TooSlow("three calls took %s, a %s window", t2end.Sub(t0), w)
		}
		if d.Allowed {
			t.Fatal("third event inside the window allowed")
		}
		// The slot frees when e0 leaves (e0 + w), not e1 (half a window later).
		if limit := t0end.Add(w).Sub(t1) + slack; d.RetryAfter > limit {
			t.Fatalf("RetryAfter = %s, want at most %s (when the first event leaves)", d.RetryAfter, limit)
		}
		sleepUntil(t0end.Add(w + slack)) // e0 has left
		d, _, _ = timedAllow(t, l, k, r)
		d2, _, t4end := timedAllow(t, l, k, r)
		if t4end.Sub(t1) >= w-slack {
			return testenv.TooSlow("the second event may have left the window too (%s after it)", t4end.Sub(t1))
		}
		if !d.Allowed || d.Count != 2 {
			t.Fatalf("after the first event left: %+v, want allowed with count 2", d)
		}
		if d2.Allowed {
			t.Fatal("window holds 2 events again, yet a third was allowed")
		}
		return nil
	})
}

// Waiting exactly RetryAfter is enough; waiting less is not.
func TestRetryAfterIsExact(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	l := ratelimit.New(rdb)
	testenv.Timed(t, 500*time.Millisecond, func(w time.Duration) error {
		k := key(t, rdb)
		r := ratelimit.Rule{Limit: 1, Window: w}
		allow(t, l, k, r)
		d, asked, askedEnd := timedAllow(t, l, k, r)
		if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > r.Window {
			t.Fatalf("second attempt: %+v", d)
		}
		// The slot frees between asked+RetryAfter and askedEnd+RetryAfter.
		time.Sleep(d.RetryAfter / 2)
		early, _, earlyEnd := timedAllow(t, l, k, r)
		if earlyEnd.After(asked.Add(d.RetryAfter - slack)) {
			return testenv.TooSlow("the early attempt came %s after RetryAfter was given, not before %s", earlyEnd.Sub(asked), d.RetryAfter)
		}
		if early.Allowed {
			t.Fatal("allowed before RetryAfter elapsed")
		}
		sleepUntil(askedEnd.Add(d.RetryAfter + slack))
		if d := allow(t, l, k, r); !d.Allowed {
			t.Fatalf("denied after RetryAfter elapsed: %+v", d)
		}
		return nil
	})
}

// Denied attempts are not recorded: a client hammering a full window gets a
// slot as soon as the window frees, not later.
func TestDeniedAttemptsDoNotCount(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	l := ratelimit.New(rdb)
	testenv.Timed(t, 400*time.Millisecond, func(w time.Duration) error {
		k := key(t, rdb)
		r := ratelimit.Rule{Limit: 1, Window: w}
		_, t0, t0end := timedAllow(t, l, k, r)
		// Denied attempts over half the window, the last one well after the
		// allowed event: were it recorded, it would hold the window shut
		// for a whole window after it.
		var last time.Time
		for time.Since(t0end) < w/2 {
			d, before, _ := timedAllow(t, l, k, r)
			if before.Sub(t0) >= w-slack {
				return testenv.TooSlow("a denied attempt came %s after the allowed one, in a %s window", before.Sub(t0), w)
			}
			if d.Allowed {
				t.Fatal("allowed over the limit")
			}
			last = before
			time.Sleep(w / 40)
		}
		sleepUntil(t0end.Add(w + slack))
		d, _, end := timedAllow(t, l, k, r)
		if end.After(last.Add(w)) {
			return testenv.TooSlow("the last attempt came %s after the last denied one: the test cannot tell", end.Sub(last))
		}
		if !d.Allowed {
			t.Fatalf("denied attempts extended the window: %+v", d)
		}
		return nil
	})
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
	concurrentExactlyLimit(t, testenv.Redis(t), testenv.Redis(t))
}

// The same holds on a Sentinel-managed master and on a Redis Cluster, with
// two clients as two pods would hold: the script's one key is hash-tagged,
// so the cluster runs it on one node.
func TestConcurrentExactlyLimitHighlyAvailable(t *testing.T) {
	t.Parallel()
	for name, start := range map[string]func(testing.TB) string{
		"sentinel": func(t testing.TB) string { return testenv.StartRedisSentinel(t).URL() },
		"cluster":  func(t testing.TB) string { return testenv.StartRedisCluster(t, 3).URL() },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			u := start(t)
			var clients []redis.UniversalClient
			for range 2 {
				c, err := bus.Connect(u)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = c.Close() })
				clients = append(clients, c)
			}
			concurrentExactlyLimit(t, clients[0], clients[1])
		})
	}
}

func concurrentExactlyLimit(t *testing.T, rdb1, rdb2 redis.UniversalClient) {
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
	l := ratelimit.New(rdb)
	testenv.Timed(t, 900*time.Millisecond, func(w time.Duration) error {
		k := key(t, rdb)
		wide := ratelimit.Rule{Limit: 3, Window: w}
		_, t0, t0end := timedAllow(t, l, k, wide) // e0
		time.Sleep(w / 3)
		_, t1, t1end := timedAllow(t, l, k, wide) // e1, the second oldest
		allow(t, l, k, wide)
		d, t3, t3end := timedAllow(t, l, k, ratelimit.Rule{Limit: 2, Window: w})
		if t3end.Sub(t0) >= w-slack {
			return testenv.TooSlow("four calls took %s, a %s window", t3end.Sub(t0), w)
		}
		if t1.Sub(t0end) <= t3end.Sub(t3)+2*slack {
			return testenv.TooSlow("the last call took %s, as long as the gap between the first two events", t3end.Sub(t3))
		}
		if d.Allowed {
			t.Fatal("allowed with 3 events under a limit of 2")
		}
		// A slot frees when the window holds at most 1 event: when the
		// second oldest leaves (e1 + w), not when the oldest does.
		lo, hi := t1.Add(w).Sub(t3end)-slack, t1end.Add(w).Sub(t3)+slack
		if d.RetryAfter < lo || d.RetryAfter > hi {
			t.Fatalf("RetryAfter = %s, want in [%s, %s] (the 2nd oldest event's expiry)", d.RetryAfter, lo, hi)
		}
		return nil
	})
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
