package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/httpjson"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/plaintext"
	"github.com/chatr-ai/chatr/internal/roomevents"
	"github.com/chatr-ai/chatr/internal/store"
)

// The moderation API (docs/operations.md, "Moderation"). It is served by
// ModerationHandler on a listener of its own (CHATR_MODERATION_LISTEN, the
// pods' port "moderation"), which the operator's Ingress never routes to,
// and answers only a request that carries the room's moderator token
// (CHATR_MODERATION_TOKEN, from the Secret the ChatRoom names) and a
// moderator's name:
//
//	Authorization: Bearer <token>
//	X-Moderator: <who is acting>
//
//	POST /admin/ban     {"agent","reason","expires"?}   ban an agent (by name)
//	POST /admin/unban   {"agent","reason"?}             lift its ban
//	POST /admin/delete  {"id","reason"}                 delete a message
//	GET  /admin/bans                                    the bans in force
//	GET  /admin/log?limit=&before=                      the audit log, newest first
//
// Every action is written to Postgres with its line of the audit log, in
// one transaction. Without a token the room has no moderation, and every
// path answers 404 saying so.

// Limits and error strings of the moderation API.
const (
	// ModerationTokenMin is the shortest token the API accepts at start.
	ModerationTokenMin = 16
	moderatorMax       = 64
	reasonMax          = 500
	logDefault         = 50
	logMax             = 500
	// expiryMax bounds an expiry, so no arithmetic on it can overflow.
	expiryMax = 100 * 365 * 24 * time.Hour

	errModerationOff   = "Moderation is not enabled in this room"
	hintModerationOff  = "Name a Secret holding the moderator token in the ChatRoom's spec.moderation.tokenSecretRef (CHATR_MODERATION_TOKEN)"
	errTokenMissing    = "Moderator token required. Use: Authorization: Bearer TOKEN"
	errTokenInvalid    = "Invalid moderator token"
	errModeratorNeeded = "Moderator name required: send X-Moderator: YOUR_NAME"
	errModeratorBad    = "X-Moderator must be 1-64 characters: letters, numbers, _ . @ or -"
)

// moderation is the server's moderation state: the token's SHA-256 (the
// token itself is not kept), or nil when moderation is off.
type moderation struct {
	tokenHash []byte
}

func newModeration(token string) (*moderation, error) {
	if token == "" {
		return &moderation{}, nil
	}
	if len(token) < ModerationTokenMin {
		return nil, fmt.Errorf("%s: the moderator token must be at least %d characters", config.EnvModerationToken, ModerationTokenMin)
	}
	h := sha256.Sum256([]byte(token))
	return &moderation{tokenHash: h[:]}, nil
}

// enabled reports whether the room has moderation.
func (m *moderation) enabled() bool { return m.tokenHash != nil }

// checkToken compares the presented token with the room's in constant time
// (over their hashes, which have the same length whatever was sent).
func (m *moderation) checkToken(tok string) bool {
	h := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(h[:], m.tokenHash) == 1
}

// ModerationHandler serves the moderation API. Serve it on its own
// listener, never the public one.
func (s *Server) ModerationHandler() http.Handler {
	routes := map[string]map[string]http.HandlerFunc{
		"/admin/ban":    {"POST": s.moderator(s.banAgent)},
		"/admin/unban":  {"POST": s.moderator(s.unbanAgent)},
		"/admin/delete": {"POST": s.moderator(s.deleteMessage)},
		"/admin/bans":   {"GET": s.moderator(s.listBans)},
		"/admin/log":    {"GET": s.moderator(s.moderationLog)},
	}
	allow := map[string]string{"/admin/ban": "POST", "/admin/unban": "POST", "/admin/delete": "POST", "/admin/bans": "GET, HEAD", "/admin/log": "GET, HEAD"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.internalError(w, r, fmt.Errorf("moderation handler panicked: %v", p))
			}
		}()
		if !s.cfg.mod.enabled() {
			httpjson.WriteError(w, &httpjson.Error{Status: http.StatusNotFound, Msg: errModerationOff, Hint: hintModerationOff})
			return
		}
		rt, ok := routes[r.URL.Path]
		if !ok {
			httpjson.Fail(w, http.StatusNotFound, "Not found")
			return
		}
		method := r.Method
		if method == "HEAD" {
			method = "GET"
		}
		h, ok := rt[method]
		if !ok {
			w.Header().Set("Allow", allow[r.URL.Path])
			httpjson.Fail(w, http.StatusMethodNotAllowed, "Method not allowed")
			return
		}
		if r.ContentLength > httpjson.MaxBody {
			httpjson.Fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large (max %d KB)", httpjson.MaxBody>>10))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		h(w, r.WithContext(ctx))
	})
}

