package streamer

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A resume's Last-Event-ID names the last message the client has. The hub
// sends it what came after, so an id the room never had would silently hide
// every message up to it: a room whose ids were reset (a new database) would
// look empty to a client that remembers the old one until the new ids caught
// up. So an id beyond the room's newest message is answered as a fresh
// connect, with the history, and logged.
//
// "The room's newest" is not the ring's newest: this pod may lag the room by
// a message or two (another pod delivered it and the client resumed here), so
// an id beyond the ring is checked against the room's counter row. That is a
// Postgres read, but only for this case, a few at a time (pgResumes), and
// bounded; with Postgres away the counter last read by the stats loop serves.

// newBeyondHeadCounter counts the resumes answered with the history because
// their Last-Event-ID was beyond the room's newest message.
func newBeyondHeadCounter(reg *prometheus.Registry) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chatr_streamer_resumes_beyond_head_total",
		Help: "Resumes whose Last-Event-ID was beyond the room's newest message, answered with the history instead.",
	})
	reg.MustRegister(c)
	return c
}

// roomLastTimeout bounds the counter read of a resume beyond the ring.
const roomLastTimeout = time.Second

// newestID is the newest id in the ring.
func (h *hub) newestID() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ring.newest()
}

// noteRoomLast records the room's last id as the counter row said it.
func (s *Server) noteRoomLast(id int64) {
	for {
		cur := s.roomLast.Load()
		if id <= cur || s.roomLast.CompareAndSwap(cur, id) {
			return
		}
	}
}

// resumable reports whether a client may resume after since: every id up to
// it exists in the room. When not, it logs why the client gets the history.
func (s *Server) resumable(ctx context.Context, since int64) bool {
	newest := s.hub.newestID()
	if since <= newest {
		return true
	}
	last := max(newest, s.roomLast.Load())
	if since > last {
		if fresh, err := s.readRoomLast(ctx); err == nil {
			last = max(last, fresh)
		} else {
			s.log.Warn("could not read the room's last id for a resume; using the last one known", "known", last, "err", err)
		}
	}
	if since <= last {
		return true
	}
	s.beyondHead.Inc()
	s.log.Warn("Last-Event-ID beyond the room's newest message (ids reset, or another room's id): sending the history",
		"lastEventId", since, "newest", last)
	return false
}

// readRoomLast reads the room's last id from its counter row.
func (s *Server) readRoomLast(ctx context.Context) (int64, error) {
	select {
	case s.pgResumes <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-s.pgResumes }()
	ctx, cancel := context.WithTimeout(ctx, roomLastTimeout)
	defer cancel()
	c, err := s.st.Counters(ctx)
	if err != nil {
		return 0, err
	}
	s.noteRoomLast(c.LastMessageID)
	return c.LastMessageID, nil
}
