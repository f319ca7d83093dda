// Package fakemoltbook is a stand-in for the Moltbook API, for tests and
// local runs: Moltbook is a third party, so the verifier is tested against
// this server, never a mock of the client. It serves
// GET /api/v1/agents/profile?name= from scenarios that a test sets through
// the Go API or a person sets through a small JSON control API under
// /_fake/, and it counts the requests it gets per name.
//
// A scenario is an Agent: claimed or not, its owner, its posts (only the
// newest RecentPosts of them are shown, so an older post is "too old"), its
// comments (shown apart from the posts, as a naive verifier's trap), field
// casing, and a list of Faults (429 with a reset, 5xx, malformed JSON, slow
// answers) served in order before the normal answer, so failures that
// recover after N calls are one line.
package fakemoltbook

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RecentPosts is how many of an agent's newest posts the profile shows, as
// Moltbook does: an older post is not in recentPosts and cannot verify.
const RecentPosts = 10

// VerificationMessage is what chatr asks an owner to post, with the code.
func VerificationMessage(code string) string {
	return "Verifying my 🦞 account to chat with other agents in real time at chatr.ai [" + code + "] https://chatr.ai/skills.md"
}

// Duration is a time.Duration that reads JSON as "1.5s" or as milliseconds.
type Duration time.Duration

// UnmarshalJSON accepts a Go duration string or a number of milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return errors.New("duration must be a string like \"2s\" or a number of milliseconds")
	}
	*d = Duration(ms * float64(time.Millisecond))
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Post is one Moltbook post.
type Post struct {
	ID      string `json:"id,omitempty"`
	Title   string `json:"title,omitempty"`
	Content string `json:"content"`
	Submolt string `json:"submolt,omitempty"`
}

// Fault is one abnormal answer. Faults are consumed in order, one per
// request, before the agent's normal answer.
type Fault struct {
	// Status is the HTTP status to answer (429, 500, 503...). 0 with
	// Malformed answers 200 with a broken body; 0 alone answers normally
	// (useful with Delay: one slow answer).
	Status int `json:"status,omitempty"`
	// Malformed answers a truncated JSON body.
	Malformed bool `json:"malformed,omitempty"`
	// ResetAfter sets X-RateLimit-Reset (epoch seconds) to now + ResetAfter.
	ResetAfter Duration `json:"resetAfter,omitempty"`
	// RetryAfter sets Retry-After (whole seconds, rounded up).
	RetryAfter Duration `json:"retryAfter,omitempty"`
	// Delay holds the answer back this long (a slow Moltbook).
	Delay Duration `json:"delay,omitempty"`
	// Times repeats the fault for this many requests (0: once).
	Times int `json:"times,omitempty"`
}

// validate refuses a fault the fake could not serve.
func (f Fault) validate() error {
	if f.Status != 0 && (f.Status < 200 || f.Status > 599) {
		return fmt.Errorf("fault status %d: want 200-599 (or 0)", f.Status)
	}
	if f.Times < 0 || f.Delay < 0 || f.ResetAfter < 0 || f.RetryAfter < 0 {
		return errors.New("fault times and durations must not be negative")
	}
	return nil
}

func validateFaults(fs []Fault) error {
	for _, f := range fs {
		if err := f.validate(); err != nil {
			return err
		}
	}
	return nil
}

// Agent is a Moltbook agent and how the fake answers about it.
type Agent struct {
	Name    string `json:"name"`
	Claimed bool   `json:"claimed"`
	// Owner is the owner's X handle; empty answers "owner": null.
	Owner string `json:"owner,omitempty"`
	// Posts, newest first; only the first RecentPosts are shown.
	Posts []Post `json:"posts,omitempty"`
	// Comments are shown as "recentComments", never in recentPosts: a code
	// only in a comment must not verify.
	Comments []string `json:"comments,omitempty"`
	// CamelCase answers isClaimed, xHandle, createdAt... instead of snake_case.
	CamelCase bool `json:"camelCase,omitempty"`
	// SubmoltObject answers submolt as {"id","name","display_name"}.
	SubmoltObject bool `json:"submoltObject,omitempty"`
	// Delay holds back every answer about this agent.
	Delay Duration `json:"delay,omitempty"`
	// Faults are served first, in order.
	Faults []Fault `json:"faults,omitempty"`
}

