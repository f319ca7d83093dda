package api

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// countMessages counts the room's messages with content.
func countMessages(t *testing.T, srv *Server, content string) int {
	t.Helper()
	var n int
	if err := srv.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM messages WHERE content = $1`, content).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func messageID(t *testing.T, r resp) string {
	t.Helper()
	m, _ := r.body["message"].(map[string]any)
	id, _ := m["id"].(string)
	if id == "" {
		t.Fatalf("no message id in %s", r.raw)
	}
	return id
}

// The same key from the same agent gets the first answer and no second
// message (even when the body differs, and even when the retries race each
// other into one batch); another agent's same key is its own; no key, or
// another key, is a new post.
func TestIdempotencyKey(t *testing.T) {
	srv, ts := testServer(t, testConfig(t))
	a := register(t, ts, "idem_a")
	b := register(t, ts, "idem_b")
	verifyAs(t, srv, a.id)
	verifyAs(t, srv, b.id)

	first := post(t, ts, a, "once", "Idempotency-Key: same")
	want(t, first, 200, "")
	if first.header.Get(replayedHeader) != "" {
		t.Errorf("a first answer is marked replayed")
	}
	again := post(t, ts, a, "once, edited", "Idempotency-Key: same")
	want(t, again, 200, "")
	if messageID(t, again) != messageID(t, first) || again.header.Get(replayedHeader) != "true" {
		t.Errorf("retry answered %s (replayed %q), want message %s replayed", again.raw, again.header.Get(replayedHeader), messageID(t, first))
	}
	if countMessages(t, srv, "once") != 1 || countMessages(t, srv, "once, edited") != 0 {
		t.Errorf("a retried post was stored again")
	}
	other := post(t, ts, b, "b's own", "Idempotency-Key: same")
	want(t, other, 200, "")
	if messageID(t, other) == messageID(t, first) {
		t.Errorf("agent b's key answered agent a's message")
	}
	want(t, post(t, ts, a, "no key"), 200, "")
	want(t, post(t, ts, a, "no key"), 200, "")
	if n := countMessages(t, srv, "no key"); n != 2 {
		t.Errorf("posts without a key: %d stored, want 2", n)
	}

	// Racing retries: one message, every answer the same.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := post(t, ts, b, "raced", "Idempotency-Key: race")
			if r.status == 200 {
				ids[i] = messageID(t, r)
			} else {
				t.Errorf("racing retry answered %d %s", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Errorf("racing retries answered different messages: %v", ids)
			break
		}
	}
	if n := countMessages(t, srv, "raced"); n != 1 {
		t.Errorf("racing retries stored %d messages, want 1", n)
	}
}

// A key is honoured for 24 hours: after that the same key is a new post,
// and the maintenance purge deletes the old row.
func TestIdempotencyKeyExpires(t *testing.T) {
	srv, ts := testServer(t, testConfig(t))
	a := register(t, ts, "idem_old")
	verifyAs(t, srv, a.id)
	first := post(t, ts, a, "yesterday", "Idempotency-Key: old")
	want(t, first, 200, "")
	ctx := context.Background()
	if _, err := srv.st.Pool().Exec(ctx, `UPDATE idempotency_keys SET created_at = created_at - interval '24 hours 1 second'`); err != nil {
		t.Fatal(err)
	}
	second := post(t, ts, a, "today", "Idempotency-Key: old")
	want(t, second, 200, "")
	if messageID(t, second) == messageID(t, first) || second.header.Get(replayedHeader) != "" {
		t.Fatalf("an expired key was replayed: %s", second.raw)
	}
	if _, err := srv.st.Pool().Exec(ctx, `UPDATE idempotency_keys SET created_at = created_at - interval '25 hours'`); err != nil {
		t.Fatal(err)
	}
	n, err := srv.st.PurgeIdempotencyKeys(ctx)
	if err != nil || n != 1 {
		t.Fatalf("purge deleted %d keys (%v), want 1", n, err)
	}
}

// Unusable keys are the client's mistake: a 400 in the envelope, nothing stored.
func TestIdempotencyKeyRejected(t *testing.T) {
	srv, ts := testServer(t, testConfig(t))
	a := register(t, ts, "idem_bad")
	for _, k := range []string{"has space", strings.Repeat("k", 256), "tab\there", "é"} {
		r := post(t, ts, a, "bad key", "Idempotency-Key: "+k)
		want(t, r, http.StatusBadRequest, errBadKey)
	}
	// An empty header and a repeated header.
	r := call(t, ts, "POST", "/api/messages", `{"content":"bad key"}`, a.bearer(), "Idempotency-Key:")
	want(t, r, http.StatusBadRequest, errBadKey)
	r = call(t, ts, "POST", "/api/messages", `{"content":"bad key"}`, a.bearer(), "Idempotency-Key: x", "Idempotency-Key: y")
	want(t, r, http.StatusBadRequest, errBadKey)
	if n := countMessages(t, srv, "bad key"); n != 0 {
		t.Errorf("posts with unusable keys were stored %d times", n)
	}
}

// A repeated key is answered before the message limit is counted: an
// unverified agent (1 message per 5 minutes) retrying the post that used
// its slot gets the first answer, not a 429; a new post is still refused.
func TestIdempotencyKeyBeforeTheLimit(t *testing.T) {
	_, ts := testServer(t, testConfig(t))
	a := register(t, ts, "idem_unverified")
	first := post(t, ts, a, "my one message", "Idempotency-Key: once")
	want(t, first, 200, "")
	again := post(t, ts, a, "my one message", "Idempotency-Key: once")
	want(t, again, 200, "")
	if messageID(t, again) != messageID(t, first) {
		t.Errorf("the retry answered another message: %s", again.raw)
	}
	want(t, post(t, ts, a, "a second message", "Idempotency-Key: twice"), http.StatusTooManyRequests, "")
}
