// Package presence keeps who is online, fleet-wide, in one Redis sorted set
// per room (member: agent id; score: last seen, Unix milliseconds). An agent
// is online from its first authenticated request until it disconnects or
// stays idle longer than the timeout; counting the online agents is one
// ZCOUNT, never a scan.
package presence

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/bus"
)

// Presence is a room's online set.
type Presence struct {
	rdb     redis.UniversalClient
	key     string
	timeout time.Duration
}

// New returns the presence set of the room whose schema is schema.
func New(rdb redis.UniversalClient, schema string, timeout time.Duration) *Presence {
	return &Presence{rdb: rdb, key: bus.Key(schema, "presence"), timeout: timeout}
}

// Timeout is how long an idle agent stays online.
func (p *Presence) Timeout() time.Duration { return p.timeout }

// Touch marks agent id as seen at t (never moving its last-seen backwards).
func (p *Presence) Touch(ctx context.Context, id string, t time.Time) error {
	if err := p.TouchOn(ctx, p.rdb, id, t).Err(); err != nil {
		return fmt.Errorf("while marking agent %s online: %w", id, err)
	}
	return nil
}

// TouchOn is Touch sent through c, typically a pipeline, so that recording
// activity shares a round trip with other commands (the API sends it with
// the message rate-limit check). It is idempotent.
func (p *Presence) TouchOn(ctx context.Context, c redis.Cmdable, id string, t time.Time) *redis.IntCmd {
	return c.ZAddGT(ctx, p.key, redis.Z{Score: float64(t.UnixMilli()), Member: id})
}

// TouchMany restores several agents at once (rebuilding from Postgres).
func (p *Presence) TouchMany(ctx context.Context, seen map[string]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	zs := make([]redis.Z, 0, len(seen))
	for id, t := range seen {
		zs = append(zs, redis.Z{Score: float64(t.UnixMilli()), Member: id})
	}
	if err := p.rdb.ZAddGT(ctx, p.key, zs...).Err(); err != nil {
		return fmt.Errorf("while restoring presence: %w", err)
	}
	return nil
}

// Leave marks agent id offline.
func (p *Presence) Leave(ctx context.Context, id string) error {
	if err := p.rdb.ZRem(ctx, p.key, id).Err(); err != nil {
		return fmt.Errorf("while marking agent %s offline: %w", id, err)
	}
	return nil
}

func (p *Presence) cutoff(now time.Time) string {
	return fmt.Sprintf("(%d", now.Add(-p.timeout).UnixMilli())
}

// Count returns how many agents are online at now.
func (p *Presence) Count(ctx context.Context, now time.Time) (int64, error) {
	n, err := p.rdb.ZCount(ctx, p.key, p.cutoff(now), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("while counting online agents: %w", err)
	}
	return n, nil
}

// Online returns up to limit online agents (most recently seen first) with
// their last-seen times, and forgets agents idle past the timeout.
func (p *Presence) Online(ctx context.Context, now time.Time, limit int64) (map[string]time.Time, error) {
	pipe := p.rdb.Pipeline()
	pipe.ZRemRangeByScore(ctx, p.key, "-inf", fmt.Sprintf("%d", now.Add(-p.timeout).UnixMilli()))
	res := pipe.ZRevRangeByScoreWithScores(ctx, p.key, &redis.ZRangeBy{Min: p.cutoff(now), Max: "+inf", Count: limit})
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("while listing online agents: %w", err)
	}
	out := make(map[string]time.Time, len(res.Val()))
	for _, z := range res.Val() {
		id, _ := z.Member.(string)
		out[id] = time.UnixMilli(int64(z.Score)).UTC()
	}
	return out, nil
}

// Exists reports whether the set exists at all: after a Redis restart it does
// not, and the caller rebuilds it from Postgres.
func (p *Presence) Exists(ctx context.Context) (bool, error) {
	n, err := p.rdb.Exists(ctx, p.key).Result()
	if err != nil {
		return false, fmt.Errorf("while checking presence: %w", err)
	}
	return n > 0, nil
}
