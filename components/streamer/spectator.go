package streamer

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/store"
)

// The spectator events. A stream opened with ?spectator=1 (the spectator
// page does) also gets a named event, "room", carrying the room's figures
// and its online agents together, whenever they change (checked every
// second):
//
//	event: room
//	data: {"stats":<Stats>,"agents":[<Agent>...]}
//
// It is named and opt-in because the contract's clients see every unnamed
// event through onmessage and switch on its type: they never ask for it, so
// they never see it, and a client that asks gets it only through
// addEventListener("room"). On the WebSocket (which has no event names) an
// opted-in client gets {"type":"room","data":{...}} text frames.
//
// The figures and the list come from one read of the presence set, so the
// online count is the length of the list (when the list holds every online
// agent: up to agentsMax), and the unnamed stats event of the same pass says
// the same.

// agentsMax is how many online agents the room event lists, like GET /api/agents.
const agentsMax = 200

// agentsReread is how often the online agents' rows are read again although
// the set of who is online did not change (a verification changes a row).
const agentsReread = 10 * time.Second

// spectatorParam reports whether a stream asked for the spectator events.
func spectatorParam(r *http.Request) bool {
	switch r.URL.Query().Get("spectator") {
	case "1", "true":
		return true
	}
	return false
}

// roomEvent is the data of the room event.
type roomEvent struct {
	Stats  model.Stats   `json:"stats"`
	Agents []model.Agent `json:"agents"`
}

// roomFrame builds the named room event (SSE) and its WebSocket form.
func roomFrame(data []byte) *frame {
	ev := make([]byte, 0, len(data)+24)
	ev = append(ev, "event: room\ndata: "...)
	ev = append(ev, data...)
	ev = append(ev, "\n\n"...)
	ws := make([]byte, 0, len(data)+24)
	ws = append(ws, `{"type":"room","data":`...)
	ws = append(ws, data...)
	ws = append(ws, '}')
	f := &frame{ws: wsFrame(wsOpText, ws), spectator: true}
	f.sse, f.rawOff = chunk(ev)
	return f
}

// agentCache keeps the rows of the agents online at the last refresh, so
// that a refresh reads Postgres only when someone came or went (or every
// agentsReread). Only the stats loop touches it.
type agentCache struct {
	ids  []string // sorted
	rows []store.Agent
	at   time.Time
	last []byte // the last room event's data
}

// onlineAgents returns the online agents ordered by name, with their
// last-seen times from the presence set, and whether the list is complete.
func (s *Server) onlineAgents(ctx context.Context, now time.Time) ([]model.Agent, bool, error) {
	online, err := s.pres.Online(ctx, now, agentsMax)
	if err != nil {
		s.met.redisErrors.Inc()
		return nil, false, err
	}
	ids := make([]string, 0, len(online))
	for id := range online {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ac := &s.agents
	if !slices.Equal(ids, ac.ids) || now.Sub(ac.at) >= agentsReread {
		rows, err := s.st.AgentsByIDs(ctx, ids)
		if err != nil {
			return nil, false, err
		}
		ac.ids, ac.rows, ac.at = ids, rows, now
	}
	list := make([]model.Agent, 0, len(ac.rows))
	for i := range ac.rows {
		seen := online[ac.rows[i].ID]
		list = append(list, ac.rows[i].Wire(true, &seen))
	}
	return list, len(online) < agentsMax, nil
}

// refreshRoom builds the room event from stats and the online agents and
// sends it to the spectator streams when it changed. It returns the stats
// with the online count made to agree with the list.
func (s *Server) refreshRoom(ctx context.Context, stats model.Stats, now time.Time) model.Stats {
	list, complete, err := s.onlineAgents(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("could not list the online agents for the spectators", "err", err)
		}
		return stats
	}
	if complete {
		stats.OnlineAgents = int64(len(list))
	}
	data, err := json.Marshal(roomEvent{Stats: stats, Agents: list})
	if err != nil {
		return stats
	}
	if bytes.Equal(data, s.agents.last) && s.hub.hasRoom() {
		return stats
	}
	s.agents.last = data
	s.hub.setRoom(roomFrame(data))
	return stats
}
