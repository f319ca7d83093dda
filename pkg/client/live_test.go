package client_test

// The client against the real room: components/api, components/streamer and
// components/verifier on real Postgres and Redis (test/openapi/liveroom).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/testenv"
	"github.com/chatr-ai/chatr/pkg/client"
	"github.com/chatr-ai/chatr/test/openapi/liveroom"
)

// chattyLimits lets unverified agents post freely, for tests about
// something else than the message limit.
func chattyLimits() *config.Limits {
	l := config.DefaultLimits()
	l.UnverifiedMessages = 1000
	l.RegistrationsPerIP = 1000
	l.RequestsPerIP = 100000
	return &l
}

func newAgent(t *testing.T, room *liveroom.Room, name string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(room.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(context.Background(), name, ""); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return c
}

func TestLiveAgentLifecycle(t *testing.T) {
	room := liveroom.Start(t, liveroom.Options{Limits: chattyLimits()})
	ctx := context.Background()
	c, _ := client.New(room.URL)
	reg, err := c.Register(ctx, "lifecycle_bot", "🦊")
	if err != nil {
		t.Fatal(err)
	}
	if reg.Agent.Name != "lifecycle_bot" || reg.Agent.Avatar != "🦊" || !strings.HasPrefix(c.APIKey(), "chatr_") {
		t.Fatalf("registration %+v", reg)
	}
	var posted []string
	for i := range 5 {
		m, err := c.Post(ctx, fmt.Sprintf("  message %d  ", i))
		if err != nil {
			t.Fatal(err)
		}
		if m.Content != fmt.Sprintf("message %d", i) || m.AgentName != "lifecycle_bot" || m.AgentID != reg.Agent.ID || m.Timestamp.IsZero() {
			t.Fatalf("posted %+v", m)
		}
		posted = append(posted, m.ID)
	}
	all, err := c.Messages(ctx, client.MessagesQuery{})
	if err != nil || len(all) != 5 || all[0].ID != posted[0] || all[4].ID != posted[4] {
		t.Fatalf("messages: %v %v", all, err)
	}
	page, err := c.Messages(ctx, client.MessagesQuery{Limit: 2, Before: posted[4]})
	if err != nil || len(page) != 2 || page[0].ID != posted[2] || page[1].ID != posted[3] {
		t.Fatalf("before: %v %v", page, err)
	}
	page, err = c.Messages(ctx, client.MessagesQuery{Limit: 2, After: posted[0]})
	if err != nil || len(page) != 2 || page[0].ID != posted[1] || page[1].ID != posted[2] {
		t.Fatalf("after: %v %v", page, err)
	}
	if _, err := c.Messages(ctx, client.MessagesQuery{Limit: 500}); client.StatusCode(err) != 400 {
		t.Fatalf("limit 500: %v, want 400", err)
	}

	if err := c.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	online := func() bool {
		l, err := c.Agents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range l.Agents {
			if a.ID == reg.Agent.ID {
				return a.Online && a.LastSeen != nil
			}
		}
		return false
	}
	if !online() {
		t.Fatal("not online after a heartbeat")
	}
	l, _ := c.Agents(ctx)
	if l.Stats.TotalMessages != 5 || l.Stats.TotalAgents != 1 || l.Stats.OnlineAgents != 1 {
		t.Fatalf("stats %+v", l.Stats)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if online() {
		t.Fatal("still online after disconnect")
	}

	// The contract's errors arrive as *client.Error with its strings.
	_, err = client.Must(client.New(room.URL)).Register(ctx, "LIFECYCLE_BOT", "")
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != 409 || e.Message != "Name already taken" || e.Error() != "Name already taken (409)" {
		t.Fatalf("taken name: %v", err)
	}
	if _, err := c.Post(ctx, strings.Repeat("x", 251)); !errors.As(err, &e) || e.StatusCode != 400 || e.Message != "Message must be 1-250 characters" {
		t.Fatalf("long message: %v", err)
	}
	if _, err := c.Post(ctx, "   "); !errors.As(err, &e) || e.Message != "Content required" {
		t.Fatalf("empty message: %v", err)
	}
	bad := client.Must(client.New(room.URL, client.WithAPIKey("chatr_00000000000000000000000000000000")))
	if err := bad.Heartbeat(ctx); !errors.As(err, &e) || e.StatusCode != 401 || e.Message != "Invalid API key" {
		t.Fatalf("unknown key: %v", err)
	}
	bad.SetAPIKey("nonsense")
	if err := bad.Heartbeat(ctx); !errors.As(err, &e) || e.Message != "Invalid API key. Use: Authorization: Bearer YOUR_KEY" {
		t.Fatalf("malformed key: %v", err)
	}
}

func TestLiveRateLimit(t *testing.T) {
	l := config.DefaultLimits()
	l.UnverifiedWindow = 2 * time.Second
	room := liveroom.Start(t, liveroom.Options{Limits: &l})
	ctx := context.Background()
	c := newAgent(t, room, "limited_bot")
	if _, err := c.Post(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Post(ctx, "two")
	d, limited := client.IsRateLimited(err)
	if !limited || d < time.Second || d > 2*time.Second {
		t.Fatalf("second post: %v (wait %v), want a 429 with Retry-After 1-2s", err, d)
	}
	var e *client.Error
	errors.As(err, &e)
	if e.Hint == "" || !strings.Contains(e.Message, "unverified") {
		t.Errorf("the 429 should say which limit and hint at verification: %+v", e)
	}

	// Asked to, the client waits the Retry-After and posts.
	patient := client.Must(client.New(room.URL, client.WithAPIKey(c.APIKey()), client.WithRetryOn429(3)))
	start := time.Now()
	m, err := patient.Post(ctx, "three")
	if err != nil || m.Content != "three" {
		t.Fatalf("with WithRetryOn429: %v %v", m, err)
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Errorf("posted after %v: it did not wait", el)
	}
}

func TestLiveKeepOnline(t *testing.T) {
	room := liveroom.Start(t, liveroom.Options{Limits: chattyLimits()})
	ctx := context.Background()
	c := newAgent(t, room, "keeper")
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.KeepOnline(kctx, 100*time.Millisecond) }()
	testenv.Eventually(t, 20*time.Second, "KeepOnline to bring the agent online", func() error {
		l, err := c.Agents(ctx)
		if err != nil {
			return testenv.StopTrying(err)
		}
		if len(l.Agents) != 1 || l.Agents[0].Name != "keeper" {
			return fmt.Errorf("online: %+v", l.Agents)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("KeepOnline returned %v when its context ended, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("KeepOnline did not stop with its context")
	}
	// A key the room refuses ends the loop with the 401: retrying cannot help.
	bad := client.Must(client.New(room.URL, client.WithAPIKey("chatr_00000000000000000000000000000000")))
	if err := bad.KeepOnline(ctx, time.Hour); client.StatusCode(err) != http.StatusUnauthorized {
		t.Fatalf("KeepOnline with an unknown key: %v", err)
	}
}

// TestLiveStreamResumesAfterDrops follows the room while every connection
// is cut several times and messages keep coming, also while the client is
// away: the client must hand over every message exactly once, in order.
func TestLiveStreamResumesAfterDrops(t *testing.T) {
	room := liveroom.Start(t, liveroom.Options{Limits: chattyLimits()})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The poster talks to the room directly: only the watcher's connections
	// go through the proxy that drops them (a POST cut mid-way cannot be
	// retried safely, and that is not what this test is about).
	poster := client.Must(client.New(room.Direct))
	if _, err := poster.Register(ctx, "poster", ""); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := poster.Post(ctx, fmt.Sprintf("before %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	watcher := client.Must(client.New(room.URL))

	var mu sync.Mutex
	var got []string
	var histories, stats, drops, resumes int
	changed := make(chan struct{}, 1)
	streamDone := make(chan error, 1)
	go func() {
		streamDone <- watcher.Stream(ctx, client.StreamOptions{
			OnDisconnect: func(error, time.Duration) { mu.Lock(); drops++; mu.Unlock() },
			OnConnect: func(resumed bool) {
				if resumed {
					mu.Lock()
					resumes++
					mu.Unlock()
				}
			},
		}, func(ev client.Event) error {
			mu.Lock()
			switch e := ev.(type) {
			case client.HistoryEvent:
				histories++
				for _, m := range e.Messages {
					got = append(got, m.ID)
				}
			case client.MessageEvent:
				got = append(got, e.Message.ID)
			case client.StatsEvent:
				stats++
			}
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			select {
			case <-changed:
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("timed out waiting for %s; got %v", what, got)
			}
		}
	}
	waitFor("the history", func() bool { return len(got) == 3 })

	var want []string
	all, _ := poster.Messages(ctx, client.MessagesQuery{})
	for _, m := range all {
		want = append(want, m.ID)
	}
	for round := range 3 {
		for i := range 3 {
			m, err := poster.Post(ctx, fmt.Sprintf("round %d live %d", round, i))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, m.ID)
		}
		n := len(want)
		waitFor("the live messages", func() bool { return len(got) == n })
		if room.DropConnections() == 0 {
			t.Fatal("no connection to drop")
		}
		// Posted while the watcher is away (it waits the retry: hint, 2s).
		for i := range 2 {
			m, err := poster.Post(ctx, fmt.Sprintf("round %d missed %d", round, i))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, m.ID)
		}
		n = len(want)
		waitFor("the missed messages", func() bool { return len(got) == n && resumes == round+1 })
	}
	mu.Lock()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("delivered %v\nwant      %v", got, want)
	}
	if histories != 1 || drops != 3 {
		t.Errorf("%d history events (want 1: resumes send only the missed messages), %d drops (want 3)", histories, drops)
	}
	mu.Unlock()
	cancel()
	if err := <-streamDone; err != nil {
		t.Fatalf("Stream returned %v when its context ended, want nil", err)
	}
}

// TestLiveVerification runs the 🦞 verification through the real API and
// verifier against the fake Moltbook, including a slow Moltbook that makes
// verify/complete answer 202 and the client poll.
func TestLiveVerification(t *testing.T) {
	room := liveroom.Start(t, liveroom.Options{Limits: chattyLimits(), VerifyWait: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := newAgent(t, room, "verif_bot")
	vc, err := c.VerifyStart(ctx, "  Clawd_Bot ")
	if err != nil {
		t.Fatal(err)
	}
	if vc.MoltbookName != "clawd_bot" || len(vc.Code) != 8 || !strings.Contains(vc.Message, "["+vc.Code+"]") {
		t.Fatalf("start: %+v", vc)
	}
	// No post yet: the contract's 404 with the code to post.
	room.Moltbook.Set(fakemoltbook.Agent{Name: "clawd_bot", Claimed: true, Owner: "owner"})
	_, err = c.VerifyComplete(ctx, "clawd_bot")
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != 404 || e.Code != vc.Code || !strings.Contains(e.Hint, "["+vc.Code+"]") {
		t.Fatalf("complete without the post: %v", err)
	}
	// A slow Moltbook: the API answers 202 after 300ms; the client polls.
	a := fakemoltbook.Verified("clawd_bot", "owner", vc.Code)
	a.Faults = []fakemoltbook.Fault{{Delay: fakemoltbook.Duration(1500 * time.Millisecond)}}
	room.Moltbook.Set(a)
	v, err := c.VerifyComplete(ctx, "clawd_bot")
	if err != nil || !v.Verified || v.MoltbookName != "clawd_bot" || v.OwnerTwitter == nil || *v.OwnerTwitter != "owner" {
		t.Fatalf("complete: %+v %v", v, err)
	}
	v, err = c.VerifyComplete(ctx, "clawd_bot")
	if err != nil || !v.AlreadyVerified {
		t.Fatalf("complete again: %+v %v", v, err)
	}
	st, err := c.VerifyStatus(ctx)
	if err != nil || st.Pending {
		t.Fatalf("status: %+v %v", st, err)
	}
	m, err := c.Post(ctx, "with the badge: https://example.com")
	if err != nil || !m.MoltbookVerified || m.MoltbookName == nil || *m.MoltbookName != "clawd_bot" {
		t.Fatalf("post after verification: %+v %v", m, err)
	}
}
