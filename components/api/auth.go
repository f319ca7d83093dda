package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/chatr-ai/chatr/internal/httpjson"
	"github.com/chatr-ai/chatr/internal/store"
)

// API keys are "chatr_" + 32 lowercase hex characters (128 random bits).
const (
	keyPrefix = "chatr_"
	keyHexLen = 32

	errKeyMalformed = "Invalid API key. Use: Authorization: Bearer YOUR_KEY"
	errKeyUnknown   = "Invalid API key"
)

// newAPIKey returns a fresh key from crypto/rand.
func newAPIKey() (string, error) {
	var b [keyHexLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("while generating an API key: %w", err)
	}
	return keyPrefix + hex.EncodeToString(b[:]), nil
}

// hashKey is what the store keeps instead of the key: its SHA-256. The key
// has 128 random bits, so a fast hash is enough (no password stretching).
func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// wellFormedKey reports whether key has the shape of a chatr key.
func wellFormedKey(key string) bool {
	if len(key) != len(keyPrefix)+keyHexLen || !strings.HasPrefix(key, keyPrefix) {
		return false
	}
	for i := len(keyPrefix); i < len(key); i++ {
		c := key[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// requestKey extracts the key from "Authorization: Bearer <key>" or, for
// older clients, "X-API-Key: <key>". ok is false when neither header holds
// something shaped like a key (missing, another scheme, garbage): the
// contract answers that with the same 401 telling how to send it.
func requestKey(r *http.Request) (key string, ok bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, found := strings.Cut(strings.TrimSpace(h), " ")
		if !found || !strings.EqualFold(scheme, "Bearer") {
			return "", false
		}
		key = strings.TrimSpace(tok)
	} else {
		key = strings.TrimSpace(r.Header.Get("X-API-Key"))
	}
	return key, wellFormedKey(key)
}

// errAuthFailed wraps store failures during authentication (a 500, not a 401).
var errAuthFailed = errors.New("authentication failed")

// authenticate finds the agent a request's key belongs to. It reads the
// agent's row on every request, so a verification applies to the very next
// one. The lookup is by the hash's unique index; the hash is compared again
// in constant time so no timing difference depends on the secret beyond
// what the index lookup itself reveals about a hash.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (store.Agent, *httpjson.Error, error) {
	key, ok := requestKey(r)
	if !ok {
		return store.Agent{}, httpjson.Errorf(http.StatusUnauthorized, errKeyMalformed), nil
	}
	want := hashKey(key)
	a, stored, err := s.st.AgentByKeyHash(ctx, want)
	if errors.Is(err, store.ErrNotFound) {
		return store.Agent{}, httpjson.Errorf(http.StatusUnauthorized, errKeyUnknown), nil
	}
	if err != nil {
		return store.Agent{}, nil, fmt.Errorf("%w: %w", errAuthFailed, err)
	}
	if subtle.ConstantTimeCompare(stored, want) != 1 {
		return store.Agent{}, httpjson.Errorf(http.StatusUnauthorized, errKeyUnknown), nil
	}
	return a, nil, nil
}

// agentHandler is a handler for an authenticated agent (the verify handlers
// have this shape too).
type agentHandler func(w http.ResponseWriter, r *http.Request, a store.Agent)

// authed wraps h: it authenticates the request and records the activity
// (every authenticated request marks the agent online) before calling h.
func (s *Server) authed(h agentHandler) http.HandlerFunc {
	return s.authenticated(func(w http.ResponseWriter, r *http.Request, a store.Agent) {
		if err := s.seen(r.Context(), a, time.Now()); err != nil {
			s.unavailable(w, r, err)
			return
		}
		h(w, r, a)
	})
}

// authenticated wraps h with authentication only: h must record the
// activity itself, on every path (POST /api/messages does, to send it along
// with the rate-limit check).
func (s *Server) authenticated(h agentHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		a, e, err := s.authenticate(r.Context(), r)
		s.met.stage.authenticate.Observe(time.Since(start).Seconds())
		if err != nil {
			s.unavailable(w, r, err)
			return
		}
		if e != nil {
			httpjson.WriteError(w, e)
			return
		}
		if a.Ban != nil {
			// A banned agent's key is refused everywhere, with the reason
			// and the end of the ban (moderation.go); it is not activity.
			httpjson.WriteError(w, bannedError(a.Ban))
			return
		}
		h(w, r, a)
	}
}
