package roomevents

import (
	"context"
	"strings"
	"testing"

	"github.com/chatr-ai/chatr/internal/testenv"
)

// TestPublishReadAck: events come out in order, once acknowledged they do not
// come back, one read but not acknowledged (a leader that died before
// emitting it) comes back first, and rooms do not see each other's events.
func TestPublishReadAck(t *testing.T) {
	ctx := context.Background()
	rdb, schema, other := testenv.Redis(t), testenv.Schema(t), testenv.Schema(t)
	t.Cleanup(func() { rdb.Del(context.Background(), Key(schema), Key(other)) })

	if got, err := Read(ctx, rdb, schema, 10); err != nil || len(got) != 0 {
		t.Fatalf("an empty room: %v, %v", got, err)
	}
	for _, e := range []Event{
		{Type: Normal, Reason: "RetentionRun", Message: "deleted 5 messages", Source: "verifier/v-1"},
		{Type: Warning, Reason: "RetentionFailed", Message: "statement timeout", Source: "verifier/v-1"},
	} {
		if err := Publish(ctx, rdb, schema, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := Publish(ctx, rdb, other, Event{Type: Normal, Reason: "Other", Message: "x"}); err != nil {
		t.Fatal(err)
	}
	got, err := Read(ctx, rdb, schema, 10)
	if err != nil || len(got) != 2 || got[0].Reason != "RetentionRun" || got[1].Type != Warning || got[0].Source != "verifier/v-1" {
		t.Fatalf("read %+v, %v", got, err)
	}
	// Not acknowledged: read again, first.
	if err := Publish(ctx, rdb, schema, Event{Type: Normal, Reason: "BanWave", Message: "12 agents banned"}); err != nil {
		t.Fatal(err)
	}
	again, err := Read(ctx, rdb, schema, 10)
	if err != nil || len(again) != 2 || again[0].ID != got[0].ID {
		t.Fatalf("unacknowledged events not read again first: %+v, %v", again, err)
	}
	if err := Ack(ctx, rdb, schema, got[0].ID, got[1].ID); err != nil {
		t.Fatal(err)
	}
	next, err := Read(ctx, rdb, schema, 10)
	if err != nil || len(next) != 1 || next[0].Reason != "BanWave" {
		t.Fatalf("after the ack: %+v, %v", next, err)
	}
	must(t, Ack(ctx, rdb, schema, next[0].ID))
	if rest, err := Read(ctx, rdb, schema, 10); err != nil || len(rest) != 0 {
		t.Fatalf("everything acknowledged, still read %+v, %v", rest, err)
	}
}

func TestPublishRefusesBadEvents(t *testing.T) {
	ctx := context.Background()
	rdb, schema := testenv.Redis(t), testenv.Schema(t)
	for _, e := range []Event{
		{Type: "Error", Reason: "X", Message: "m"},
		{Type: Normal, Reason: "not camel", Message: "m"},
		{Type: Normal, Reason: "X"},
	} {
		if err := Publish(ctx, rdb, schema, e); err == nil {
			t.Errorf("%+v published", e)
		}
	}
	long := strings.Repeat("é", MaxMessage)
	must(t, Publish(ctx, rdb, schema, Event{Type: Normal, Reason: "Long", Message: long}))
	t.Cleanup(func() { rdb.Del(context.Background(), Key(schema)) })
	got, err := Read(ctx, rdb, schema, 1)
	if err != nil || len(got) != 1 || len(got[0].Message) > MaxMessage || !strings.HasPrefix(long, got[0].Message) {
		t.Fatalf("long message: %d bytes, %v", len(got[0].Message), err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
