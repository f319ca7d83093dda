package controllers

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"

	"github.com/chatr-ai/chatr/internal/roomevents"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// TestAutoscalerRelaysRoomEvents: a summary a pod publishes on the room's
// Redis stream (the verifier's retention pass, say) becomes one Event on the
// room at the next evaluation, and only one: it is acknowledged once emitted.
// An invalid entry is skipped.
func TestAutoscalerRelaysRoomEvents(t *testing.T) {
	f := newFleet(t, testenv.RedisURL(), nil)
	ctx := context.Background()
	t.Cleanup(func() { f.rdb.Del(context.Background(), roomevents.Key(f.schema)) })
	f.syncPods()
	f.spread(0)
	f.evaluate()
	if got := f.events.with("RetentionRun"); len(got) != 0 {
		t.Fatalf("events before any summary: %+v", got)
	}

	must(roomevents.Publish(ctx, f.rdb, f.schema, roomevents.Event{Type: roomevents.Normal, Reason: "RetentionRun",
		Message: "retention deleted 250 messages", Source: "verifier/v-1"}))
	must(roomevents.Publish(ctx, f.rdb, f.schema, roomevents.Event{Type: roomevents.Warning, Reason: "BanWave",
		Message: "12 agents banned in 1m", Source: "api/a-1"}))
	must(f.rdb.XAdd(ctx, &redis.XAddArgs{Stream: roomevents.Key(f.schema), Values: []any{"type", "Loud", "reason", "x"}}).Err())
	f.evaluate()
	f.evaluate()

	run := f.events.with("RetentionRun")
	if len(run) != 1 || run[0].typ != corev1.EventTypeNormal || run[0].note != "retention deleted 250 messages (from verifier/v-1)" {
		t.Errorf("RetentionRun events %+v, want one", run)
	}
	if ban := f.events.with("BanWave"); len(ban) != 1 || ban[0].typ != corev1.EventTypeWarning {
		t.Errorf("BanWave events %+v, want one Warning", ban)
	}
	if bad := f.events.with("x"); len(bad) != 0 {
		t.Errorf("an invalid entry was emitted: %+v", bad)
	}
	if left, err := roomevents.Read(ctx, f.rdb, f.schema, 10); err != nil || len(left) != 0 {
		t.Errorf("left unacknowledged: %+v, %v", left, err)
	}
}
