// Package bus is the room's Redis fan-out channel and key space. The API
// publishes each committed message, in the contract's JSON, on the room's
// channel; every streamer subscribes to it. Redis pub/sub is fire-and-forget:
// Postgres stays the source of truth and streamers fill any gap from it.
package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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

// Bus publishes and subscribes to a room's messages.
type Bus struct {
	rdb     redis.UniversalClient
	channel string
	// sharded: on a Redis Cluster the channel is a shard channel (SPUBLISH,
	// SSUBSCRIBE), served by the nodes of its slot alone, as a plain channel
	// would be broadcast to every node of the cluster. The channel's hash tag
	// is the room's, so it lives on the same slot as the room's keys.
	sharded bool
}

// New returns the bus of the room whose schema is schema.
func New(rdb redis.UniversalClient, schema string) *Bus {
	_, sharded := rdb.(*redis.ClusterClient)
	return &Bus{rdb: rdb, channel: Key(schema, "messages"), sharded: sharded}
}

// Channel is the Redis channel messages are published on.
func (b *Bus) Channel() string { return b.channel }

// Publish sends messages, in order, in one pipelined round trip. Each payload
// is exactly the contract's <Message> JSON.
func (b *Bus) Publish(ctx context.Context, msgs []model.Message) error {
	err, _ := b.publish(ctx, msgs, false)
	return err
}

// PublishCounted is Publish with the room's posts counter (CountPosts)
// raised by len(msgs) in the same round trip. countErr is the counter's
// own failure, which costs only the posts/s figure.
func (b *Bus) PublishCounted(ctx context.Context, msgs []model.Message) (err, countErr error) {
	return b.publish(ctx, msgs, true)
}

func (b *Bus) publish(ctx context.Context, msgs []model.Message, count bool) (error, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	pipe := b.rdb.Pipeline()
	for i := range msgs {
		payload, err := json.Marshal(msgs[i])
		if err != nil {
			return fmt.Errorf("while encoding message %d: %w", msgs[i].ID, err), nil
		}
		if b.sharded {
			pipe.SPublish(ctx, b.channel, payload)
		} else {
			pipe.Publish(ctx, b.channel, payload)
		}
	}
	var incr *redis.IntCmd
	if count {
		incr = pipe.IncrBy(ctx, b.postsKey(), int64(len(msgs)))
	}
	cmds, _ := pipe.Exec(ctx)
	var pubErr, countErr error
	for _, c := range cmds {
		if c.Err() == nil {
			continue
		}
		if incr != nil && c == redis.Cmder(incr) {
			countErr = fmt.Errorf("while counting %d posts: %w", len(msgs), c.Err())
		} else if pubErr == nil {
			pubErr = fmt.Errorf("while publishing %d messages: %w", len(msgs), c.Err())
		}
	}
	return pubErr, countErr
}

// Subscribe subscribes to the room's channel and waits for the server to
// confirm it. The caller reads with Receive/ReceiveMessage (go-redis
// reconnects and resubscribes on its own; a *redis.Subscription value
// received after a reconnect tells the caller that messages may have been
// missed) and closes it when done.
//
// On a cluster whose slot map the client holds is out of date (the slot
// moved), the node refuses with MOVED: the client reloads the map and
// subscribes again, until ctx ends.
func (b *Bus) Subscribe(ctx context.Context) (*redis.PubSub, error) {
	for {
		var ps *redis.PubSub
		if b.sharded {
			ps = b.rdb.SSubscribe(ctx, b.channel)
		} else {
			ps = b.rdb.Subscribe(ctx, b.channel)
		}
		_, err := ps.Receive(ctx)
		if err == nil {
			return ps, nil
		}
		_ = ps.Close()
		cc, ok := b.rdb.(*redis.ClusterClient)
		if !ok || !strings.HasPrefix(err.Error(), "MOVED ") {
			return nil, fmt.Errorf("while subscribing to the room's channel: %w", err)
		}
		cc.ReloadState(ctx)
		// The reload runs in the background; a command through the
		// client follows the redirect and waits for it.
		_ = cc.Exists(ctx, b.channel).Err()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Dropped reports whether m is the server ending the subscription on its
// own: a cluster node that no longer serves the channel's slot (resharded,
// or demoted to a replica) sends SUNSUBSCRIBE, and go-redis does not
// subscribe again after it. The caller closes that subscription and opens
// a new one, which finds the node that serves the slot now.
func (b *Bus) Dropped(m *redis.Subscription) bool {
	return m.Channel == b.channel && (m.Kind == "sunsubscribe" || m.Kind == "unsubscribe")
}

// Decode parses a payload received from the channel.
func Decode(payload string) (model.Message, error) {
	var m model.Message
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		return model.Message{}, fmt.Errorf("while decoding a bus message: %w", err)
	}
	return m, nil
}
