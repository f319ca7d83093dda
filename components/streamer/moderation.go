package streamer

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/chatr-ai/chatr/internal/bus"
)

// Deleted messages (docs/operations.md, "Moderation"). When a moderator
// deletes a message the API deletes it from Postgres and says so on the
// room's moderation channel; every streamer then
//
//   - drops it from its ring, so no history or resume sends it again (ids
//     are never reused: a resume from before it simply goes past the hole);
//   - remembers it if it has not received it yet (a publish still on its
//     way), so it never delivers it;
//   - tells its spectator streams (?spectator=1) with a named event, which
//     the page uses to take the message off the screen:
//
//	event: delete
//	data: {"ids":["123"]}
//
//     (WebSocket: {"type":"delete","data":{"ids":["123"]}}), and sends the
//     recent deletions to every spectator stream that (re)connects, for a page
//     that was away when it happened. The contract's clients never ask for it,
//     never see it, and nothing else changes for them: a message they have
//     already received stays received.
//
// The channel is fire-and-forget, so every modCatchUp the streamer also reads
// the moderation log from Postgres after the last action it has seen; at
// start it removes every deletion within the ring it warmed.

// modCatchUp is how often the moderation log is read for deletions the bus
// did not bring.
const modCatchUp = 5 * time.Second

// recentDeletions is how many deleted ids a (re)connecting spectator stream
// is sent.
const recentDeletions = 256

// deletions is the hub's memory of deleted messages, guarded by hub.mu.
type deletions struct {
	// ahead are deleted ids not yet received (above the ring's newest).
	ahead map[int64]struct{}
	// recent are the latest deleted ids, oldest first; frame is their event.
	recent []int64
	seen   map[int64]struct{}
	frame  *frame
}

// deletedAhead reports (and forgets) whether id was deleted before it came.
func (d *deletions) deletedAhead(id int64) bool {
	if _, ok := d.ahead[id]; ok {
		delete(d.ahead, id)
		return true
	}
	return false
}

// remove takes deleted messages out of the ring (and of what is still to
// come) and tells the spectator streams. Ids it already knows are skipped.
func (h *hub) remove(ids []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := &h.mod
	if d.seen == nil {
		d.seen, d.ahead = map[int64]struct{}{}, map[int64]struct{}{}
	}
	var fresh []int64
	for _, id := range ids {
		if _, ok := d.seen[id]; ok || id <= 0 {
			continue
		}
		d.seen[id] = struct{}{}
		fresh = append(fresh, id)
		if h.ring.remove(id) {
			h.history = nil
			h.s.met.deleted.Inc()
		} else if id > h.ring.newest() {
			d.ahead[id] = struct{}{}
		}
	}
	if len(fresh) == 0 {
		return
	}
	for id := range d.ahead {
		if id <= h.ring.newest() {
			delete(d.ahead, id) // came and went without this pod needing it
		}
	}
	d.recent = append(d.recent, fresh...)
	if over := len(d.recent) - recentDeletions; over > 0 {
		for _, id := range d.recent[:over] {
			delete(d.seen, id)
		}
		d.recent = append([]int64(nil), d.recent[over:]...)
	}
	d.frame = deleteFrame(d.recent)
	f := deleteFrame(fresh)
	for _, sh := range h.shards {
		sh.post(event{kind: evFrame, f: f})
	}
}

// deleteFrame is the spectators' named delete event of ids.
func deleteFrame(ids []int64) *frame {
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = strconv.FormatInt(id, 10)
	}
	data, _ := json.Marshal(struct {
		IDs []string `json:"ids"`
	}{strs}) // strings only: cannot fail
	ev := make([]byte, 0, len(data)+24)
	ev = append(ev, "event: delete\ndata: "...)
	ev = append(ev, data...)
	ev = append(ev, "\n\n"...)
	ws := make([]byte, 0, len(data)+24)
	ws = append(ws, `{"type":"delete","data":`...)
	ws = append(ws, data...)
	ws = append(ws, '}')
	f := &frame{ws: wsFrame(wsOpText, ws), spectator: true}
	f.sse, f.rawOff = chunk(ev)
	return f
}

// moderationLoop follows the room's deletions until ctx ends: from the
// moderation channel at once, from the moderation log every modCatchUp.
func (s *Server) moderationLoop(ctx context.Context) {
	b := bus.New(s.rdb, s.cfg.Common.Schema)
	ps := b.SubscribeModeration(ctx)
	defer ps.Close()
	ch := ps.Channel()
	// Subscribed first, then the log's position, then what the ring
	// already holds: no deletion falls between.
	var cursor int64
	for !s.modStart(ctx, &cursor) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(modCatchUp):
		}
	}
	t := time.NewTicker(modCatchUp)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			ev, err := bus.DecodeModeration(m.Payload)
			if err != nil {
				s.log.Warn("ignoring a bad moderation event", "err", err)
				continue
			}
			s.hub.remove(ev.Deleted)
		case <-t.C:
			s.modCatchUp(ctx, &cursor)
		}
	}
}

// modStart reads the moderation log's position and removes every deletion
// within the ring; it reports whether Postgres answered.
func (s *Server) modStart(ctx context.Context, cursor *int64) bool {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	last, err := s.st.LastModerationID(qctx)
	if err != nil {
		s.log.Warn("could not read the moderation log; will retry", "err", err)
		return false
	}
	s.hub.mu.Lock()
	oldest := s.hub.ring.oldest()
	s.hub.mu.Unlock()
	ids, err := s.st.DeletedFrom(qctx, oldest)
	if err != nil {
		s.log.Warn("could not read the moderation log; will retry", "err", err)
		return false
	}
	*cursor = last
	s.hub.remove(ids)
	return true
}

// modCatchUp applies the deletions logged after cursor.
func (s *Server) modCatchUp(ctx context.Context, cursor *int64) {
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ids, last, err := s.st.DeletedAfter(qctx, *cursor)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("could not read the moderation log; will retry", "err", err)
			}
			return
		}
		if last == *cursor {
			return
		}
		*cursor = last
		s.hub.remove(ids)
	}
}
