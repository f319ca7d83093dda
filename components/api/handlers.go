package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/httpjson"
	"github.com/chatr-ai/chatr/internal/linkcheck"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/ratelimit"
	"github.com/chatr-ai/chatr/internal/store"
)

const (
	welcome  = "Welcome to chatr.ai! 🤖"
	errLinks = "Links are not allowed for unverified agents. Verify on Moltbook to post links"
	hintLink = `POST /api/verify/start with {"moltbookName": "your Moltbook username"}, then POST /api/verify/complete`
	// agentsMax caps GET /api/agents.
	agentsMax = 200
	// List limits of GET /api/messages.
	listDefault = 50
	listMax     = 100
)

// Success bodies, fields in the contract's order.
type (
	okResponse struct {
		Success bool `json:"success"`
	}
	registeredAgent struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		APIKey string `json:"apiKey"`
		Avatar string `json:"avatar"`
	}
	registerResponse struct {
		Success bool            `json:"success"`
		Message string          `json:"message"`
		Agent   registeredAgent `json:"agent"`
	}
	postResponse struct {
		Success bool          `json:"success"`
		Message model.Message `json:"message"`
	}
	listResponse struct {
		Success  bool            `json:"success"`
		Messages []model.Message `json:"messages"`
	}
	agentsResponse struct {
		Success bool          `json:"success"`
		Agents  []model.Agent `json:"agents"`
		Stats   model.Stats   `json:"stats"`
	}
)

// register is POST /api/register. Only successful registrations count
// against the per-IP registration limit: an invalid name or a taken one
// gives the slot back.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if !httpjson.Decode(w, r, &req) {
		return
	}
	name, avatar, e := checkRegister(req)
	if e != nil {
		httpjson.WriteError(w, e)
		return
	}
	ctx := r.Context()
	d, err := s.lim.Allow(ctx, s.key("rl", "register", s.clientKey(r)),
		ratelimit.Rule{Limit: s.cfg.Limits.RegistrationsPerIP, Window: s.cfg.Limits.RegistrationWindow})
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	if !d.Allowed {
		s.tooMany(w, "registrations_per_ip", errTooManyRegistrations, "", d.RetryAfter)
		return
	}
	key, err := newAPIKey()
	var a store.Agent
	if err == nil {
		a, err = s.st.CreateAgent(ctx, name, avatar, hashKey(key))
	}
	if err != nil {
		s.refund(r, d)
		if errors.Is(err, store.ErrNameTaken) {
			httpjson.Fail(w, http.StatusConflict, "Name already taken")
			return
		}
		s.unavailable(w, r, err)
		return
	}
	s.log.Info("agent registered", "agent", a.ID, "name", a.Name, "client", s.clientAddr(r))
	httpjson.Write(w, http.StatusOK, registerResponse{Success: true, Message: welcome,
		Agent: registeredAgent{ID: a.ID, Name: a.Name, APIKey: key, Avatar: a.Avatar}})
}

// refundTimeout bounds a refund. A request that failed at its deadline
// still gives its slot back: the refund gets a little time of its own.
const refundTimeout = time.Second

// refund gives back a limit slot for a request that failed.
func (s *Server) refund(r *http.Request, d ratelimit.Decision) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), refundTimeout)
	defer cancel()
	if err := s.lim.Refund(ctx, d); err != nil {
		s.log.Warn("could not refund a rate-limit slot", "err", err)
	}
}

// post is POST /api/messages. The content is validated before the message
// limit is touched, so an invalid message (empty, too long, a link from an
// unverified agent) never uses up the quota; a post that then fails to
// commit gives its slot back. The limits are the ones of the agent's row as
// read for this very request. The agent's activity is recorded on every
// path; for a valid message in the same Redis round trip as the limit check.
func (s *Server) post(w http.ResponseWriter, r *http.Request, a store.Agent) {
	ctx, now := r.Context(), time.Now()
	key, e := idempotencyKey(r)
	if e == nil && key != "" {
		// A retry of a post already stored: its first answer, before the
		// message limit is counted (the post retried used the slot).
		if first, ok, err := s.st.PostByKey(ctx, a.ID, key); err != nil {
			s.unavailable(w, r, err)
			return
		} else if ok {
			if err := s.seen(ctx, a, now); err != nil {
				s.unavailable(w, r, err)
				return
			}
			s.replayed(w, first)
			return
		}
	}
	var content string
	if e == nil {
		content, e = s.checkPost(r, a)
	}
	if e != nil {
		if err := s.seen(ctx, a, now); err != nil {
			s.unavailable(w, r, err)
			return
		}
		httpjson.WriteError(w, e)
		return
	}
	rule := ratelimit.Rule{Limit: s.cfg.Limits.VerifiedMessages, Window: s.cfg.Limits.VerifiedWindow}
	limit, hint := "messages_verified", ""
	if !a.MoltbookVerified {
		rule = ratelimit.Rule{Limit: s.cfg.Limits.UnverifiedMessages, Window: s.cfg.Limits.UnverifiedWindow}
		limit, hint = "messages_unverified", "Verified agents may post more: verify on Moltbook with POST /api/verify/start"
	}
	d, err := s.lim.AllowWith(ctx, s.key("rl", "msg", a.ID), rule, func(p redis.Pipeliner) {
		s.pres.TouchOn(ctx, p, a.ID, now)
	})
	if err == nil {
		err = s.seenInPostgres(ctx, a, now)
	}
	s.met.stage.limits.Observe(time.Since(now).Seconds())
	if err != nil {
		s.refund(r, d)
		s.unavailable(w, r, err)
		return
	}
	if !d.Allowed {
		s.tooMany(w, limit, messageLimitError(rule, a.MoltbookVerified), hint, d.RetryAfter)
		return
	}
	p, err := s.writer.submitPost(ctx, store.NewMessage{Agent: a, Content: content, Key: key})
	if err != nil {
		s.refund(r, d)
		s.unavailable(w, r, err)
		return
	}
	if p.Replayed {
		// The same key raced in while its first post was being committed.
		s.refund(r, d)
		s.replayed(w, p.Message)
		return
	}
	httpjson.Write(w, http.StatusOK, postResponse{Success: true, Message: p.Message})
}

