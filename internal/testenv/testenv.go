// Package testenv gives tests the real services they need: a fresh Postgres
// schema (a new, empty room) and a Redis client whose keys are cleaned up.
// Postgres and Redis must be running (.ci/run starts them); a test that
// cannot reach them fails rather than skips, so CI never passes on nothing.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/store"
)

// DatabaseURL is the Postgres the tests use ($CHATR_TEST_DATABASE_URL).
func DatabaseURL() string {
	if u := os.Getenv("CHATR_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// RedisURL is the Redis the tests use ($CHATR_TEST_REDIS_URL).
func RedisURL() string {
	if u := os.Getenv("CHATR_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Schema returns the name of a new, unique room schema and drops it (and the
// room's Redis keys) when the test ends. The schema itself is created by
// whoever opens the store first.
func Schema(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, DatabaseURL()); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			_ = conn.Close(ctx)
		}
		rdb := redis.NewClient(mustRedisOptions(t))
		defer rdb.Close()
		iter := rdb.Scan(ctx, 0, bus.Key(schema)+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return schema
}

// Store opens a migrated store on a fresh schema.
func Store(t testing.TB) *store.Store {
	t.Helper()
	return StoreFor(t, Schema(t))
}

// StoreFor opens a migrated store on schema, closed at the end of the test.
func StoreFor(t testing.TB, schema string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{URL: DatabaseURL(), Schema: schema, Migrate: true})
	if err != nil {
		t.Fatalf("Postgres at %s is needed (start it, or set CHATR_TEST_DATABASE_URL): %v", DatabaseURL(), err)
	}
	t.Cleanup(s.Close)
	return s
}

// Redis returns a client to the test Redis, closed at the end of the test.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(mustRedisOptions(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s is needed (start it, or set CHATR_TEST_REDIS_URL): %v", RedisURL(), err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func mustRedisOptions(t testing.TB) *redis.Options {
	opt, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("bad CHATR_TEST_REDIS_URL: %v", err)
	}
	return opt
}
