package client

// These tests run the client against an httptest server that replays
// recorded answers of the contract (docs/wire-contract.md). They
// test the client's own parsing and its reconnection logic — including
// server behaviour the real streamer never shows (overlapping resumes,
// abrupt drops, 429 on connect) — and are not a stand-in for chatr's
// services: live_test.go runs the client against the real API and streamer.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func recordedMessage(id int) string {
	return fmt.Sprintf(`{"id":"%d","agentId":"0b9c2a3e-6c1f-4f57-9a51-3c0e1c1d2e3f","agentName":"bot","avatar":"🤖","content":"m%d","timestamp":"2024-01-15T12:00:00.123Z","moltbookVerified":false,"moltbookName":null,"ownerTwitter":null}`, id, id)
}

func sseMessage(id int) string {
	return fmt.Sprintf("id: %d\ndata: {\"type\":\"message\",\"data\":%s}\n\n", id, recordedMessage(id))
}

func sseHistory(ids ...int) string {
	var ms []string
	for _, id := range ids {
		ms = append(ms, recordedMessage(id))
	}
	last := ""
	if len(ids) > 0 {
		last = fmt.Sprintf("id: %d\n", ids[len(ids)-1])
	}
	return last + "data: {\"type\":\"history\",\"data\":[" + strings.Join(ms, ",") + "]}\n\n"
}

// script is one connection's answer: status (0 = 200 stream), headers, and
// the body to write before closing.
type script struct {
	status int
	header http.Header
	body   string
	// wantLastEventID is checked against the request.
	wantLastEventID string
}

func replayStream(t *testing.T, scripts []script) (*httptest.Server, *[]time.Time) {
	t.Helper()
	var n atomic.Int32
	var mu sync.Mutex
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		i := int(n.Add(1)) - 1
		if r.URL.Path != "/api/stream" || i >= len(scripts) {
			<-r.Context().Done() // no more script: hold the connection until the client leaves
			return
		}
		s := scripts[i]
		if got := r.Header.Get("Last-Event-ID"); got != s.wantLastEventID {
			t.Errorf("connection %d: Last-Event-ID %q, want %q", i, got, s.wantLastEventID)
		}
		for k, v := range s.header {
			w.Header()[k] = v
		}
		if s.status != 0 {
			w.WriteHeader(s.status)
			_, _ = w.Write([]byte(s.body))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		_, _ = w.Write([]byte(s.body))
	}))
	t.Cleanup(srv.Close)
	return srv, &times
}

// collect runs Stream until it has n message ids (history included) or fails.
func collect(t *testing.T, c *Client, opts StreamOptions, n int) ([]string, []Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []string
	var evs []Event
	stop := errors.New("enough")
	err := c.Stream(ctx, opts, func(ev Event) error {
		evs = append(evs, ev)
		switch e := ev.(type) {
		case HistoryEvent:
			for _, m := range e.Messages {
				ids = append(ids, m.ID)
			}
		case MessageEvent:
			ids = append(ids, e.Message.ID)
		}
		if len(ids) >= n {
			return stop
		}
		return nil
	})
	if errors.Is(err, stop) {
		err = nil
	}
	if ctx.Err() != nil {
		t.Fatalf("timed out with %v", ids)
	}
	return ids, evs, err
}

func TestStreamResumesWithoutDuplicates(t *testing.T) {
	srv, times := replayStream(t, []script{
		{body: "retry: 50\n\n" + sseHistory(1, 2, 3) + sseMessage(4) + "data: {\"type\":\"stats\",\"data\":{\"totalAgents\":1,\"onlineAgents\":1,\"totalMessages\":4}}\n\n" + "id: 5\ndata: {\"type\":\"mess"},
		// A resume that overlaps what was delivered (3, 4) and repeats the
		// history: the client must hand over only 5 and 6.
		{wantLastEventID: "4", body: sseHistory(2, 3, 4) + sseMessage(3) + sseMessage(4) + sseMessage(5) + ": ping\n\n" + "event: other\ndata: {\"type\":\"message\",\"data\":" + recordedMessage(99) + "}\n\n" + "data: {\"type\":\"future\",\"data\":1}\n\n" + "data: not json\n\n" + sseMessage(6)},
		{wantLastEventID: "6", body: sseMessage(7)},
	})
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	ids, evs, err := collect(t, c, StreamOptions{OnDisconnect: func(_ error, w time.Duration) { waits = append(waits, w) }}, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids, ","); got != "1,2,3,4,5,6,7" {
		t.Fatalf("ids %s, want 1..7 each once", got)
	}
	if h, ok := evs[0].(HistoryEvent); !ok || h.Resumed || len(h.Messages) != 3 {
		t.Fatalf("first event %#v, want the fresh history", evs[0])
	}
	var stats int
	for _, ev := range evs[1:] {
		switch e := ev.(type) {
		case HistoryEvent:
			t.Fatalf("a resumed history with nothing new was delivered: %#v", e)
		case StatsEvent:
			stats++
			if e.Stats.TotalMessages != 4 {
				t.Fatalf("stats %+v", e.Stats)
			}
		}
	}
	if stats != 1 {
		t.Fatalf("%d stats events, want 1", stats)
	}
	// retry: 50 was honoured: each wait is in [50ms, 75ms) after a
	// connection that delivered, and the server saw the gap.
	for i, w := range waits {
		if w < 50*time.Millisecond || w >= 75*time.Millisecond {
			t.Errorf("wait %d = %v, want the retry hint 50ms with up to 50%% jitter", i, w)
		}
	}
	if gap := (*times)[1].Sub((*times)[0]); gap < 50*time.Millisecond {
		t.Errorf("reconnected after %v, before the retry hint", gap)
	}
}

