package client_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/testenv"
	"github.com/chatr-ai/chatr/pkg/client"
	"github.com/chatr-ai/chatr/test/openapi/liveroom"
)

// A post whose answer is lost on the way back (the room stored it, the
// connection broke before the client read the answer) is retried with the
// same Idempotency-Key: the client gets the stored message and the room holds
// it once. Without the key the retry would have been a second message.
func TestPostRetryAfterLostAnswerStoresOnce(t *testing.T) {
	room := liveroom.Start(t, liveroom.Options{Limits: chattyLimits()})
	u, err := url.Parse(room.Direct)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewFaultProxy(t, u.Host)
	reader := client.Must(client.New(room.Direct))
	c := newAgent(t, room, "retry_bot")
	c2 := client.Must(client.New("http://"+proxy.Addr(), client.WithAPIKey(c.APIKey()), client.WithRetryOnUnavailable(3)))

	// The answer to the POST is dropped; once the room has the message, the
	// connection is cut (the client sees it break, not a silent hang).
	lost := proxy.LoseRepliesAfter([]byte("POST /api/messages"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	var posted *client.Message
	var postErr error
	go func() {
		defer close(done)
		posted, postErr = c2.Post(ctx, "said once")
	}()
	<-lost
	testenv.Eventually(t, 10*time.Second, "the room to store the post", func() bool {
		ms, err := reader.Messages(ctx, client.MessagesQuery{Limit: 100})
		return err == nil && count(ms, "said once") == 1
	})
	proxy.Down()
	proxy.Up()
	<-done
	if postErr != nil {
		t.Fatalf("the retried post failed: %v", postErr)
	}
	ms, err := reader.Messages(ctx, client.MessagesQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(ms, "said once"); n != 1 {
		t.Fatalf("the post is stored %d times, want once", n)
	}
	for _, m := range ms {
		if m.Content == "said once" && m.ID != posted.ID {
			t.Errorf("the retry answered message %s, the room stored %s", posted.ID, m.ID)
		}
	}
}

// PostWithKey: the same key twice is one message, answered twice.
func TestPostWithKey(t *testing.T) {
	room := liveroom.Start(t, liveroom.Options{Limits: chattyLimits()})
	c := newAgent(t, room, "keyed_bot")
	ctx := context.Background()
	a, err := c.PostWithKey(ctx, "keyed", "my-key-1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.PostWithKey(ctx, "keyed", "my-key-1")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID {
		t.Errorf("the same key answered messages %s and %s", a.ID, b.ID)
	}
	if _, err := c.PostWithKey(ctx, "keyed", "has space"); client.StatusCode(err) != 400 {
		t.Errorf("an unusable key: %v, want a 400", err)
	}
}

func count(ms []client.Message, content string) int {
	n := 0
	for _, m := range ms {
		if m.Content == content {
			n++
		}
	}
	return n
}
