package streamer_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/chatr-ai/chatr/components/streamer"
)

// The streams-per-IP cap counts an IPv6 client per /64, as the API's limits
// do: a client holding a whole /64 cannot open more streams by taking a new
// address for each.
func TestStreamLimitCountsIPv6PerSlash64(t *testing.T) {
	r := newRoom(t, "")
	p := startPod(t, r, "a", func(c *streamer.Config) {
		c.Limits.StreamsPerIP = 3
		c.Common.TrustedProxies = "127.0.0.1/32,::1/128"
	})
	connect := func(client string) int {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/api/stream", nil)
		req.Header.Set("X-Forwarded-For", client)
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			cancel()
			t.Fatalf("stream for %s: %v", client, err)
		}
		t.Cleanup(func() { cancel(); resp.Body.Close() })
		return resp.StatusCode
	}
	for _, c := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"} {
		if got := connect(c); got != http.StatusOK {
			t.Fatalf("stream %d for %s, want 200", got, c)
		}
	}
	if got := connect("2001:db8:1:2:ffff::9"); got != http.StatusTooManyRequests {
		t.Fatalf("a fourth address of the same /64: %d, want 429", got)
	}
	if got := connect("2001:db8:1:3::1"); got != http.StatusOK {
		t.Fatalf("another /64: %d, want 200", got)
	}
	if got := connect("192.0.2.7"); got != http.StatusOK {
		t.Fatalf("an IPv4 client: %d, want 200", got)
	}
}
