package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/testenv"
)

// After a Redis restart the script is gone (NOSCRIPT): the limiter loads it
// again and resends the whole pipeline, extra commands included. A script
// text no Redis has seen (a unique comment) stands in for the restart, so the
// test needs no SCRIPT FLUSH on a Redis other tests share.
func TestReloadsLostScript(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	ctx := context.Background()
	var b [8]byte
	_, _ = rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	fresh := redis.NewScript(scriptSource + "\n-- " + tag)
	if ok, err := fresh.Exists(ctx, rdb).Result(); err != nil || ok[0] {
		t.Fatalf("script already loaded (%v, %v): the test would prove nothing", ok, err)
	}
	l := newLimiter(rdb, fresh)
	key, side := "chatr:{rltest_"+tag+"}:rl", "chatr:{rltest_"+tag+"}:side"
	t.Cleanup(func() { rdb.Del(context.Background(), key, side) })
	rule := Rule{Limit: 1, Window: time.Minute}
	d, err := l.AllowWith(ctx, key, rule, func(p redis.Pipeliner) { p.Set(ctx, side, "done", time.Minute) })
	if err != nil || !d.Allowed {
		t.Fatalf("first attempt: %+v, %v", d, err)
	}
	if v := rdb.Get(ctx, side).Val(); v != "done" {
		t.Fatalf("side command not run: %q", v)
	}
	if d, err := l.Allow(ctx, key, rule); err != nil || d.Allowed {
		t.Fatalf("second attempt: %+v, %v; want denied (the slot was taken once)", d, err)
	}
}

// A failing command sent along does not lose the decision: the caller gets
// it with the error and can refund the slot.
func TestSideCommandFailure(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	ctx := context.Background()
	var b [8]byte
	_, _ = rand.Read(b[:])
	key, other := "chatr:{rltest_"+hex.EncodeToString(b[:])+"}:rl", "chatr:{rltest_"+hex.EncodeToString(b[:])+"}:str"
	t.Cleanup(func() { rdb.Del(context.Background(), key, other) })
	rdb.Set(ctx, other, "a string", time.Minute)
	l := New(rdb)
	rule := Rule{Limit: 1, Window: time.Minute}
	d, err := l.AllowWith(ctx, key, rule, func(p redis.Pipeliner) { p.ZAdd(ctx, other, redis.Z{Score: 1, Member: "x"}) })
	if err == nil || !d.Allowed {
		t.Fatalf("got %+v, %v; want the allowed decision and the WRONGTYPE error", d, err)
	}
	if err := l.Refund(ctx, d); err != nil {
		t.Fatal(err)
	}
	if d, err := l.Allow(ctx, key, rule); err != nil || !d.Allowed {
		t.Fatalf("after refund: %+v, %v", d, err)
	}
}
