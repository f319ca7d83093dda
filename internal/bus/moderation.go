package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The room's moderation channel, chatr:{schema}:moderation, tells the
// streamers that messages were deleted, so they drop them from their rings
// and tell the spectator pages. Like the message channel it is
// fire-and-forget: the moderation log in Postgres is the source of truth,
// and streamers catch up from it (store.DeletedAfter).

// Moderation is what the moderation channel carries.
type Moderation struct {
	// Deleted are the ids of messages deleted from the history.
	Deleted []int64 `json:"deleted"`
	// LogID is the moderation log id of the action (0: unknown).
	LogID int64 `json:"logId,omitempty"`
}

// ModerationChannel is the room's moderation channel: the room's key
// "moderation" beside its message channel, "messages".
func (b *Bus) ModerationChannel() string {
	return strings.TrimSuffix(b.channel, "messages") + "moderation"
}

// shardedChannels reports whether the bus's Redis is a cluster, where the
// room's channels are shard channels (see Bus).
func (b *Bus) shardedChannels() bool {
	_, ok := any(b.rdb).(*redis.ClusterClient)
	return ok
}

// PublishModeration sends m on the room's moderation channel.
func (b *Bus) PublishModeration(ctx context.Context, m Moderation) error {
	payload, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("while encoding a moderation event: %w", err)
	}
	if b.shardedChannels() {
		err = b.rdb.SPublish(ctx, b.ModerationChannel(), payload).Err()
	} else {
		err = b.rdb.Publish(ctx, b.ModerationChannel(), payload).Err()
	}
	if err != nil {
		return fmt.Errorf("while publishing a moderation event: %w", err)
	}
	return nil
}

// SubscribeModeration subscribes to the room's moderation channel (see
// Subscribe for how to read it).
func (b *Bus) SubscribeModeration(ctx context.Context) *redis.PubSub {
	if b.shardedChannels() {
		return b.rdb.SSubscribe(ctx, b.ModerationChannel())
	}
	return b.rdb.Subscribe(ctx, b.ModerationChannel())
}

// DecodeModeration parses a payload of the moderation channel.
func DecodeModeration(payload string) (Moderation, error) {
	var m Moderation
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		return Moderation{}, fmt.Errorf("while decoding a moderation event: %w", err)
	}
	return m, nil
}