// Verified is the happy scenario: claimed by @owner, with the verification
// message (containing [code]) as its newest post.
func Verified(name, owner, code string) Agent {
	return Agent{Name: name, Claimed: true, Owner: owner, Posts: []Post{{Title: "chatr", Content: VerificationMessage(code)}}}
}

// Server is the fake. The zero value is not usable; call New.
type Server struct {
	mu       sync.Mutex
	agents   map[string]*Agent // by lower-case name
	requests map[string]int    // profile requests by lower-case name
	times    []time.Time       // every profile request, in order
	limit    int               // fleet rate limit per window (0: none)
	window   time.Duration
	winStart time.Time
	winCount int
	mux      *http.ServeMux
}

// New returns an empty fake: every name is unknown until set.
func New() *Server {
	s := &Server{agents: map[string]*Agent{}, requests: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/agents/profile", s.profile)
	mux.HandleFunc("GET /_fake/agents/{name}", s.getAgent)
	mux.HandleFunc("PUT /_fake/agents/{name}", s.putAgent)
	mux.HandleFunc("DELETE /_fake/agents/{name}", s.deleteAgent)
	mux.HandleFunc("POST /_fake/agents/{name}/posts", s.postPost)
	mux.HandleFunc("POST /_fake/agents/{name}/faults", s.postFaults)
	mux.HandleFunc("POST /_fake/seed", s.seed)
	mux.HandleFunc("GET /_fake/requests", s.getRequests)
	mux.HandleFunc("PUT /_fake/ratelimit", s.putRateLimit)
	mux.HandleFunc("DELETE /_fake", s.reset)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "error": "Not found"})
	})
	s.mux = mux
	return s
}

// ServeHTTP serves the Moltbook API under /api/v1 and the control API under /_fake.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func key(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// Set creates or replaces an agent.
func (s *Server) Set(a Agent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := a
	cp.Posts = append([]Post(nil), a.Posts...)
	cp.Comments = append([]string(nil), a.Comments...)
	cp.Faults = append([]Fault(nil), a.Faults...)
	for i := range cp.Posts {
		if cp.Posts[i].ID == "" {
			cp.Posts[i].ID = newID()
		}
	}
	s.agents[key(a.Name)] = &cp
}

// Delete forgets an agent (it becomes unknown).
func (s *Server) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.agents, key(name))
}

// AddPost makes p the agent's newest post. It reports false for an unknown agent.
func (s *Server) AddPost(name string, p Post) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[key(name)]
	if a == nil {
		return false
	}
	if p.ID == "" {
		p.ID = newID()
	}
	a.Posts = append([]Post{p}, a.Posts...)
	return true
}

// AddFaults appends faults to the agent's queue. It reports false for an unknown agent.
func (s *Server) AddFaults(name string, fs ...Fault) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[key(name)]
	if a == nil {
		return false
	}
	a.Faults = append(a.Faults, fs...)
	return true
}

// Requests is how many profile requests asked about name (any casing).
func (s *Server) Requests(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[key(name)]
}

// RequestTimes returns when each profile request arrived, in order.
func (s *Server) RequestTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.times...)
}

// SetRateLimit makes the fake answer 429 (with X-RateLimit-Reset) once more
// than limit profile requests arrive in a fixed window, like Moltbook's
// per-client limit. limit 0 turns it off.
func (s *Server) SetRateLimit(limit int, window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit, s.window, s.winStart, s.winCount = limit, window, time.Time{}, 0
}

// Reset forgets every agent, count and limit.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agents, s.requests, s.times = map[string]*Agent{}, map[string]int{}, nil
	s.limit, s.winCount = 0, 0
}

// answer is what one profile request gets, decided under the lock and
// written outside it (delays must not hold the lock).
type answer struct {
	status int
	header http.Header
	body   []byte
	delay  time.Duration
}

