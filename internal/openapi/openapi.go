// Package openapi holds chatr's OpenAPI 3 description (openapi.json, embedded
// in the binary so the API serves exactly the description that was tested
// with it) and a validator for the JSON Schema subset it uses, so that tests
// can check real responses against it.
//
// openapi.json here is the canonical file; docs/openapi.json is a copy for
// readers of the repository, kept equal by TestDocsCopyIsCurrent
// (`go generate ./internal/openapi` refreshes it).
package openapi

//go:generate cp openapi.json ../../docs/openapi.json

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

//go:embed openapi.json
var document []byte

// etag is computed once: the document never changes in a running binary.
var etag = func() string {
	sum := sha256.Sum256(document)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

// JSON returns the OpenAPI document. The slice is a copy: callers may keep
// or change it without touching what Handler serves.
func JSON() []byte { return bytes.Clone(document) }

// Handler serves the OpenAPI document (the API mounts it at
// GET /api/openapi.json). It answers conditional requests with the
// document's ETag and allows any origin, so that documentation tools running
// elsewhere (Swagger UI, Redoc) can load it from a room.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = w.Write([]byte(`{"success":false,"error":"Method not allowed"}` + "\n"))
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("ETag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(document))
	})
}
