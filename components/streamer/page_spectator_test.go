package streamer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/presence"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// roomEvent is the data of the spectators' named room event.
type roomEvent struct {
	Stats  model.Stats   `json:"stats"`
	Agents []model.Agent `json:"agents"`
}

// namedStream reads an SSE stream keeping the named events apart.
type namedStream struct {
	mu      sync.Mutex
	rooms   []roomEvent
	unnamed []string // the type of each unnamed event
	stats   []model.Stats
}

func (n *namedStream) read(t *testing.T, base, query string) {
	t.Helper()
	resp, closeFn := sseConnect(t, base+"/api/stream"+query, "", false)
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
				data := strings.TrimPrefix(line, "data: ")
				n.mu.Lock()
				if name == "room" {
					var ev roomEvent
					if err := json.Unmarshal([]byte(data), &ev); err != nil {
						t.Errorf("bad room event %s: %v", data, err)
					}
					n.rooms = append(n.rooms, ev)
				} else if name != "" {
					t.Errorf("unexpected named event %q", name)
				} else {
					var env struct {
						Type string          `json:"type"`
						Data json.RawMessage `json:"data"`
					}
					_ = json.Unmarshal([]byte(data), &env)
					n.unnamed = append(n.unnamed, env.Type)
					if env.Type == "stats" {
						var st model.Stats
						_ = json.Unmarshal(env.Data, &st)
						n.stats = append(n.stats, st)
					}
				}
				n.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { closeFn(); <-done })
}

// last returns the newest room event (ok false when none came yet).
func (n *namedStream) last() (roomEvent, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.rooms) == 0 {
		return roomEvent{}, false
	}
	return n.rooms[len(n.rooms)-1], true
}

func names(ev roomEvent) []string {
	var out []string
	for _, a := range ev.Agents {
		out = append(out, a.Name)
	}
	return out
}

// A stream that asks for it (?spectator=1, as the page does) gets the named
// room event: the figures and the online agents together, agreeing with
// each other, following arrivals, departures and posts within a few seconds.
// A contract client's stream, which does not ask, never sees a named event,
// and its unnamed events are unchanged.
func TestSpectatorRoomEvent(t *testing.T) {
	r := newRoom(t, "")
	r.post(t, 2)
	p := startPod(t, r, "a", func(c *streamer.Config) { c.StatsInterval = time.Hour })
	pres := presence.New(r.rdb, r.schema, 30*time.Minute)
	ctx := context.Background()
	if err := pres.Touch(ctx, r.agent.ID, time.Now()); err != nil {
		t.Fatal(err)
	}

	spec := &namedStream{}
	spec.read(t, p.url, "?spectator=1")
	plain, _ := openSSE(t, p.url, "") // fails the test on any named event
	ws, _ := openWS(t, p.url, "")

	// follows waits until the room event shows want (names, online count
	// and messages), with the count equal to the list's length.
	follows := func(what string, wantNames []string, wantMessages int64) {
		t.Helper()
		testenv.Eventually(t, 5*time.Second, what, func() error {
			ev, ok := spec.last()
			if !ok {
				return fmt.Errorf("no room event yet")
			}
			if int(ev.Stats.OnlineAgents) != len(ev.Agents) {
				return testenv.StopTrying(fmt.Errorf("room event says %d online beside %d names", ev.Stats.OnlineAgents, len(ev.Agents)))
			}
			if got := names(ev); !slices.Equal(got, wantNames) || ev.Stats.TotalMessages != wantMessages {
				return fmt.Errorf("room event lists %v with %d messages, want %v with %d", got, ev.Stats.TotalMessages, wantNames, wantMessages)
			}
			return nil
		})
	}
	follows("the first room event", []string{"poster"}, 2)

	// An agent comes online (its first authenticated request).
	other, err := r.st.CreateAgent(ctx, "a_newcomer", "🦉", []byte("hash-of-newcomer"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pres.Touch(ctx, other.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	arrived := time.Now()
	follows("the newcomer in the room event", []string{"a_newcomer", "poster"}, 2)
	t.Logf("an arrival reached the room event in %s", time.Since(arrived).Round(time.Millisecond))

	r.post(t, 1)
	follows("the new message counted", []string{"a_newcomer", "poster"}, 3)

	if err := pres.Leave(ctx, r.agent.ID); err != nil {
		t.Fatal(err)
	}
	follows("the departure in the room event", []string{"a_newcomer"}, 3)

	// The contract clients saw their events and no room event.
	plain.waitFor(t, "the plain stream's history and message", 5*time.Second, func(s *stream) bool { return len(s.msgs) >= 3 })
	ws.waitFor(t, "the WebSocket's history and message", 5*time.Second, func(s *stream) bool { return len(s.msgs) >= 3 })
	for who, s := range map[string]*stream{"SSE": plain, "WebSocket": ws} {
		s.mu.Lock()
		types := append([]string(nil), s.types...)
		s.mu.Unlock()
		if slices.Contains(types, "room") {
			t.Errorf("the %s client that did not ask got a room event: %v", who, types)
		}
	}
	spec.mu.Lock()
	unnamed := append([]string(nil), spec.unnamed...)
	spec.mu.Unlock()
	if len(unnamed) < 2 || unnamed[0] != "history" || unnamed[1] != "stats" {
		t.Errorf("the spectator stream's unnamed events are %v, want history, stats first as on any stream", unnamed)
	}
}