func (s *Server) profile(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if strings.TrimSpace(name) == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "name parameter required"})
		return
	}
	a := s.decide(name, time.Now())
	if a.delay > 0 {
		t := time.NewTimer(a.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

func (s *Server) decide(name string, now time.Time) answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(name)
	s.requests[k]++
	s.times = append(s.times, now)
	ans := answer{status: http.StatusOK, header: http.Header{}}

	if s.limit > 0 {
		if s.winStart.IsZero() || now.Sub(s.winStart) >= s.window {
			s.winStart, s.winCount = now, 0
		}
		s.winCount++
		reset := s.winStart.Add(s.window)
		ans.header.Set("X-RateLimit-Limit", strconv.Itoa(s.limit))
		ans.header.Set("X-RateLimit-Remaining", strconv.Itoa(max(0, s.limit-s.winCount)))
		ans.header.Set("X-RateLimit-Reset", strconv.FormatInt(ceilUnix(reset), 10))
		if s.winCount > s.limit {
			ans.status = http.StatusTooManyRequests
			ans.body = mustJSON(map[string]any{"success": false, "error": "Rate limit exceeded", "hint": "Slow down"})
			return ans
		}
	}

	ag := s.agents[k]
	if ag == nil {
		ans.status = http.StatusNotFound
		ans.body = mustJSON(map[string]any{"success": false, "error": "Bot not found", "searched_for": name})
		return ans
	}
	ans.delay = time.Duration(ag.Delay)
	if len(ag.Faults) > 0 {
		f := &ag.Faults[0]
		if f.Times <= 1 {
			ag.Faults = ag.Faults[1:]
		} else {
			f.Times--
		}
		ans.delay += time.Duration(f.Delay)
		switch {
		case f.Status == http.StatusTooManyRequests:
			ans.status = f.Status
			if f.ResetAfter > 0 {
				ans.header.Set("X-RateLimit-Reset", strconv.FormatInt(ceilUnix(now.Add(time.Duration(f.ResetAfter))), 10))
				ans.header.Set("X-RateLimit-Remaining", "0")
			}
			if f.RetryAfter > 0 {
				secs := (time.Duration(f.RetryAfter) + time.Second - 1) / time.Second
				ans.header.Set("Retry-After", strconv.FormatInt(int64(secs), 10))
			}
			ans.body = mustJSON(map[string]any{"success": false, "error": "Rate limit exceeded"})
			return ans
		case f.Status != 0 && f.Status != http.StatusOK:
			ans.status = f.Status
			if f.Status < 200 || f.Status > 599 { // set through the Go API
				ans.status = http.StatusInternalServerError
			}
			ans.body = mustJSON(map[string]any{"success": false, "error": http.StatusText(f.Status)})
			return ans
		case f.Malformed:
			full := profileBody(ag, now)
			ans.body = full[:len(full)/2]
			return ans
		}
	}
	ans.body = profileBody(ag, now)
	return ans
}

// profileBody renders the agent like Moltbook does, in snake_case or camelCase.
func profileBody(a *Agent, now time.Time) []byte {
	c := func(snake, camel string) string {
		if a.CamelCase {
			return camel
		}
		return snake
	}
	created := now.Add(-30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	var owner any
	if a.Owner != "" {
		owner = map[string]any{c("x_handle", "xHandle"): a.Owner, c("x_name", "xName"): a.Owner,
			c("x_avatar", "xAvatar"): "https://example.invalid/" + a.Owner + ".png", c("x_verified", "xVerified"): false}
	}
	agent := map[string]any{
		"name": a.Name, "description": "a fake Moltbook agent", "karma": 42,
		c("follower_count", "followerCount"): 15, c("following_count", "followingCount"): 8,
		c("is_claimed", "isClaimed"): a.Claimed, c("is_active", "isActive"): true,
		c("created_at", "createdAt"): created, c("last_active", "lastActive"): now.UTC().Format(time.RFC3339),
		"owner": owner,
	}
	posts := []any{}
	for i, p := range a.Posts {
		if i >= RecentPosts {
			break
		}
		var submolt any = p.Submolt
		if p.Submolt == "" {
			submolt = "general"
		}
		if a.SubmoltObject {
			submolt = map[string]any{"id": "sm-" + fmt.Sprint(submolt), "name": submolt, "display_name": submolt}
		}
		posts = append(posts, map[string]any{
			"id": p.ID, "title": p.Title, "content": p.Content, "submolt": submolt, "score": 0,
			c("comment_count", "commentCount"): 0,
			c("created_at", "createdAt"):       now.Add(-time.Duration(i+1) * time.Minute).UTC().Format("2006-01-02T15:04:05.000Z"),
		})
	}
	comments := []any{}
	for i, cm := range a.Comments {
		comments = append(comments, map[string]any{"id": fmt.Sprintf("c%d", i+1), "content": cm, c("post_id", "postId"): "someone-elses-post"})
	}
	return mustJSON(map[string]any{"success": true, "agent": agent, "recentPosts": posts, "recentComments": comments})
}

// --- the control API ---

const maxControlBody = 64 << 10

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	a := s.agents[key(name)]
	var cp Agent
	if a != nil {
		cp = *a // deep copy: the slices change under the lock later
		cp.Posts = append([]Post(nil), a.Posts...)
		cp.Comments = append([]string(nil), a.Comments...)
		cp.Faults = append([]Fault(nil), a.Faults...)
	}
	n := s.requests[key(name)]
	s.mu.Unlock()
	if a == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "error": "unknown agent", "requests": n})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "agent": cp, "requests": n})
}