func TestStreamResumedHistoryKeepsOnlyNewMessages(t *testing.T) {
	srv, _ := replayStream(t, []script{
		{wantLastEventID: "2", body: sseHistory(1, 2, 3, 4)},
	})
	c, _ := New(srv.URL)
	ids, evs, err := collect(t, c, StreamOptions{LastEventID: "2"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != "3,4" || !evs[0].(HistoryEvent).Resumed {
		t.Fatalf("ids %v, events %#v", ids, evs)
	}
}

func TestStreamBacksOffOn429AndFailures(t *testing.T) {
	srv, times := replayStream(t, []script{
		{status: 429, header: http.Header{"Retry-After": {"1"}, "Content-Type": {"application/json"}}, body: `{"success":false,"error":"Too many connections","retryAfter":1}`},
		{status: 503, body: `{"success":false,"error":"Server is at capacity, try again"}`},
		{body: sseHistory(1)},
	})
	c, _ := New(srv.URL)
	var errs []error
	var waits []time.Duration
	ids, _, err := collect(t, c, StreamOptions{MinBackoff: 100 * time.Millisecond, OnDisconnect: func(e error, w time.Duration) {
		errs = append(errs, e)
		waits = append(waits, w)
	}}, 1)
	if err != nil || strings.Join(ids, ",") != "1" {
		t.Fatalf("ids %v, err %v", ids, err)
	}
	if len(errs) != 2 || StatusCode(errs[0]) != 429 || StatusCode(errs[1]) != 503 {
		t.Fatalf("disconnect reasons %v", errs)
	}
	if waits[0] < time.Second {
		t.Errorf("waited %v after a 429 with Retry-After: 1", waits[0])
	}
	// Second failure in a row: the backoff doubled (200ms, jittered up to 300ms).
	if waits[1] < 200*time.Millisecond || waits[1] >= 300*time.Millisecond {
		t.Errorf("second wait %v, want [200ms, 300ms)", waits[1])
	}
	if gap := (*times)[1].Sub((*times)[0]); gap < time.Second {
		t.Errorf("reconnected %v after the 429", gap)
	}
}

func TestStreamStopsOnPermanentErrors(t *testing.T) {
	for _, s := range []script{
		{status: 404, header: http.Header{"Content-Type": {"application/json"}}, body: `{"success":false,"error":"Not found"}`},
		{status: 200, header: http.Header{"Content-Type": {"text/html"}}, body: `<html>`},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k, v := range s.header {
				w.Header()[k] = v
			}
			w.WriteHeader(s.status)
			_, _ = w.Write([]byte(s.body))
		}))
		c, _ := New(srv.URL)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.Stream(ctx, StreamOptions{}, func(Event) error { return nil })
		expired := ctx.Err()
		cancel()
		srv.Close()
		if err == nil || expired != nil {
			t.Errorf("%d %s: err %v (ctx %v), want a permanent error at once", s.status, s.body, err, expired)
		}
	}
}

func TestStreamIdleTimeout(t *testing.T) {
	// A server that sends the history and then nothing at all, not even pings.
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		_, _ = w.Write([]byte(sseHistory(1)))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer silent.Close()
	c, _ := New(silent.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var reason error
	_ = c.Stream(ctx, StreamOptions{IdleTimeout: 200 * time.Millisecond, OnDisconnect: func(e error, _ time.Duration) {
		reason = e
		cancel()
	}}, func(Event) error { return nil })
	if reason == nil || !strings.Contains(reason.Error(), "silent") {
		t.Fatalf("disconnect reason %v, want the idle timeout", reason)
	}
}

func TestStreamRejectsBadLastEventID(t *testing.T) {
	c, _ := New("http://127.0.0.1:1")
	if err := c.Stream(context.Background(), StreamOptions{LastEventID: "abc"}, nil); err == nil {
		t.Fatal("a non-numeric LastEventID was accepted")
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		base, max time.Duration
		n         int
		lo, hi    time.Duration
	}{
		{time.Second, 30 * time.Second, 0, time.Second, 1500 * time.Millisecond},
		{time.Second, 30 * time.Second, 3, 8 * time.Second, 12 * time.Second},
		{time.Second, 30 * time.Second, 10, 30 * time.Second, 45 * time.Second},
		{time.Minute, 30 * time.Second, 0, time.Minute, 90 * time.Second}, // the room's hint beats our cap
	} {
		for range 50 {
			if d := backoff(c.base, c.max, c.n); d < c.lo || d >= c.hi {
				t.Fatalf("backoff(%v, %v, %d) = %v, want [%v, %v)", c.base, c.max, c.n, d, c.lo, c.hi)
			}
		}
	}
}
