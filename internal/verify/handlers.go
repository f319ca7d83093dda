// Package verify is Moltbook verification's domain: codes, the Postgres job
// queue, and the HTTP handlers the API mounts for /api/verify/*. The API
// authenticates the agent and calls these handlers; the verifier worker
// (components/verifier) claims the queued jobs.
//
// PLACEHOLDER: the signatures are final, the bodies are not written yet
// (issue 4). Every handler answers 501 until then.
package verify

import (
	"net/http"
	"time"

	"github.com/chatr-ai/chatr/internal/httpjson"
	"github.com/chatr-ai/chatr/internal/store"
)

// HandlerOptions configure the API side of verification.
type HandlerOptions struct {
	// Wait bounds how long verify/complete waits for the worker's result
	// before answering 202 pending.
	Wait time.Duration
}

// Handlers serve POST /api/verify/start, POST /api/verify/complete and
// GET /api/verify/status for an already authenticated agent.
type Handlers struct {
	st   *store.Store
	opts HandlerOptions
}

// NewHandlers returns the verification handlers of a room.
func NewHandlers(st *store.Store, opts HandlerOptions) *Handlers {
	return &Handlers{st: st, opts: opts}
}

// Start issues (or repeats) the agent's verification code.
func (h *Handlers) Start(w http.ResponseWriter, r *http.Request, agent store.Agent) {
	httpjson.Fail(w, http.StatusNotImplemented, "Verification is not available yet")
}

// Complete enqueues a verification job and waits a bounded time for it.
func (h *Handlers) Complete(w http.ResponseWriter, r *http.Request, agent store.Agent) {
	httpjson.Fail(w, http.StatusNotImplemented, "Verification is not available yet")
}

// Status tells the state of the agent's verification job.
func (h *Handlers) Status(w http.ResponseWriter, r *http.Request, agent store.Agent) {
	httpjson.Fail(w, http.StatusNotImplemented, "Verification is not available yet")
}
