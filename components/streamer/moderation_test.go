package streamer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/testenv"
)

const modToken = "streamer-test-moderator-token"

// startModerationAPI runs an API server of the room with moderation and
// returns the URL of its moderation listener.
func startModerationAPI(t *testing.T, r *room) string {
	t.Helper()
	srv, err := api.New(context.Background(), api.Config{Limits: config.DefaultLimits(), ModerationToken: modToken,
		Common: config.Common{DatabaseURL: testenv.DatabaseURL(), Schema: r.schema, RedisURL: r.redisURL, Migrate: true}}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.ModerationHandler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return hs.URL
}

func deleteMessage(t *testing.T, modURL string, id int64) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, modURL+"/admin/delete", strings.NewReader(fmt.Sprintf(`{"id":"%d","reason":"spam"}`, id)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+modToken)
	req.Header.Set("X-Moderator", "tester")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delete %d: status %d", id, resp.StatusCode)
	}
}

// spectator reads a ?spectator=1 stream: the messages (history and live)
// and the ids of the named delete events, in order.
type spectator struct {
	mu      sync.Mutex
	msgs    []int64
	deletes []int64
	changed chan struct{}
}

func openSpectator(t *testing.T, base string) *spectator {
	t.Helper()
	sp := &spectator{changed: make(chan struct{}, 1)}
	resp, closeFn := sseConnect(t, base+"/api/stream?spectator=1", "", false)
	if resp.StatusCode != http.StatusOK {
		closeFn()
		t.Fatalf("stream answered %d", resp.StatusCode)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		br := bufio.NewReader(resp.Body)
		name := ""
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				name = ""
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data := []byte(strings.TrimPrefix(line, "data: "))
				sp.mu.Lock()
				switch name {
				case "delete":
					var ev struct {
						IDs []string `json:"ids"`
					}
					if err := json.Unmarshal(data, &ev); err != nil {
						t.Errorf("bad delete event %s: %v", data, err)
					}
					for _, s := range ev.IDs {
						id, ok := model.ParseID(s)
						if !ok {
							t.Errorf("delete event id %q", s)
						}
						sp.deletes = append(sp.deletes, id)
					}
				case "":
					var env struct {
						Type string          `json:"type"`
						Data json.RawMessage `json:"data"`
					}
					_ = json.Unmarshal(data, &env)
					switch env.Type {
					case "history":
						var ms []model.Message
						_ = json.Unmarshal(env.Data, &ms)
						for _, m := range ms {
							sp.msgs = append(sp.msgs, m.ID)
						}
					case "message":
						var m model.Message
						_ = json.Unmarshal(env.Data, &m)
						sp.msgs = append(sp.msgs, m.ID)
					}
				}
				sp.mu.Unlock()
				select {
				case sp.changed <- struct{}{}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { closeFn(); <-done })
	return sp
}

func (sp *spectator) waitFor(t *testing.T, what string, cond func(sp *spectator) bool) {
	t.Helper()
	deadline := time.After(testenv.Slow(20 * time.Second))
	for {
		sp.mu.Lock()
		ok := cond(sp)
		sp.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-sp.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			sp.mu.Lock()
			defer sp.mu.Unlock()
			t.Fatalf("timed out waiting for %s (messages %v, deletes %v)", what, sp.msgs, sp.deletes)
		}
	}
}

func without(ms []model.Message, gone ...int64) []model.Message {
	var out []model.Message
	for _, m := range ms {
		if !slices.Contains(gone, m.ID) {
			out = append(out, m)
		}
	}
	return out
}