func (s *Server) putAgent(w http.ResponseWriter, r *http.Request) {
	var a Agent
	if !readJSON(w, r, &a) {
		return
	}
	a.Name = r.PathValue("name")
	err := validateFaults(a.Faults)
	if a.Delay < 0 {
		err = errors.New("delay must not be negative")
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid scenario: " + err.Error()})
		return
	}
	s.Set(a)
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

func (s *Server) deleteAgent(w http.ResponseWriter, r *http.Request) {
	s.Delete(r.PathValue("name"))
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

func (s *Server) postPost(w http.ResponseWriter, r *http.Request) {
	var p Post
	if !readJSON(w, r, &p) {
		return
	}
	if !s.AddPost(r.PathValue("name"), p) {
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "error": "unknown agent: PUT /_fake/agents/{name} first"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

func (s *Server) postFaults(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var fs []Fault
	if err := json.Unmarshal(body, &fs); err != nil {
		var f Fault
		if err := json.Unmarshal(body, &f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "want a fault object or an array of them: " + err.Error()})
			return
		}
		fs = []Fault{f}
	}
	if err := validateFaults(fs); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": err.Error()})
		return
	}
	if !s.AddFaults(r.PathValue("name"), fs...) {
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "error": "unknown agent: PUT /_fake/agents/{name} first"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

// seed is the one call a newcomer needs: "agent X is claimed by @owner and
// has posted [CODE]".
func (s *Server) seed(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name, Owner, Code string
	}
	if !readJSON(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Name) == "" || strings.TrimSpace(req.Code) == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": `want {"name":"...","owner":"...","code":"..."}`})
		return
	}
	if req.Owner == "" {
		req.Owner = req.Name + "_owner"
	}
	s.Set(Verified(req.Name, strings.TrimPrefix(req.Owner, "@"), strings.Trim(req.Code, "[] ")))
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "agent": req.Name})
}

func (s *Server) getRequests(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	m := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		m[k] = v
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "requests": m})
}

func (s *Server) putRateLimit(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Limit  int      `json:"limit"`
		Window Duration `json:"window"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if req.Limit < 0 || (req.Limit > 0 && req.Window <= 0) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": `want {"limit":100,"window":"1m"} (limit 0 turns it off)`})
		return
	}
	s.SetRateLimit(req.Limit, time.Duration(req.Window))
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

func (s *Server) reset(w http.ResponseWriter, r *http.Request) {
	s.Reset()
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxControlBody+1))
	if err != nil || len(body) > maxControlBody {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "could not read the body (max 64 KiB)"})
		return nil, false
	}
	return body, true
}

func readJSON(w http.ResponseWriter, r *http.Request, dst any) bool {
	body, ok := readBody(w, r)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, dst); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid JSON: " + err.Error()})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(mustJSON(v))
}

func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // only maps of plain values are encoded here
	}
	return buf.Bytes()
}

func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
