//go:build realnode

package realnode

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// spectator follows the room as a browser would: over SSE (or WebSocket),
// resuming with Last-Event-ID after every drop, and records each message id
// as it arrives on the wire, so duplicates and gaps are seen even across
// reconnects and pod moves.
type spectator struct {
	base string
	ws   bool

	mu       sync.Mutex
	ids      []int64
	last     int64
	connects int
	drops    int
	refused  map[int]int
}

type streamEvent struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

type wireMessage struct {
	ID string `json:"id"` // a decimal string on the wire
}

func (m wireMessage) seq() int64 {
	n, _ := strconv.ParseInt(m.ID, 10, 64)
	return n
}

func newSpectator(base string, ws bool) *spectator {
	return &spectator{base: base, ws: ws, refused: map[int]int{}}
}

// run follows the stream until ctx ends.
func (s *spectator) run(ctx context.Context) {
	for ctx.Err() == nil {
		var err error
		if s.ws {
			err = s.followWS(ctx)
		} else {
			err = s.followSSE(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.drops++
		s.mu.Unlock()
		_ = err
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *spectator) resumeFrom() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *spectator) followSSE(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/api/stream", nil)
	if last := s.resumeFrom(); last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.mu.Lock()
		s.refused[resp.StatusCode]++
		s.mu.Unlock()
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	s.mu.Lock()
	s.connects++
	s.mu.Unlock()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() > 0 {
				s.event([]byte(data.String()))
				data.Reset()
			}
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	return sc.Err()
}

func (s *spectator) followWS(ctx context.Context) error {
	u := "ws" + strings.TrimPrefix(s.base, "http") + "/api/ws"
	h := http.Header{}
	if last := s.resumeFrom(); last > 0 {
		h.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	c, resp, err := websocket.DefaultDialer.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil {
			s.mu.Lock()
			s.refused[resp.StatusCode]++
			s.mu.Unlock()
		}
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	s.mu.Lock()
	s.connects++
	s.mu.Unlock()
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			return err
		}
		s.event(b)
	}
}

// event records the messages of one stream event. History replays messages
// the spectator may already have: only those after the last one it holds
// count, as a resuming client shows them.
func (s *spectator) event(b []byte) {
	var ev streamEvent
	if json.Unmarshal(b, &ev) != nil {
		return
	}
	var ms []wireMessage
	switch ev.Type {
	case "history":
		_ = json.Unmarshal(ev.Data, &ms)
	case "message":
		var m wireMessage
		if json.Unmarshal(ev.Data, &m) == nil {
			ms = append(ms, m)
		}
	default:
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range ms {
		id := m.seq()
		if ev.Type == "history" && id <= s.last {
			continue
		}
		s.ids = append(s.ids, id)
		if id > s.last {
			s.last = id
		}
	}
}

// verdict compares what the spectator got with the ids posted while it was
// connected (from its first message on): lost, duplicated and out of order.
func (s *spectator) verdict(posted []int64) (lost, dup, disorder int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[int64]int{}
	var prev int64
	for _, id := range s.ids {
		seen[id]++
		if seen[id] > 1 {
			dup++
		}
		if id < prev {
			disorder++
		}
		prev = id
	}
	if len(s.ids) == 0 {
		return len(posted), 0, 0
	}
	first := s.ids[0]
	for _, id := range posted {
		if id >= first && seen[id] == 0 {
			lost++
		}
	}
	return lost, dup, disorder
}

func (s *spectator) has(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last >= id
}

func (s *spectator) stats() (connects, drops int, refused map[int]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := map[int]int{}
	for k, v := range s.refused {
		r[k] = v
	}
	return s.connects, s.drops, r
}