// moderatorHandler is a handler of an authenticated moderator.
type moderatorHandler func(w http.ResponseWriter, r *http.Request, who string)

// moderator checks the token and the moderator's name before h.
func (s *Server) moderator(h moderatorHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, found := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			httpjson.Fail(w, http.StatusUnauthorized, errTokenMissing)
			return
		}
		if !s.cfg.mod.checkToken(strings.TrimSpace(tok)) {
			s.log.Warn("moderation request with a wrong token", "path", r.URL.Path, "client", r.RemoteAddr)
			httpjson.Fail(w, http.StatusUnauthorized, errTokenInvalid)
			return
		}
		who, e := checkModerator(r.Header.Get("X-Moderator"))
		if e != nil {
			httpjson.WriteError(w, e)
			return
		}
		h(w, r, who)
	}
}

// checkModerator validates a moderator's name: 1–64 of [A-Za-z0-9_.@-].
func checkModerator(v string) (string, *httpjson.Error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", httpjson.Errorf(http.StatusBadRequest, errModeratorNeeded)
	}
	if len(v) > moderatorMax {
		return "", httpjson.Errorf(http.StatusBadRequest, errModeratorBad)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '@') {
			return "", httpjson.Errorf(http.StatusBadRequest, errModeratorBad)
		}
	}
	return v, nil
}

// The bodies of the moderation API.
type (
	banRequest struct {
		Agent   string `json:"agent"`
		Reason  string `json:"reason"`
		Expires string `json:"expires"`
	}
	unbanRequest struct {
		Agent  string `json:"agent"`
		Reason string `json:"reason"`
	}
	deleteRequest struct {
		ID     string `json:"id"`
		Reason string `json:"reason"`
	}
	// moderationAction is a line of the audit log as the API shows it.
	moderationAction struct {
		ID        string  `json:"id"`
		At        string  `json:"at"`
		Moderator string  `json:"moderator"`
		Action    string  `json:"action"`
		Agent     string  `json:"agent"`
		AgentID   *string `json:"agentId"`
		MessageID *string `json:"messageId"`
		Reason    string  `json:"reason"`
		ExpiresAt *string `json:"expiresAt"`
	}
	actionResponse struct {
		Success bool             `json:"success"`
		Action  moderationAction `json:"action"`
	}
	logResponse struct {
		Success bool               `json:"success"`
		Actions []moderationAction `json:"actions"`
	}
	banInForce struct {
		Agent     string  `json:"agent"`
		AgentID   string  `json:"agentId"`
		Reason    string  `json:"reason"`
		Moderator string  `json:"moderator"`
		Since     string  `json:"since"`
		ExpiresAt *string `json:"expiresAt"`
	}
	bansResponse struct {
		Success bool         `json:"success"`
		Bans    []banInForce `json:"bans"`
	}
)

func wireAction(a store.ModerationAction) moderationAction {
	w := moderationAction{ID: strconv.FormatInt(a.ID, 10), At: model.FormatTime(a.At), Moderator: a.Moderator,
		Action: a.Action, Agent: a.AgentName, Reason: a.Reason, ExpiresAt: wireTime(a.ExpiresAt)}
	if a.AgentID != "" {
		id := a.AgentID
		w.AgentID = &id
	}
	if a.MessageID != 0 {
		id := strconv.FormatInt(a.MessageID, 10)
		w.MessageID = &id
	}
	return w
}

func wireTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := model.FormatTime(*t)
	return &s
}

// checkReason validates a reason: required unless optional, at most 500
// characters, plain text (it is shown to the banned agent and in terminals).
func checkReason(v string, optional bool) (string, *httpjson.Error) {
	v = strings.TrimSpace(plaintext.Normalize(v))
	if v == "" {
		if optional {
			return "", nil
		}
		return "", httpjson.Errorf(http.StatusBadRequest, "reason required: say why, it goes into the audit log")
	}
	if utf8.RuneCountInString(v) > reasonMax {
		return "", httpjson.Errorf(http.StatusBadRequest, "reason must be at most %d characters", reasonMax)
	}
	if p := plaintext.Check(v, false); p != nil {
		return "", textError("reason", p)
	}
	return v, nil
}

// checkAgentName validates the name of the agent acted on.
func checkAgentName(v string) (string, *httpjson.Error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", httpjson.Errorf(http.StatusBadRequest, "agent required: the name of the agent")
	}
	if !validName(v) {
		return "", httpjson.Errorf(http.StatusBadRequest, "agent must be an agent's name: 2-32 characters, letters, numbers, _ or -")
	}
	return v, nil
}

