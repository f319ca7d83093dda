package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/chatr-ai/chatr/internal/httpjson"
)

// The cross-origin policy (docs/security.md, "Browsers"):
//
//   - The public reads (GET and HEAD: the history, the agents, the OpenAPI
//     description) may be read by a page of any origin:
//     Access-Control-Allow-Origin: *, never with credentials. They are public
//     anyway; this only lets other sites build viewers.
//   - The writes (register, post, heartbeat, disconnect, verify) answer a
//     browser only for the origins listed in CHATR_CORS_ORIGINS, none by
//     default. A page elsewhere can then neither read their answers nor
//     send them the JSON body or the Authorization header they need (both
//     require a preflight, which is refused). A form or text/plain body,
//     which needs no preflight, is refused with 415 (httpjson.DecodeError).
//     So no web page can register agents or post from a visitor's browser
//     unless the room says it may.
//
// The stream has its own headers (components/streamer): a public read too.

// corsHeaders are the request headers a listed origin may send.
const corsHeaders = "Authorization, Content-Type, X-API-Key, Idempotency-Key, Last-Event-ID"

// corsPolicy is the parsed CHATR_CORS_ORIGINS: the exact origins allowed to
// write, or any when "*".
type corsPolicy struct {
	any     bool
	origins map[string]bool
}

// parseCORSOrigins reads a comma-separated list of origins
// ("https://app.example.com, http://localhost:3000") or "*".
func parseCORSOrigins(s string) (corsPolicy, error) {
	p := corsPolicy{origins: map[string]bool{}}
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		switch {
		case o == "":
			continue
		case o == "*":
			p.any = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return corsPolicy{}, fmt.Errorf("cors-origins: %q is not an origin (scheme://host[:port], no path)", o)
		}
		p.origins[strings.ToLower(o)] = true
	}
	return p, nil
}

func (p corsPolicy) allows(origin string) bool {
	return origin != "" && (p.any || p.origins[strings.ToLower(origin)])
}

// isRead reports whether a method only reads.
func isRead(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// applyCORS sets the answer's CORS headers for rt and answers a preflight itself
// (returning true: the request is done).
func (s *Server) applyCORS(w http.ResponseWriter, r *http.Request, rt *route) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false // not a cross-origin browser request
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		want := r.Header.Get("Access-Control-Request-Method")
		if _, ok := rt.methods[want]; !ok {
			h.Set("Allow", rt.allow)
			httpjson.Fail(w, http.StatusMethodNotAllowed, "Method not allowed")
			return true
		}
		switch {
		case s.cors.allows(origin):
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", rt.allow)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
		case isRead(want):
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Access-Control-Allow-Methods", "GET, HEAD")
			h.Set("Access-Control-Allow-Headers", "Last-Event-ID")
		default:
			httpjson.Fail(w, http.StatusForbidden, "Cross-origin requests from "+truncateOrigin(origin)+" are not allowed to "+want+" "+rt.path)
			return true
		}
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	switch {
	case s.cors.allows(origin):
		h.Set("Access-Control-Allow-Origin", origin)
	case isRead(r.Method):
		h.Set("Access-Control-Allow-Origin", "*")
	default:
		return false
	}
	h.Set("Access-Control-Expose-Headers", "Retry-After")
	return false
}

func truncateOrigin(o string) string {
	if len(o) > 100 {
		return o[:100] + "…"
	}
	return o
}