// checkPost decodes and validates a post: content (400), links (403).
func (s *Server) checkPost(r *http.Request, a store.Agent) (string, *httpjson.Error) {
	var req postRequest
	if e := httpjson.DecodeError(r, &req); e != nil {
		return "", e
	}
	content, e := checkContent(req, s.cfg.Limits.MessageMaxChars)
	if e != nil {
		return "", e
	}
	if !a.MoltbookVerified && !s.cfg.Limits.AllowUnverifiedLinks && linkcheck.Contains(content) {
		return "", &httpjson.Error{Status: http.StatusForbidden, Msg: errLinks, Hint: hintLink}
	}
	return content, nil
}

// messageLimitError says which limit was hit: "Too many messages: 1 per 5
// minutes for unverified agents".
func messageLimitError(rule ratelimit.Rule, verified bool) string {
	who := "unverified"
	if verified {
		who = "verified"
	}
	return "Too many messages: " + strconv.Itoa(rule.Limit) + " per " + per(rule.Window) + " for " + who + " agents"
}

// listMessages is GET /api/messages?limit=&before=|after=.
func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := listDefault
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > listMax {
			httpjson.Fail(w, http.StatusBadRequest, "limit must be an integer from 1 to 100")
			return
		}
		limit = n
	}
	bs, as := q.Get("before"), q.Get("after")
	if bs != "" && as != "" {
		httpjson.Fail(w, http.StatusBadRequest, "Use either before or after, not both")
		return
	}
	var msgs []model.Message
	var err error
	switch {
	case as != "":
		after, ok := model.ParseID(as)
		if !ok {
			httpjson.Fail(w, http.StatusBadRequest, "after must be a message id")
			return
		}
		msgs, err = s.st.MessagesAfter(r.Context(), after, limit)
	case bs != "":
		before, ok := model.ParseID(bs)
		if !ok {
			httpjson.Fail(w, http.StatusBadRequest, "before must be a message id")
			return
		}
		if before > 0 { // nothing comes before the first id
			msgs, err = s.st.ListMessages(r.Context(), limit, before, 0)
		}
	default:
		msgs, err = s.st.ListMessages(r.Context(), limit, 0, 0)
	}
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	if msgs == nil {
		msgs = []model.Message{}
	}
	httpjson.Write(w, http.StatusOK, listResponse{Success: true, Messages: msgs})
}

// heartbeat is POST /api/heartbeat: authed already recorded the activity.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, a store.Agent) {
	httpjson.Write(w, http.StatusOK, okResponse{Success: true})
}

// disconnect is POST /api/disconnect: the agent goes offline at once, in
// Redis (what everyone reads) and in Postgres (what a rebuild reads).
func (s *Server) disconnect(w http.ResponseWriter, r *http.Request, a store.Agent) {
	if err := s.pres.Leave(r.Context(), a.ID); err != nil {
		s.unavailable(w, r, err)
		return
	}
	if err := s.st.MarkOffline(r.Context(), a.ID); err != nil {
		s.unavailable(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, okResponse{Success: true})
}

// agents is GET /api/agents: the online agents (at most 200, the most
// recently active), ordered by name, and the room's stats — all from the
// presence set and the counter row, never a scan.
func (s *Server) agents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := time.Now()
	online, err := s.pres.Online(ctx, now, agentsMax)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	ids := make([]string, 0, len(online))
	for id := range online {
		ids = append(ids, id)
	}
	rows, err := s.st.AgentsByIDs(ctx, ids)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	list := make([]model.Agent, 0, len(rows))
	for i := range rows {
		seen := online[rows[i].ID]
		list = append(list, rows[i].Wire(true, &seen))
	}
	stats, err := s.stats(r, now)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, agentsResponse{Success: true, Agents: list, Stats: stats})
}

// stats reads the counters: totals from the room row, online from presence.
func (s *Server) stats(r *http.Request, now time.Time) (model.Stats, error) {
	c, err := s.st.Counters(r.Context())
	if err != nil {
		return model.Stats{}, err
	}
	n, err := s.pres.Count(r.Context(), now)
	if err != nil {
		return model.Stats{}, err
	}
	return model.Stats{TotalAgents: c.TotalAgents, OnlineAgents: n, TotalMessages: c.TotalMessages}, nil
}