// ParseExpiry reads a ban's expiry: empty for none, a duration from now
// ("90m", "24h", "7d", "1d12h"; units d, h, m, s) or an RFC 3339 time, which
// must be in the future. At most about a hundred years ahead.
func ParseExpiry(v string, now time.Time) (*time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	if len(v) > 64 {
		return nil, errors.New("expires must be a duration such as 24h or 7d, or an RFC 3339 time")
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		if !t.After(now) {
			return nil, errors.New("expires must be in the future")
		}
		if t.Sub(now) > expiryMax {
			return nil, errors.New("expires is too far in the future (at most 100 years)")
		}
		t = t.UTC()
		return &t, nil
	}
	d, err := parseDays(v)
	if err != nil {
		return nil, err
	}
	t := now.Add(d).UTC()
	return &t, nil
}

// parseDays is time.ParseDuration with a "d" unit (24 h) in front, positive
// and bounded by expiryMax.
func parseDays(v string) (time.Duration, error) {
	bad := errors.New("expires must be a duration such as 24h or 7d, or an RFC 3339 time")
	var days time.Duration
	if i := strings.IndexByte(v, 'd'); i >= 0 {
		n, err := strconv.ParseUint(v[:i], 10, 32)
		if err != nil || i == 0 {
			return 0, bad
		}
		if n > uint64(expiryMax/(24*time.Hour)) {
			return 0, errors.New("expires is too far in the future (at most 100 years)")
		}
		days = time.Duration(n) * 24 * time.Hour
		v = v[i+1:]
	}
	var rest time.Duration
	if v != "" {
		if v[0] == '-' || v[0] == '+' {
			return 0, bad
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, bad
		}
		rest = d
	}
	if rest > expiryMax || days+rest > expiryMax {
		return 0, errors.New("expires is too far in the future (at most 100 years)")
	}
	if days+rest <= 0 {
		return 0, errors.New("expires must be a positive duration")
	}
	return days + rest, nil
}

// checkBan validates a ban's body.
func checkBan(req banRequest, now time.Time) (name, reason string, expires *time.Time, e *httpjson.Error) {
	if name, e = checkAgentName(req.Agent); e != nil {
		return
	}
	if reason, e = checkReason(req.Reason, false); e != nil {
		return
	}
	var err error
	if expires, err = ParseExpiry(req.Expires, now); err != nil {
		e = httpjson.Errorf(http.StatusBadRequest, "%s", err.Error())
	}
	return
}

// banAgent is POST /admin/ban.
func (s *Server) banAgent(w http.ResponseWriter, r *http.Request, who string) {
	var req banRequest
	if !httpjson.Decode(w, r, &req) {
		return
	}
	name, reason, expires, e := checkBan(req, time.Now())
	if e != nil {
		httpjson.WriteError(w, e)
		return
	}
	ctx := r.Context()
	a, err := s.st.BanAgent(ctx, name, who, reason, expires)
	if errors.Is(err, store.ErrNotFound) {
		httpjson.Fail(w, http.StatusNotFound, fmt.Sprintf("Agent %q not found", name))
		return
	}
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	// The ban holds from its commit (authentication reads it); the agent
	// also leaves the online list at once.
	if err := s.pres.Leave(ctx, a.AgentID); err != nil {
		s.log.Warn("banned agent still listed online until its presence times out", "agent", a.AgentID, "err", err)
	}
	s.log.Info("agent banned", "agent", a.AgentID, "name", a.AgentName, "moderator", who, "reason", reason, "expires", wireTime(expires))
	until := "for good"
	if expires != nil {
		until = "until " + expires.UTC().Format(time.RFC3339)
	}
	s.roomEvent(ctx, roomevents.Event{Type: roomevents.Normal, Reason: "AgentBanned",
		Message: fmt.Sprintf("%s banned agent %q %s: %s", who, a.AgentName, until, reason)})
	httpjson.Write(w, http.StatusOK, actionResponse{Success: true, Action: wireAction(a)})
}

// unbanAgent is POST /admin/unban.
func (s *Server) unbanAgent(w http.ResponseWriter, r *http.Request, who string) {
	var req unbanRequest
	if !httpjson.Decode(w, r, &req) {
		return
	}
	name, e := checkAgentName(req.Agent)
	if e == nil {
		req.Reason, e = checkReason(req.Reason, true)
	}
	if e != nil {
		httpjson.WriteError(w, e)
		return
	}
	a, err := s.st.UnbanAgent(r.Context(), name, who, req.Reason)
	switch {
	case errors.Is(err, store.ErrNotFound):
		httpjson.Fail(w, http.StatusNotFound, fmt.Sprintf("Agent %q not found", name))
		return
	case errors.Is(err, store.ErrNotBanned):
		httpjson.Fail(w, http.StatusNotFound, fmt.Sprintf("Agent %q is not banned", name))
		return
	case err != nil:
		s.unavailable(w, r, err)
		return
	}
	s.log.Info("agent unbanned", "agent", a.AgentID, "name", a.AgentName, "moderator", who)
	s.roomEvent(r.Context(), roomevents.Event{Type: roomevents.Normal, Reason: "AgentUnbanned",
		Message: fmt.Sprintf("%s unbanned agent %q", who, a.AgentName)})
	httpjson.Write(w, http.StatusOK, actionResponse{Success: true, Action: wireAction(a)})
}

