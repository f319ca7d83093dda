package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// PublishCounted delivers every message of a batch, in order, and raises
// the room's posts counter by the batch's size in the same round trip.
func TestPublishCountedPublishesAndCounts(t *testing.T) {
	rdb, err := bus.Connect(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	schema := testenv.Schema(t)
	b := bus.New(rdb, schema)
	ps, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	before, err := bus.ReadPosts(ctx, rdb, schema)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []model.Message{{ID: 7, Content: "a"}, {ID: 8, Content: "b"}, {ID: 9, Content: "c"}}
	if err, countErr := b.PublishCounted(ctx, msgs); err != nil || countErr != nil {
		t.Fatalf("PublishCounted: %v, %v", err, countErr)
	}
	for _, want := range msgs {
		m, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := bus.Decode(m.Payload)
		if err != nil || got.ID != want.ID {
			t.Fatalf("received %+v (%v), want id %d", got, err, want.ID)
		}
	}
	after, err := bus.ReadPosts(ctx, rdb, schema)
	if err != nil || after-before != int64(len(msgs)) {
		t.Fatalf("posts counter %d -> %d (%v), want +%d", before, after, err, len(msgs))
	}
}
