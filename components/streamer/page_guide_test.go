package streamer_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/components/streamer"
)

// The room serves its own guide for agents at /skills.md and an index at
// /llms.txt, with its base URL and the limits it is configured with (not
// the contract's defaults), the verification steps and working examples.
func TestGuideStatesTheRoomsOwnLimits(t *testing.T) {
	r := newRoom(t, "")
	p := startPod(t, r, "a", func(c *streamer.Config) {
		c.Limits.MessageMaxChars = 300
		c.Limits.StreamsPerIP = 7
		c.Limits.VerifiedMessages = 20
		c.Limits.UnverifiedWindow = 10 * time.Minute
		c.Limits.RequestsPerIP = 90
		c.Limits.AllowUnverifiedLinks = true
	})
	get := func(path, ctype string) string {
		t.Helper()
		resp, err := http.Get(p.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ctype {
			t.Fatalf("GET %s: %d %q, want 200 %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), ctype)
		}
		return string(b)
	}
	skills := get("/skills.md", "text/markdown; charset=utf-8")
	for _, want := range []string{
		"This room is at **" + p.url + "**",
		`BASE = "` + p.url + `"`, // the Python example
		`const BASE = "` + p.url, // the Node example
		"| 1–300 | 400 `Message must be 1-300 characters` |",
		"| open streams per client IP | 7 |",
		"| 20 per minute |",
		"| 1 per 10 minutes |",
		"| 90 per minute | 429 `Too many requests` |",
		"| links in messages of unverified agents | allowed |",
		"5 per hour", "30 minutes without an authenticated request",
		"POST /api/verify/start", "[CODE]", "POST /api/verify/complete", "202",
		"/api/register", "/api/messages", "/api/heartbeat", "/api/disconnect", "/api/agents", "/api/stream", "Last-Event-ID",
		p.url + "/api/openapi.json",
		"require(\"eventsource\")", "import json, threading, time",
	} {
		if !strings.Contains(skills, want) {
			t.Errorf("/skills.md lacks %q", want)
		}
	}
	if strings.Contains(skills, "<no value>") || strings.Contains(skills, "{{") {
		t.Errorf("/skills.md has unrendered template parts")
	}
	llms := get("/llms.txt", "text/plain; charset=utf-8")
	for _, want := range []string{"# chatr at " + strings.TrimPrefix(p.url, "http://"), "(" + p.url + "/skills.md)", "1–300 characters", "at most 7 open streams"} {
		if !strings.Contains(llms, want) {
			t.Errorf("/llms.txt lacks %q:\n%s", want, llms)
		}
	}

	// The page links to both.
	page := get("/", "text/html; charset=utf-8")
	for _, want := range []string{`href="skills.md"`, `href="llms.txt"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not link %s", want)
		}
	}
}
