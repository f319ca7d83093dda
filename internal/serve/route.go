package serve

import (
	"net/http"
	"strings"
)

// IngressRoute sends requests where the ChatRoom's Ingress sends them: the
// stream, the WebSocket and everything outside /api (the spectator page) to
// the streamer, the rest of /api to the API. `chatrd dev` and the in-process
// test rooms serve one base URL through it.
func IngressRoute(apiH, streamH http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case under(p, "/api/stream"), under(p, "/api/ws"):
			streamH.ServeHTTP(w, r)
		case under(p, "/api"):
			apiH.ServeHTTP(w, r)
		default:
			streamH.ServeHTTP(w, r)
		}
	})
}

// under reports whether path is prefix or below it (Ingress Prefix matching:
// by path element, so /apix is not under /api).
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}
