package ratelimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/ratelimit"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// benchKey is a Redis key unique to this benchmark, deleted when it ends.
func benchKey(b *testing.B, rdb *redis.Client) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	k := "chatr:{rlbench_" + hex.EncodeToString(r[:]) + "}:rl"
	b.Cleanup(func() { rdb.Del(context.Background(), k) })
	return k
}

// BenchmarkAllow is one limit check against the real Redis: the script's
// round trip (EVALSHA on a sliding log) as every API request makes it.
// Allowed: the limit is never reached, each call adds an entry; the window
// is short so the log stays as small as in a busy room. Denied: the log is
// full and the call only counts it.
func BenchmarkAllow(b *testing.B) {
	rdb := testenv.Redis(b)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		rule    ratelimit.Rule
		allowed bool
	}{
		{"allowed", ratelimit.Rule{Limit: 1 << 30, Window: time.Second}, true},
		{"denied", ratelimit.Rule{Limit: 10, Window: time.Hour}, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := ratelimit.New(rdb)
			k := benchKey(b, rdb)
			for range 11 {
				if _, err := l.Allow(ctx, k, tc.rule); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				d, err := l.Allow(ctx, k, tc.rule)
				if err != nil {
					b.Fatal(err)
				}
				if d.Allowed != tc.allowed {
					b.Fatalf("allowed %v, want %v (%+v)", d.Allowed, tc.allowed, d)
				}
			}
		})
	}
}

// BenchmarkAllowWithSideCommand is the API's form: the check and the agent's
// activity record (one more command) in the same round trip.
func BenchmarkAllowWithSideCommand(b *testing.B) {
	rdb := testenv.Redis(b)
	ctx := context.Background()
	l := ratelimit.New(rdb)
	k := benchKey(b, rdb)
	side := k + ":seen"
	b.Cleanup(func() { rdb.Del(context.Background(), side) })
	rule := ratelimit.Rule{Limit: 1 << 30, Window: time.Second}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.AllowWith(ctx, k, rule, func(p redis.Pipeliner) { p.Set(ctx, side, "1", time.Minute) }); err != nil {
			b.Fatal(err)
		}
	}
}
