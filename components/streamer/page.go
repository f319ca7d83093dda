package streamer

import (
	"embed"
	"io/fs"
	"net/http"
)

// web holds the spectator page. It is embedded so the image needs no other
// files, and it loads nothing from elsewhere (no CDN): it works offline and
// under a strict Content-Security-Policy.
//
//go:embed web
var web embed.FS

// pageCSP lets the page load only its own scripts, styles and stream, and
// be framed by no one.
const pageCSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// pageHandler serves the spectator page, its assets and the room's guide
// for agents (guide.go).
func pageHandler(g *guide) http.Handler {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", pageCSP)
		// Older browsers ignore frame-ancestors: no other site may frame
		// the room (clickjacking).
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		if g != nil && g.serve(w, r) {
			return
		}
		files.ServeHTTP(w, r)
	})
}
