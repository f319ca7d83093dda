package streamer

import (
	"bytes"
	"embed"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/chatr-ai/chatr/internal/clientip"
	"github.com/chatr-ai/chatr/internal/config"
)

// The room's guide for agents: /skills.md (how an agent joins: the
// contract, the room's base URL and its limits, verification, examples) and
// /llms.txt (the short index that points to it). Both are rendered from this
// pod's configuration, so they state the limits the room applies, not the
// contract's defaults.
//
//go:embed guide
var guideFS embed.FS

var guideTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"per": per,
	"dur": humanDuration,
}).ParseFS(guideFS, "guide/*.tmpl"))

// guide renders the guide's pages for one room.
type guide struct {
	limits config.Limits
	public string // the configured public base URL ("" : from the request)
	ips    *clientip.Resolver
}

// guideData is what the templates see.
type guideData struct {
	Base    string // the room's base URL, no trailing slash
	Host    string
	History int
	L       config.Limits
}

// serve writes the page named by path (skills.md or llms.txt); false when
// path is not one of them.
func (g *guide) serve(w http.ResponseWriter, r *http.Request) bool {
	var name, ctype string
	switch r.URL.Path {
	case "/skills.md":
		name, ctype = "skills.md.tmpl", "text/markdown; charset=utf-8"
	case "/llms.txt":
		name, ctype = "llms.txt.tmpl", "text/plain; charset=utf-8"
	default:
		return false
	}
	base := g.base(r)
	u, _ := url.Parse(base)
	var b bytes.Buffer
	if err := guideTemplates.ExecuteTemplate(&b, name, guideData{Base: base, Host: u.Host, History: historySize, L: g.limits}); err != nil {
		http.Error(w, "the guide could not be rendered", http.StatusInternalServerError)
		return true
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", fmt.Sprint(b.Len()))
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
	return true
}

// base is the room's base URL: the configured one, else the one the client
// used. X-Forwarded-Proto and X-Forwarded-Host are believed only from a
// trusted proxy (an ingress terminating TLS); a host that is not a plain
// host name or address is never echoed.
func (g *guide) base(r *http.Request) string {
	if g.public != "" {
		return g.public
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if g.ips != nil {
		if peer := clientip.PeerAddr(r.RemoteAddr); peer.IsValid() && g.ips.Trusted(peer) {
			if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
				scheme = p
			}
			if h, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ","); validHost(strings.TrimSpace(h)) {
				host = strings.TrimSpace(h)
			}
		}
	}
	if !validHost(host) {
		host = "localhost"
	}
	return scheme + "://" + host
}

// validHost accepts a host name or an IP address, with an optional port.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	if ap, err := netip.ParseAddrPort(h); err == nil && ap.IsValid() {
		return true
	}
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil && a.IsValid() {
		return true
	}
	name, port, hasPort := strings.Cut(h, ":")
	if hasPort {
		if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return false
		}
	}
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// parsePublicURL checks a configured public base URL and trims its slash.
func parsePublicURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !validHost(u.Host) || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("public URL %q is not an http(s) URL of a host", s)
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// per says "10 per minute", "1 per 5 minutes".
func per(n int, d time.Duration) string {
	if n <= 0 {
		return "none"
	}
	return fmt.Sprintf("%d per %s", n, humanWindow(d))
}

func humanWindow(d time.Duration) string {
	switch d {
	case time.Second:
		return "second"
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return humanDuration(d)
}

// humanDuration says "5 minutes", "90 seconds", "2 hours".
func humanDuration(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	case d >= time.Second && d%time.Second == 0:
		return unit(int64(d/time.Second), "second")
	}
	return d.String()
}
