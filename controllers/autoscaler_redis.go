package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/bus"
)

// Timeouts of the autoscaler's Redis clients, unless the URL sets its own:
// a count read must fail fast, so an unreachable Redis holds the fleet's size
// for one evaluation rather than stalling the reconciler.
const (
	redisDialTimeout = time.Second
	redisIOTimeout   = time.Second
)

// redisClients keeps one Redis client per Redis URL, shared by the rooms
// that use it, and the URL each room's Secret holds. The operator may only
// get Secrets (no list or watch, so no cache of them): a Secret is read from
// the API server when its URL was read more than maxAge ago, or when the
// counts could not be read with it (forget), so a Secret fixed to name a
// working Redis is used at the next evaluation. A client no room uses any
// more (its room is gone, or its Secret now names another Redis) is closed.
//
// The zero value is ready to use. A room's evaluations never run at once
// (the work queue serialises a key), and a client is closed only when no
// room refers to it, so no evaluation ever holds a closed client.
type redisClients struct {
	mu sync.Mutex
	// urls are the URLs read from Secret keys, by Secret key, with when
	// they were read.
	urls map[secretKey]resolvedURL
	// clients are the open clients, by URL.
	clients map[string]redis.UniversalClient
	// rooms are the Secret key and URL each room uses.
	rooms map[types.NamespacedName]roomRedis
	// connect opens a client; nil means newRedisClient (tests replace it).
	connect func(url string) (redis.UniversalClient, error)
}

type secretKey struct{ namespace, name, key string }

type resolvedURL struct {
	readAt time.Time
	url    string
}

type roomRedis struct {
	secret secretKey
	url    string
}

// forRoom returns the client of the Redis the room's Secret names; room
// must be defaulted. direct reads the Secret from the API server when the
// URL known for it was read before now - maxAge (or never).
func (c *redisClients) forRoom(ctx context.Context, direct client.Reader, room *chatrv1.ChatRoom, now time.Time, maxAge time.Duration) (redis.UniversalClient, error) {
	key := secretKey{room.Namespace, room.Spec.Redis.SecretName, room.Spec.Redis.SecretKey}
	roomKey := client.ObjectKeyFromObject(room)

	c.mu.Lock()
	resolved, ok := c.urls[key]
	c.mu.Unlock()
	if !ok || now.Sub(resolved.readAt) >= maxAge || now.Before(resolved.readAt) {
		var sec corev1.Secret
		if err := direct.Get(ctx, types.NamespacedName{Namespace: key.namespace, Name: key.name}, &sec); err != nil {
			if apierrors.IsNotFound(err) {
				c.release(roomKey)
				return nil, fmt.Errorf("the Redis Secret %q does not exist", key.name)
			}
			return nil, fmt.Errorf("while getting secret %s/%s: %w", key.namespace, key.name, err)
		}
		v, ok := sec.Data[key.key]
		if !ok || len(v) == 0 {
			c.release(roomKey)
			return nil, fmt.Errorf("the Redis Secret %q has no key %q", key.name, key.key)
		}
		resolved = resolvedURL{readAt: now, url: string(v)}
		c.mu.Lock()
		if c.urls == nil {
			c.urls = map[secretKey]resolvedURL{}
		}
		c.urls[key] = resolved
		c.mu.Unlock()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	rdb := c.clients[resolved.url]
	if rdb == nil {
		connect := c.connect
		if connect == nil {
			connect = newRedisClient
		}
		var err error
		if rdb, err = connect(resolved.url); err != nil {
			// The message must not carry the URL: it may hold a password.
			return nil, fmt.Errorf("the Redis URL in Secret %q key %q: %w", key.name, key.key, err)
		}
		if c.clients == nil {
			c.clients = map[string]redis.UniversalClient{}
		}
		c.clients[resolved.url] = rdb
	}
	if c.rooms == nil {
		c.rooms = map[types.NamespacedName]roomRedis{}
	}
	prev, had := c.rooms[roomKey]
	c.rooms[roomKey] = roomRedis{secret: key, url: resolved.url}
	if had {
		c.dropUnusedLocked(prev)
	}
	return rdb, nil
}

// forget drops the URL known for the room's Secret, so the next evaluation
// reads the Secret again: the counts could not be read with that URL, and
// the Secret may have been fixed since.
func (c *redisClients) forget(room *chatrv1.ChatRoom) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.urls, secretKey{room.Namespace, room.Spec.Redis.SecretName, room.Spec.Redis.SecretKey})
}

// release forgets the room's Redis (the room is gone, or its Secret is) and
// closes what no other room uses.
func (c *redisClients) release(room types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, ok := c.rooms[room]
	if !ok {
		return
	}
	delete(c.rooms, room)
	c.dropUnusedLocked(prev)
}

// dropUnusedLocked closes prev's client and forgets prev's Secret URL when
// no room uses them any more. c.mu must be held.
func (c *redisClients) dropUnusedLocked(prev roomRedis) {
	urlUsed, secretUsed := false, false
	for _, r := range c.rooms {
		urlUsed = urlUsed || r.url == prev.url
		secretUsed = secretUsed || r.secret == prev.secret
	}
	if !urlUsed {
		if rdb := c.clients[prev.url]; rdb != nil {
			_ = rdb.Close()
			delete(c.clients, prev.url)
		}
	}
	if !secretUsed {
		delete(c.urls, prev.secret)
	}
}

// closeAll closes every client (the manager is stopping).
func (c *redisClients) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for url, rdb := range c.clients {
		_ = rdb.Close()
		delete(c.clients, url)
	}
	c.rooms, c.urls = nil, nil
}

// newRedisClient opens a small client for count reads: two connections per
// server, short timeouts (unless the URL sets them), one retry so that a
// connection a restarted Redis closed does not fail an evaluation. It takes
// every URL form the components take (one server, Sentinel, Cluster).
func newRedisClient(url string) (redis.UniversalClient, error) {
	rdb, err := bus.ConnectWith(url, bus.Bounds{Dial: redisDialTimeout, IO: redisIOTimeout, PoolSize: 2})
	if err != nil {
		// bus's errors never quote the URL; say which forms are taken.
		return nil, fmt.Errorf("not a Redis URL the room can use: %w", err)
	}
	return rdb, nil
}
