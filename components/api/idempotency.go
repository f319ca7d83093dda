package api

import (
	"net/http"

	"github.com/chatr-ai/chatr/internal/httpjson"
	"github.com/chatr-ai/chatr/internal/model"
)

// Idempotency-Key on POST /api/messages (docs/api.md): a client that did not
// get the answer to a post (a timeout, a dropped connection, a 503 after the
// commit) retries with the same key and gets the first answer back, with no
// second message. Keys are per agent and honoured for store.IdempotencyWindow.

const (
	idempotencyHeader = "Idempotency-Key"
	// replayedHeader marks an answer given again for a repeated key.
	replayedHeader = "Idempotent-Replayed"
	// maxKeyLen bounds a key (a UUID is 36 characters).
	maxKeyLen = 255

	errBadKey = "Idempotency-Key must be 1 to 255 printable ASCII characters"
)

// idempotencyKey reads the request's key: "" when none was sent, a 400 when
// the header is there but unusable (empty, too long, control or non-ASCII
// characters, or sent twice).
func idempotencyKey(r *http.Request) (string, *httpjson.Error) {
	vals, ok := r.Header[idempotencyHeader]
	if !ok {
		return "", nil
	}
	if len(vals) != 1 || !validKey(vals[0]) {
		return "", httpjson.Errorf(http.StatusBadRequest, errBadKey)
	}
	return vals[0], nil
}

func validKey(k string) bool {
	if k == "" || len(k) > maxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// replayed answers a repeated key with its first post's message.
func (s *Server) replayed(w http.ResponseWriter, m model.Message) {
	w.Header().Set(replayedHeader, "true")
	httpjson.Write(w, http.StatusOK, postResponse{Success: true, Message: m})
}
