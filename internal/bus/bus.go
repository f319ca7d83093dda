// Package bus is the room's Redis fan-out channel and key space. The API
// publishes each committed message, in the contract's JSON, on the room's
// channel; every streamer subscribes to it. Redis pub/sub is fire-and-forget:
// Postgres stays the source of truth and streamers fill any gap from it.
package bus

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/model"
)

// Key returns the Redis key of a room's item: "chatr:{schema}:part:part".
// The braces are a Redis Cluster hash tag, so a room's keys share a slot and
// multi-key scripts keep working on a cluster.
func Key(schema string, parts ...string) string {
	k := "chatr:{" + schema + "}"
	for _, p := range parts {
		k += ":" + p
	}
	return k
}

// Connect opens a Redis client from a redis:// URL.
func Connect(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("while parsing the Redis URL: %w", err)
	}
	return redis.NewClient(opt), nil
}

// Bus publishes and subscribes to a room's messages.
type Bus struct {
	rdb     *redis.Client
	channel string
}

// New returns the bus of the room whose schema is schema.
func New(rdb *redis.Client, schema string) *Bus {
	return &Bus{rdb: rdb, channel: Key(schema, "messages")}
}

// Channel is the Redis channel messages are published on.
func (b *Bus) Channel() string { return b.channel }

// Publish sends messages, in order, in one pipelined round trip. Each payload
// is exactly the contract's <Message> JSON.
func (b *Bus) Publish(ctx context.Context, msgs []model.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	pipe := b.rdb.Pipeline()
	for i := range msgs {
		payload, err := json.Marshal(msgs[i])
		if err != nil {
			return fmt.Errorf("while encoding message %d: %w", msgs[i].ID, err)
		}
		pipe.Publish(ctx, b.channel, payload)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("while publishing %d messages: %w", len(msgs), err)
	}
	return nil
}

// Subscribe subscribes to the room's channel. The caller reads with
// Receive/ReceiveMessage (go-redis reconnects and resubscribes on its own;
// a *redis.Subscription value received after a reconnect tells the caller
// that messages may have been missed) and closes it when done.
func (b *Bus) Subscribe(ctx context.Context) *redis.PubSub {
	return b.rdb.Subscribe(ctx, b.channel)
}

// Decode parses a payload received from the channel.
func Decode(payload string) (model.Message, error) {
	var m model.Message
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		return model.Message{}, fmt.Errorf("while decoding a bus message: %w", err)
	}
	return m, nil
}
