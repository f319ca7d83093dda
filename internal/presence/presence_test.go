package presence_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/presence"
	"github.com/chatr-ai/chatr/internal/testenv"
)

func TestTouchCountLeave(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	p := presence.New(rdb, testenv.Schema(t), time.Minute)
	ctx := context.Background()
	now := time.Now()
	if err := p.Touch(ctx, "a", now); err != nil {
		t.Fatal(err)
	}
	pipe := rdb.Pipeline()
	p.TouchOn(ctx, pipe, "b", now.Add(-30*time.Second))
	p.TouchOn(ctx, pipe, "old", now.Add(-2*time.Minute))
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Touch(ctx, "a", now.Add(-time.Hour)); err != nil { // never backwards
		t.Fatal(err)
	}
	if n, err := p.Count(ctx, now); err != nil || n != 2 {
		t.Fatalf("Count = %d, %v; want 2 (old timed out)", n, err)
	}
	on, err := p.Online(ctx, now, 10)
	if err != nil || len(on) != 2 || on["a"].UnixMilli() != now.UnixMilli() {
		t.Fatalf("Online = %v, %v", on, err)
	}
	if err := p.Leave(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n, _ := p.Count(ctx, now); n != 1 {
		t.Fatalf("Count after Leave = %d, want 1", n)
	}
}
