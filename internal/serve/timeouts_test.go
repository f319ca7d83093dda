package serve

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/testenv"
)

// runServer serves h with o until the test ends and returns its address.
func runServer(t *testing.T, h http.Handler, o Options) string {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	o.Listen, o.Handler = "127.0.0.1:0", h
	o.OnListen = func(a net.Addr) { addrc <- a }
	o.ShutdownTimeout = time.Second
	go func() { done <- Run(ctx, o) }()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); <-done })
	return addr.String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedWithin reads c until the server closes it and reports how long that
// took; it fails the test if the connection is still open after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %s", limit)
	}
	return time.Since(start)
}

// A body trickled one byte at a time is cut off at ReadTimeout: the
// handler's read fails and the connection is closed, however long the
// client would keep trickling.
func TestReadTimeoutCutsASlowBody(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	readErr := make(chan error, 1)
	addr := runServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}), Options{ReadTimeout: readTimeout})
	c := dial(t, addr)
	if _, err := io.WriteString(c, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// The slow client: one byte every 100 ms (it would take 100 s).
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	took := closedWithin(t, c, 10*time.Second)
	if err := <-readErr; err == nil {
		t.Error("the handler read the whole trickled body")
	}
	if took < readTimeout/2 {
		t.Errorf("closed after %s, before the read timeout", took)
	}
}

// Headers beyond MaxHeaderBytes get 431; a header well within is served.
func TestMaxHeaderBytes(t *testing.T) {
	addr := runServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), Options{})
	get := func(header int) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Header.Set("X-Big", strings.Repeat("a", header))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := get(DefaultMaxHeaderBytes - 8<<10); code != 200 {
		t.Errorf("a %d KiB header got %d, want 200", (DefaultMaxHeaderBytes-8<<10)>>10, code)
	}
	if code := get(900 << 10); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 900 KiB header got %d, want 431", code)
	}
	if code := get(DefaultMaxHeaderBytes + 8<<10); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a %d KiB header got %d, want 431", (DefaultMaxHeaderBytes+8<<10)>>10, code)
	}
}

// An idle keep-alive connection is closed after IdleTimeout.
func TestIdleTimeoutClosesKeepAlive(t *testing.T) {
	addr := runServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), Options{IdleTimeout: 300 * time.Millisecond})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 200 || res.Close {
		t.Fatalf("keep-alive request: %v %v", res, err)
	}
	closedWithin(t, c, 10*time.Second)
}

// okRequest sends one request on c and reads a 200 (the connection is
// accepted and counted).
func okRequest(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
}

// One address holds at most MaxConnsPerIP connections: the next is answered
// 429 in the JSON envelope and closed, without reaching a handler; a slot
// given back is usable again; an exempt peer (a trusted proxy) is not capped.
func TestConnsPerIP(t *testing.T) {
	var refused atomic.Int32
	addr := runServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), Options{
		MaxConnsPerIP: 3, OnConnRefused: func(netip.Addr) { refused.Add(1) }})
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c := dial(t, addr)
		okRequest(t, c, bufio.NewReader(c))
		held = append(held, c)
	}
	extra := dial(t, addr)
	_, _ = io.WriteString(extra, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(extra), nil)
	if err != nil {
		t.Fatalf("the connection over the cap got no answer: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), `"success":false`) {
		t.Errorf("over the cap: %d %v %s, want a JSON 429 with Retry-After", res.StatusCode, res.Header, body)
	}
	if refused.Load() != 1 {
		t.Errorf("%d refusals counted, want 1", refused.Load())
	}
	closedWithin(t, extra, 10*time.Second)

	// One slot back: a new connection is served again (once the server has
	// seen the close).
	_ = held[0].Close()
	testenv.Eventually(t, 10*time.Second, "a connection accepted after one closed", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
}

func TestConnsPerIPExemptsTrustedPeers(t *testing.T) {
	addr := runServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), Options{
		MaxConnsPerIP: 1, ExemptPeer: func(a netip.Addr) bool { return a.IsLoopback() }})
	for i := 0; i < 4; i++ {
		c := dial(t, addr)
		okRequest(t, c, bufio.NewReader(c))
	}
}

// The limiter counts a connection until it is closed, whoever closes it
// (a hijacked stream is closed by its new owner).
func TestConnLimiterReleasesOnClose(t *testing.T) {
	ln := testenv.Listen(t)
	l := newConnLimiter(ln, 2, nil, nil)
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	local := netip.MustParseAddr("127.0.0.1")
	c1 := dial(t, ln.Addr().String())
	s1 := <-accepted
	// The streamer writes to a hijacked socket's descriptor directly.
	if _, ok := s1.(syscall.Conn); !ok {
		t.Error("a counted connection lost *net.TCPConn's SyscallConn")
	}
	if n := l.openFrom(local); n != 1 {
		t.Fatalf("%d counted, want 1", n)
	}
	_ = s1.Close()
	_ = s1.Close() // twice gives back one slot, not two
	if n := l.openFrom(local); n != 0 {
		t.Fatalf("%d counted after close, want 0", n)
	}
	_ = c1.Close()
}