// deleteMessage is POST /admin/delete: the message leaves Postgres, then the
// streamers are told on the moderation channel (they catch up from the log
// if that publish is lost).
func (s *Server) deleteMessage(w http.ResponseWriter, r *http.Request, who string) {
	var req deleteRequest
	if !httpjson.Decode(w, r, &req) {
		return
	}
	id, ok := model.ParseID(strings.TrimSpace(req.ID))
	if !ok || id <= 0 {
		httpjson.Fail(w, http.StatusBadRequest, "id must be a message id")
		return
	}
	reason, e := checkReason(req.Reason, false)
	if e != nil {
		httpjson.WriteError(w, e)
		return
	}
	a, err := s.st.DeleteMessage(r.Context(), id, who, reason)
	if errors.Is(err, store.ErrNotFound) {
		httpjson.Fail(w, http.StatusNotFound, fmt.Sprintf("Message %d not found", id))
		return
	}
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Second)
	defer cancel()
	if err := s.bus.PublishModeration(pctx, bus.Moderation{Deleted: []int64{id}, LogID: a.ID}); err != nil {
		s.met.publishErrors.Inc()
		s.log.Warn("could not tell the streamers of a deletion; they catch up from Postgres", "message", id, "err", err)
	}
	s.log.Info("message deleted", "message", id, "agent", a.AgentID, "moderator", who, "reason", reason)
	s.roomEvent(pctx, roomevents.Event{Type: roomevents.Normal, Reason: "MessageDeleted",
		Message: fmt.Sprintf("%s deleted message %d: %s", who, id, reason)})
	httpjson.Write(w, http.StatusOK, actionResponse{Success: true, Action: wireAction(a)})
}

// roomEvent hands a moderation action to the operator, which records it as
// an Event on the ChatRoom (internal/roomevents); Kubernetes folds a wave of
// the same reason into one Event with a count. The action has committed
// already: an event that cannot be published is logged, not an error.
func (s *Server) roomEvent(ctx context.Context, e roomevents.Event) {
	e.Source = "api"
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := roomevents.Publish(pctx, s.rdb, s.cfg.Common.Schema, e); err != nil {
		s.log.Warn("room event not published", "reason", e.Reason, "err", err)
	}
}

// listBans is GET /admin/bans.
func (s *Server) listBans(w http.ResponseWriter, r *http.Request, _ string) {
	bans, err := s.st.Bans(r.Context())
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	out := make([]banInForce, 0, len(bans))
	for _, b := range bans {
		out = append(out, banInForce{Agent: b.AgentName, AgentID: b.AgentID, Reason: b.Reason, Moderator: b.Moderator,
			Since: model.FormatTime(b.CreatedAt), ExpiresAt: wireTime(b.ExpiresAt)})
	}
	httpjson.Write(w, http.StatusOK, bansResponse{Success: true, Bans: out})
}

// moderationLog is GET /admin/log?limit=&before=.
func (s *Server) moderationLog(w http.ResponseWriter, r *http.Request, _ string) {
	q := r.URL.Query()
	limit := logDefault
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > logMax {
			httpjson.Fail(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", logMax))
			return
		}
		limit = n
	}
	var before int64
	if v := q.Get("before"); v != "" {
		b, ok := model.ParseID(v)
		if !ok {
			httpjson.Fail(w, http.StatusBadRequest, "before must be an action id")
			return
		}
		before = b
	}
	acts, err := s.st.ModerationLog(r.Context(), limit, before)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	out := make([]moderationAction, 0, len(acts))
	for _, a := range acts {
		out = append(out, wireAction(a))
	}
	httpjson.Write(w, http.StatusOK, logResponse{Success: true, Actions: out})
}

// bannedError is the 403 a banned agent gets on every authenticated
// endpoint: the reason, and until when (null: until a moderator lifts it).
func bannedError(b *store.Ban) *httpjson.Error {
	msg := "This agent is banned from the room: " + b.Reason
	if b.ExpiresAt != nil {
		msg += " (until " + model.FormatTime(*b.ExpiresAt) + ")"
	}
	return &httpjson.Error{Status: http.StatusForbidden, Msg: msg,
		Extra: map[string]any{"banned": true, "reason": b.Reason, "bannedUntil": wireTime(b.ExpiresAt)}}
}
