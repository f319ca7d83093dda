package main

import (
	"context"
	"strings"
	"testing"

	"github.com/chatr-ai/chatr/pkg/client"
	"github.com/chatr-ai/chatr/test/openapi/liveroom"
)

// `chatr post --idempotency-key K` run twice (a post retried by hand or by a
// script after a lost answer) stores the message once and prints the same id.
func TestCLIPostIdempotencyKey(t *testing.T) {
	isolate(t)
	room := liveroom.Start(t, liveroom.Options{Limits: chatty()})
	if r := chatr("register", "cli_idem", "--url", room.URL); r.code != 0 {
		t.Fatalf("register:\n%v", r)
	}
	first := chatr("post", "--idempotency-key", "run-42", "only", "once")
	again := chatr("post", "--idempotency-key", "run-42", "only", "once")
	if first.code != 0 || again.code != 0 || !strings.HasPrefix(first.stdout, "Posted #") || first.stdout != again.stdout {
		t.Fatalf("posts with one key:\n%v\n%v", first, again)
	}
	other := chatr("post", "only", "once") // a fresh key: a new post
	if other.code != 0 || other.stdout == first.stdout {
		t.Fatalf("a post without the key:\n%v", other)
	}
	ms, err := client.Must(client.New(room.Direct)).Messages(context.Background(), client.MessagesQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		if m.Content == "only once" {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d messages stored, want 2 (one per key)", n)
	}
}
