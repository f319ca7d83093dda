// Package bus is the room's Redis fan-out channel and key space. The API
// publishes each committed message, in the contract's JSON, on the room's
// channel; every streamer subscribes to it. Redis pub/sub is fire-and-forget:
// Postgres stays the source of truth and streamers fill any gap from it.
package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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

// Time bounds of every Redis call (docs/runtime.md, "Time bounds"). Redis
// answers in well under a millisecond when it is well, so a call that has
// waited this long is waiting for a server that is gone or frozen.
const (
	DialTimeout = 2 * time.Second
	// IOTimeout bounds one read or write of a call whose context has no
	// deadline; a context deadline, when earlier, wins (ContextTimeoutEnabled).
	IOTimeout = 2 * time.Second
	// MaxRetries: one more try for a connection that broke under a call,
	// within the caller's deadline; never a loop of retries past it.
	MaxRetries = 1
)

// Connect opens a Redis client from a redis:// URL, with time bounds a
// request can rely on: go-redis's defaults (3 s per read, three retries with
// backoff, contexts' deadlines ignored) turned a frozen Redis into a 20 s
// wait. Here every call ends by its context's deadline, or IOTimeout.
// Subscriptions are not affected: their reads wait as long as their caller
// says (PubSub.ReceiveTimeout).
func Connect(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("while parsing the Redis URL: %w", err)
	}
	opt.ContextTimeoutEnabled = true
	opt.DialTimeout = DialTimeout
	opt.ReadTimeout = IOTimeout
	opt.WriteTimeout = IOTimeout
	opt.PoolTimeout = IOTimeout
	opt.MaxRetries = MaxRetries
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
