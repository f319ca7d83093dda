package bus

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The room's posts counter: every API process adds the messages it
// committed (not replays of an Idempotency-Key), once per batch, so the
// counter is the room's total of messages posted through the APIs since
// Redis last lost its data. The operator's autoscaler reads it every
// evaluation and writes the rate to status.postsPerSecond.

func (b *Bus) postsKey() string { return strings.TrimSuffix(b.channel, ":messages") + ":posts" }

// PostsKey is the Redis key of the room's posts counter.
func PostsKey(schema string) string { return Key(schema, "posts") }

// CountPosts adds n to the room's posts counter.
func (b *Bus) CountPosts(ctx context.Context, n int) error {
	if err := b.rdb.IncrBy(ctx, b.postsKey(), int64(n)).Err(); err != nil {
		return fmt.Errorf("while counting %d posts: %w", n, err)
	}
	return nil
}

// ReadPosts returns the room's posts counter (0 when nothing was counted yet).
func ReadPosts(ctx context.Context, rdb redis.Cmdable, schema string) (int64, error) {
	s, err := rdb.Get(ctx, PostsKey(schema)).Result()
	if err == redis.Nil {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("while reading the posts counter: %w", err)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("the posts counter holds %q, not an integer", s)
	}
	return n, nil
}
