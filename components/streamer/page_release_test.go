package streamer_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// releaseBound is how soon a stream's per-IP slot must be free again after
// its client closed. Without the peer watch the streamer noticed only at
// its next write to the socket: a ping, up to a ping interval (15 s here)
// later, and the write after it.
var releaseBound = testenv.Slow(time.Second)

// A client that closes its stream gives its per-IP slot back within a
// second, although the pod writes nothing to it meanwhile (the ping interval
// is the contract's 15 s); so a spectator reloading the page again and again
// never locks itself out.
func TestClosedStreamReleasesItsSlotAtOnce(t *testing.T) {
	r := newRoom(t, "")
	r.post(t, 3)
	p := startPod(t, r, "a", func(c *streamer.Config) {
		c.Limits.StreamsPerIP = 2
		c.PingInterval = 15 * time.Second
	})
	_, stop1 := openSSE(t, p.url, "")
	openSSE(t, p.url, "")
	expectRefused(t, p.url, http.StatusTooManyRequests, "Too many connections")

	// live opens a stream and reads up to its history: the stream is live,
	// not just accepted. It returns the close of the stream.
	live := func() (func(), error) {
		resp, c := sseConnect(t, p.url+"/api/stream", "", false)
		if resp.StatusCode != http.StatusOK {
			c()
			return nil, fmt.Errorf("refused with %d", resp.StatusCode)
		}
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				c()
				return nil, fmt.Errorf("stream ended before its history: %w", err)
			}
			if strings.Contains(line, `"type":"history"`) {
				return c, nil
			}
		}
	}
	reopen := func() (func(), time.Duration, error) {
		began := time.Now()
		var closeFn func()
		err := testenv.Poll(context.Background(), 10*time.Second, func() error {
			c, err := live()
			closeFn = c
			return err
		})
		return closeFn, time.Since(began), err
	}

	stop1()
	closeFn, took, err := reopen()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("slot free again %s after the client closed", took.Round(time.Millisecond))
	if took > releaseBound {
		t.Fatalf("the slot came back %s after the client closed, want under %s", took, releaseBound)
	}

	// Twenty reconnections in a row, each closing the previous stream
	// first, as a reloaded page does: every one is live within the bound.
	var worst time.Duration
	start := time.Now()
	for i := 0; i < 20; i++ {
		closeFn()
		closeFn, took, err = reopen()
		if err != nil {
			t.Fatalf("reconnection %d: %v", i+1, err)
		}
		worst = max(worst, took)
	}
	closeFn()
	if worst > releaseBound {
		t.Fatalf("a reconnection took %s, want under %s", worst, releaseBound)
	}
	t.Logf("20 close-and-reconnect cycles in %s, the slowest %s", time.Since(start).Round(time.Millisecond), worst.Round(time.Millisecond))
}

// A client that only shuts its sending half (an HTTP/1.0 tool that sends
// its request and half-closes) still reads: it keeps its stream and gets
// the messages posted after.
func TestHalfClosedClientKeepsItsStream(t *testing.T) {
	r := newRoom(t, "")
	p := startPod(t, r, "a", func(c *streamer.Config) { c.PingInterval = 15 * time.Second })
	addr := strings.TrimPrefix(p.url, "http://")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, "GET /api/stream HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 64)
	go func() {
		defer close(got)
		br := bufio.NewReader(nc)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			got <- line
		}
	}()
	waitLine := func(what string, match func(string) bool) {
		t.Helper()
		deadline := time.After(testenv.Slow(15 * time.Second))
		for {
			select {
			case line, ok := <-got:
				if !ok {
					t.Fatalf("the stream ended while waiting for %s", what)
				}
				if match(line) {
					return
				}
			case <-deadline:
				t.Fatalf("no %s", what)
			}
		}
	}
	waitLine("history", func(l string) bool { return strings.Contains(l, `"type":"history"`) })
	if err := nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// The pod answers the FIN with a ping (a closed client would answer it
	// with a reset); this one reads on.
	waitLine("the ping that probes the half-close", func(l string) bool { return strings.HasPrefix(l, ": ping") })
	ms := r.post(t, 1)
	waitLine("the message posted after the half-close", func(l string) bool {
		return strings.Contains(l, `"type":"message"`) && strings.Contains(l, `"id":"`+ms[0].IDString()+`"`)
	})
	if n := p.srv.Connections(); n != 1 {
		t.Fatalf("pod counts %d streams, want 1", n)
	}
}
