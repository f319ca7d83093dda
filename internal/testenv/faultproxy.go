package testenv

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// FaultProxy is a TCP proxy in front of a real server (the shared Postgres
// or Redis) whose faults the test controls, so a test can show what a
// component does when its dependency freezes, goes away or loses an answer,
// without disturbing the server other tests share:
//
//   - Pause: nothing is forwarded any more, either way, on open and new
//     connections alike (they are accepted and held): a frozen server
//     (SIGSTOP) as a client sees it. Resume forwards what was held.
//   - Down: every open connection is closed and new ones are refused until
//     Up: a server that crashed.
//   - LoseRepliesAfter: the next connection to send bytes containing a
//     pattern gets no reply any more after it: the request reached the
//     server (and was, say, committed) but its answer is lost.
//
// Every call returns once the fault is in place; Events counts what the
// proxy did, for tests to wait on.
type FaultProxy struct {
	t      testing.TB
	target string
	ln     net.Listener

	mu      sync.Mutex
	cond    *sync.Cond
	paused  bool
	down    bool
	conns   map[*proxyConn]struct{}
	pattern []byte
	lost    chan struct{} // closed when a LoseRepliesAfter has fired
	closed  bool
	held    int // reads waiting for Resume
}

type proxyConn struct {
	client, server net.Conn
	// lose stops the replies of this connection (LoseRepliesAfter fired).
	lose bool
}

// NewFaultProxy listens on a loopback port and forwards each connection to
// target (host:port). It is closed when the test ends.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{t: t, target: target, ln: ln, conns: map[*proxyConn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *FaultProxy) Addr() string { return p.ln.Addr().String() }

// Pause freezes every connection, open or new, in both directions.
func (p *FaultProxy) Pause() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

// Resume undoes Pause: what was held is forwarded.
func (p *FaultProxy) Resume() {
	p.mu.Lock()
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Down closes every open connection and refuses new ones until Up.
func (p *FaultProxy) Down() {
	p.mu.Lock()
	p.down = true
	conns := p.conns
	p.conns = map[*proxyConn]struct{}{}
	p.cond.Broadcast()
	p.mu.Unlock()
	for c := range conns {
		c.closeBoth()
	}
}

// Up undoes Down.
func (p *FaultProxy) Up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// LoseRepliesAfter arms a one-shot fault: the first connection whose client
// then sends bytes containing pattern has every reply after them dropped
// (the connection stays open, silent, until the client gives up). The
// returned channel is closed when the fault fires, that is once the bytes
// with pattern have been forwarded to the server.
func (p *FaultProxy) LoseRepliesAfter(pattern []byte) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pattern = append([]byte(nil), pattern...)
	p.lost = make(chan struct{})
	return p.lost
}

// Held is how many reads, either way, wait for Resume: a request that has
// reached the frozen "server" (a test's event to wait for).
func (p *FaultProxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// OpenConns is the number of connections the proxy holds open.
func (p *FaultProxy) OpenConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *FaultProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.paused = false
	conns := p.conns
	p.conns = map[*proxyConn]struct{}{}
	p.cond.Broadcast()
	p.mu.Unlock()
	_ = p.ln.Close()
	for c := range conns {
		c.closeBoth()
	}
}

func (p *FaultProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.down || p.closed
		p.mu.Unlock()
		if refuse {
			_ = client.Close()
			continue
		}
		go p.serve(client)
	}
}

func (p *FaultProxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	c := &proxyConn{client: client, server: server}
	p.mu.Lock()
	if p.down || p.closed {
		p.mu.Unlock()
		c.closeBoth()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.pipe(c, client, server, true); done <- struct{}{} }()
	go func() { p.pipe(c, server, client, false); done <- struct{}{} }()
	<-done
	c.closeBoth()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// pipe copies src to dst, holding bytes while the proxy is paused and
// dropping replies of a connection whose answers are lost.
func (p *FaultProxy) pipe(c *proxyConn, src, dst net.Conn, upstream bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.paused && !p.down && !p.closed {
				p.held++
				p.cond.Wait()
				p.held--
			}
			if p.down || p.closed {
				p.mu.Unlock()
				return
			}
			drop := !upstream && c.lose
			var fired chan struct{}
			if upstream && p.pattern != nil && bytes.Contains(buf[:n], p.pattern) {
				c.lose, fired = true, p.lost
				p.pattern = nil
			}
			p.mu.Unlock()
			if !drop {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if fired != nil {
				close(fired)
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

func (c *proxyConn) closeBoth() {
	_ = c.client.Close()
	_ = c.server.Close()
}
