package serve

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIngressRoute(t *testing.T) {
	named := func(n string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, n) })
	}
	h := IngressRoute(named("api"), named("streamer"))
	for path, want := range map[string]string{
		"/api/stream": "streamer", "/api/stream/x": "streamer", "/api/ws": "streamer",
		"/api/messages": "api", "/api": "api", "/api/streamer": "api", "/api/openapi.json": "api",
		"/": "streamer", "/apix": "streamer", "/index.js": "streamer",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if got := rec.Body.String(); got != want {
			t.Errorf("%s went to %s, want %s", path, got, want)
		}
	}
}
