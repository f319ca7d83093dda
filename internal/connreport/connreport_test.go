package connreport

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// The key is the contract of docs/runtime.md; the streamer and the operator
// ship separately, so a change here must be a change there first.
func TestKey(t *testing.T) {
	if got, want := Key("room1", "streamer-7d9f-abcde"), "chatr:{room1}:streamer:conns:streamer-7d9f-abcde"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
}

func TestReportAndRead(t *testing.T) {
	ctx := context.Background()
	rdb, schema := testenv.Redis(t), testenv.Schema(t)
	other := testenv.Schema(t)
	for pod, n := range map[string]int64{"a": 0, "b": 4999, "c": 123456} {
		if err := Report(ctx, rdb, schema, pod, n, TTL); err != nil {
			t.Fatal(err)
		}
	}
	if err := Report(ctx, rdb, other, "d", 77, TTL); err != nil { // another room's pod
		t.Fatal(err)
	}
	got, err := Read(ctx, rdb, schema, []string{"a", "b", "c", "d", "never"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"a": 0, "b": 4999, "c": 123456}
	if len(got) != len(want) {
		t.Errorf("Read = %v, want %v", got, want)
	}
	for pod, n := range want {
		if got[pod] != n {
			t.Errorf("Read[%s] = %d, want %d (all: %v)", pod, got[pod], n, got)
		}
	}
	if ttl := rdb.PTTL(ctx, Key(schema, "b")).Val(); ttl <= 0 || ttl > TTL {
		t.Errorf("count TTL %s, want within (0, %s]", ttl, TTL)
	}
	if err := Clear(ctx, rdb, schema, "b"); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(ctx, rdb, schema, []string{"b"}); len(got) != 0 {
		t.Errorf("cleared count still read: %v", got)
	}
}

func TestReadSkipsExpiredAndMalformed(t *testing.T) {
	ctx := context.Background()
	rdb, schema := testenv.Redis(t), testenv.Schema(t)
	if err := Report(ctx, rdb, schema, "short", 10, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	rdb.Set(ctx, Key(schema, "text"), "many", TTL)
	rdb.Set(ctx, Key(schema, "negative"), "-5", TTL)
	rdb.Set(ctx, Key(schema, "ok"), "42", TTL)
	testenv.Eventually(t, 10*time.Second, "the short-lived count to expire", func() bool {
		return rdb.Exists(ctx, Key(schema, "short")).Val() == 0
	})
	got, err := Read(ctx, rdb, schema, []string{"short", "text", "negative", "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["ok"] != 42 {
		t.Errorf("Read = %v, want only ok: 42", got)
	}
}

func TestReadFailsWhenRedisIsDown(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	ctx := context.Background()
	if got, err := Read(ctx, rdb, "x", []string{"a"}); err == nil {
		t.Errorf("Read from a dead Redis = %v, nil; want an error", got)
	}
	// No pods, no question to ask: no error even with Redis down.
	if got, err := Read(ctx, rdb, "x", nil); err != nil || len(got) != 0 {
		t.Errorf("Read of no pods = %v, %v", got, err)
	}
	if err := Report(ctx, rdb, "x", "a", 1, TTL); err == nil {
		t.Error("Report to a dead Redis succeeded")
	}
}

func TestRunReportsUntilStoppedThenClears(t *testing.T) {
	rdb, schema := testenv.Redis(t), testenv.Schema(t)
	var n atomic.Int64
	n.Store(3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, rdb, schema, "p", 20*time.Millisecond, TTL, n.Load, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	waitFor := func(want int64) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("the count to become %d", want), func() error {
			if got, _ := Read(context.Background(), rdb, schema, []string{"p"}); got["p"] != want || len(got) != 1 {
				return fmt.Errorf("Read = %v", got)
			}
			return nil
		})
	}
	waitFor(3)
	n.Store(4100)
	waitFor(4100)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if got, _ := Read(context.Background(), rdb, schema, []string{"p"}); len(got) != 0 {
		t.Errorf("count still there after Run stopped: %v", got)
	}
}

// On a Redis Cluster one MGET reads every pod's count: the keys share the
// room's hash tag, hence one slot (a key outside it would be CROSSSLOT).
func TestReadOnCluster(t *testing.T) {
	ctx := context.Background()
	c := testenv.StartRedisCluster(t, 3)
	rdb, err := bus.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	schema := testenv.Schema(t)
	pods := []string{}
	for i := range 20 {
		pod := fmt.Sprintf("streamer-%d", i)
		pods = append(pods, pod)
		if err := Report(ctx, rdb, schema, pod, int64(i*10), TTL); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Read(ctx, rdb, schema, pods)
	if err != nil {
		t.Fatal(err)
	}
	for i, pod := range pods {
		if got[pod] != int64(i*10) {
			t.Errorf("Read[%s] = %d, want %d", pod, got[pod], i*10)
		}
	}
}