// A message a moderator deletes leaves every streamer's ring: no new stream,
// no resume (from before it, or from its very id) on any pod sends it again,
// ids stay gap-free-correct past the hole. Spectator streams get the named
// delete event (and a spectator stream that connects later gets the recent
// deletions); the contract's SSE and WebSocket clients see nothing new. A
// deletion the bus never carried is found in the moderation log; a pod
// started after a deletion never shows it.
func TestDeletedMessageLeavesEveryStreamer(t *testing.T) {
	r := newRoom(t, "")
	modURL := startModerationAPI(t, r)
	a := startPod(t, r, "mod-a", nil)
	b := startPod(t, r, "mod-b", nil)
	msgs := r.post(t, 5)

	contractA, _ := openSSE(t, a.url, "")
	wsB, _ := openWS(t, b.url, "")
	specA, specB := openSpectator(t, a.url), openSpectator(t, b.url)
	contractA.until(t, 5)
	wsB.until(t, 5)
	for _, sp := range []*spectator{specA, specB} {
		sp.waitFor(t, "5 messages", func(sp *spectator) bool { return len(sp.msgs) >= 5 })
	}

	gone := msgs[2].ID
	deleteMessage(t, modURL, gone)
	for _, sp := range []*spectator{specA, specB} {
		sp.waitFor(t, "the delete event", func(sp *spectator) bool { return slices.Equal(sp.deletes, []int64{gone}) })
	}
	// The contract's clients: nothing new, and the next message comes as
	// ever (a named event would have failed their reader).
	next := r.post(t, 1)
	contractA.until(t, 6)
	wsB.until(t, 6)
	checkExactly(t, "contract SSE client", contractA.snapshot(), append(slices.Clone(msgs), next...))
	checkExactly(t, "contract WebSocket client", wsB.snapshot(), append(slices.Clone(msgs), next...))
	wsB.mu.Lock()
	if slices.Contains(wsB.types, "delete") {
		t.Errorf("a contract WebSocket client got a delete event: %v", wsB.types)
	}
	wsB.mu.Unlock()

	all := append(slices.Clone(msgs), next...)
	want := without(all, gone)
	for _, p := range []*pod{a, b} {
		fresh, stop := openSSE(t, p.url, "")
		fresh.until(t, len(want))
		stop()
		checkExactly(t, "a new stream's history on "+p.url, fresh.snapshot(), want)
		for _, from := range []int64{msgs[1].ID, gone} {
			res, stop := openSSE(t, p.url, fmt.Sprint(from))
			res.until(t, len(without(all[from:], gone)))
			stop()
			checkExactly(t, fmt.Sprintf("a resume from %d on %s", from, p.url), res.snapshot(), without(all[from:], gone))
		}
		// A spectator page connecting now is told what went lately.
		late := openSpectator(t, p.url)
		late.waitFor(t, "the recent deletions", func(sp *spectator) bool { return slices.Contains(sp.deletes, gone) && len(sp.msgs) == len(want) })
		if slices.Contains(late.msgs, gone) {
			t.Errorf("a new spectator stream on %s got the deleted message", p.url)
		}
	}

	// A deletion the bus never carried (only Postgres knows): the pods
	// find it in the moderation log.
	quiet := r.post(t, 1)[0]
	for _, sp := range []*spectator{specA, specB} {
		sp.waitFor(t, "the next message", func(sp *spectator) bool { return slices.Contains(sp.msgs, quiet.ID) })
	}
	if _, err := r.st.DeleteMessage(context.Background(), quiet.ID, "tester", "not published"); err != nil {
		t.Fatal(err)
	}
	for _, sp := range []*spectator{specA, specB} {
		sp.waitFor(t, "the delete found in the log", func(sp *spectator) bool { return slices.Contains(sp.deletes, quiet.ID) })
	}

	// A pod started after the deletions: neither message, and it goes on
	// delivering (the newest id of the room is a deleted one).
	c := startPod(t, r, "mod-c", nil)
	fresh, _ := openSSE(t, c.url, "")
	want = without(append(all, quiet), gone, quiet.ID)
	fresh.until(t, len(want))
	after := r.post(t, 1)
	fresh.until(t, len(want)+1)
	checkExactly(t, "a pod started after the deletions", fresh.snapshot(), append(want, after...))
}

// The spectator page in a real browser takes a message a moderator deleted
// off the screen, and keeps showing the rest and what comes next.
func TestSpectatorPageRemovesDeleted(t *testing.T) {
	ctx := browser(t)
	r := newRoom(t, "")
	msgs := r.post(t, 3)
	p := startPod(t, r, "page", nil)
	modURL := startModerationAPI(t, r)
	var current atomic.Pointer[url.URL]
	current.Store(urlOf(t, p.url))
	base := ingress(t, &current, startAPI(t, r))
	shown := func() string {
		return eval[string](t, ctx, `Array.from(document.querySelectorAll("#messages li")).map(li => li.dataset.id).join(",")`)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), countIs(3)); err != nil {
		t.Fatalf("page did not show the history: %v", err)
	}
	deleteMessage(t, modURL, msgs[1].ID)
	if err := chromedp.Do(ctx, countIs(2)); err != nil {
		t.Fatalf("the deleted message stayed on the page (%s): %v", shown(), err)
	}
	next := r.post(t, 1)
	if err := chromedp.Do(ctx, countIs(3)); err != nil {
		t.Fatalf("the next message did not appear: %v", err)
	}
	if got, want := shown(), fmt.Sprintf("%d,%d,%d", msgs[0].ID, msgs[2].ID, next[0].ID); got != want {
		t.Fatalf("page shows ids %s, want %s", got, want)
	}
}
