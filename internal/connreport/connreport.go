// Package connreport carries each streamer pod's live connection count to
// the operator's autoscaler through Redis. Both sides use this package, so
// they agree on the key, the encoding and what a missing count means
// (docs/runtime.md): the streamer writes its count as a decimal integer to
// chatr:{<schema>}:streamer:conns:<podName> every Interval with a TTL, and
// the operator reads the counts of the pods it knows with one MGET.
package connreport

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/bus"
)

// The contract's timing (docs/runtime.md): a count older than TTL has
// expired, so a crashed pod stops counting after at most TTL, and a pod
// that misses two reports in a row is still counted.
const (
	Interval = 5 * time.Second
	TTL      = 15 * time.Second
)

// Key is the Redis key of pod's count in the room whose schema is schema.
// The room's hash tag keeps all of a room's counts in one Redis Cluster
// slot, so one MGET reads them all.
func Key(schema, pod string) string {
	return bus.Key(schema, "streamer", "conns", pod)
}

// Report writes pod's live connection count with a time to live.
func Report(ctx context.Context, rdb redis.Cmdable, schema, pod string, n int64, ttl time.Duration) error {
	if err := rdb.Set(ctx, Key(schema, pod), n, ttl).Err(); err != nil {
		return fmt.Errorf("while reporting the connection count of %s: %w", pod, err)
	}
	return nil
}

// Clear deletes pod's count, so a streamer that stops is no longer counted
// at once rather than after the TTL.
func Clear(ctx context.Context, rdb redis.Cmdable, schema, pod string) error {
	if err := rdb.Del(ctx, Key(schema, pod)).Err(); err != nil {
		return fmt.Errorf("while clearing the connection count of %s: %w", pod, err)
	}
	return nil
}

// Read returns the live counts of pods, read with one MGET. A pod without a
// count (never reported, expired, or holding something that is not a
// non-negative integer) is absent from the map: the autoscaler treats it as
// missing, which never makes a scale change bigger. An error means Redis
// could not be read at all, and the autoscaler then holds the fleet's size.
func Read(ctx context.Context, rdb redis.Cmdable, schema string, pods []string) (map[string]int64, error) {
	counts := make(map[string]int64, len(pods))
	if len(pods) == 0 {
		return counts, nil
	}
	keys := make([]string, len(pods))
	for i, p := range pods {
		keys[i] = Key(schema, p)
	}
	vals, err := rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("while reading the streamer connection counts: %w", err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // nil: no such key
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			continue
		}
		counts[pods[i]] = n
	}
	return counts, nil
}

// Run reports count() every interval (and once at once) until ctx ends,
// then clears the key. A failed write is logged and retried on the next
// tick: the TTL covers a short Redis outage, and the streamer keeps serving.
func Run(ctx context.Context, rdb redis.Cmdable, schema, pod string, interval, ttl time.Duration, count func() int64, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := Report(ctx, rdb, schema, pod, count(), ttl); err != nil && ctx.Err() == nil {
			log.Warn("connection count not reported", "err", err)
		}
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			if err := Clear(cctx, rdb, schema, pod); err != nil {
				log.Warn("connection count not cleared", "err", err)
			}
			return
		case <-tick.C:
		}
	}
}
