package serve

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// connLimiter caps the open connections of each peer address. A client that
// opens connections and trickles bytes over them (or just keeps them) would
// otherwise hold a goroutine and a socket each, as many as it likes; with the
// cap it holds at most MaxConnsPerIP of them, each bounded by ReadTimeout.
//
// The peer is the TCP peer, not X-Forwarded-For: the count is taken before
// any byte is read. Peers that are trusted proxies (an ingress multiplexes
// many clients over its connections) are not counted.
type connLimiter struct {
	net.Listener
	max    int
	exempt func(netip.Addr) bool
	// onRefuse, if set, is told of every refused connection (metrics, tests).
	onRefuse func(netip.Addr)

	mu   sync.Mutex
	open map[netip.Addr]int
}

func newConnLimiter(ln net.Listener, max int, exempt func(netip.Addr) bool, onRefuse func(netip.Addr)) *connLimiter {
	return &connLimiter{Listener: ln, max: max, exempt: exempt, onRefuse: onRefuse, open: map[netip.Addr]int{}}
}

// refusal is what a refused connection is told before it is closed: a
// complete HTTP answer in the contract's envelope, so a client sees why.
var refusal = func() []byte {
	body := `{"success":false,"error":"Too many open connections from your address","retryAfter":5}` + "\n"
	return []byte("HTTP/1.1 429 Too Many Requests\r\n" +
		"Content-Type: application/json; charset=utf-8\r\n" +
		"Retry-After: 5\r\n" +
		"Connection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// refuseLinger bounds how long a refused connection is kept to let the
// client read the refusal (closing at once with its request unread would
// reset the connection and lose the answer).
const refuseLinger = time.Second

// Accept returns the next connection within its peer's cap; connections
// beyond it are answered 429 and closed without reaching the server.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := peerIP(c)
		if !ip.IsValid() || (l.exempt != nil && l.exempt(ip)) {
			return c, nil
		}
		l.mu.Lock()
		n := l.open[ip]
		if n >= l.max {
			l.mu.Unlock()
			if l.onRefuse != nil {
				l.onRefuse(ip)
			}
			go refuse(c)
			continue
		}
		l.open[ip] = n + 1
		l.mu.Unlock()
		tc := &countedConn{l: l, ip: ip}
		if t, ok := c.(*net.TCPConn); ok {
			// Keep *net.TCPConn's methods (SyscallConn, CloseWrite, ...):
			// the streamer writes to hijacked sockets directly.
			tc.TCPConn = t
			return tc, nil
		}
		return &countedOther{Conn: c, counted: tc}, nil
	}
}

// refuse answers a connection over its cap and closes it. Its time is
// bounded by refuseLinger whatever the client does.
func refuse(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refuseLinger))
	if _, err := c.Write(refusal); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	// Read what the client sent until it closes or the linger ends, so the
	// kernel does not reset the connection under the unread answer.
	var buf [4096]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			return
		}
	}
}

func (l *connLimiter) release(ip netip.Addr) {
	l.mu.Lock()
	if n := l.open[ip]; n <= 1 {
		delete(l.open, ip)
	} else {
		l.open[ip] = n - 1
	}
	l.mu.Unlock()
}

// openFrom returns how many connections from ip are counted (tests).
func (l *connLimiter) openFrom(ip netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[ip]
}

func peerIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// countedConn is a TCP connection that gives its slot back when closed.
type countedConn struct {
	*net.TCPConn
	l    *connLimiter
	ip   netip.Addr
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.release(c.ip) })
	if c.TCPConn == nil {
		return nil
	}
	return c.TCPConn.Close()
}

// countedOther is the same for any other kind of connection.
type countedOther struct {
	net.Conn
	counted *countedConn
}

func (c *countedOther) Close() error {
	_ = c.counted.Close()
	return c.Conn.Close()
}
