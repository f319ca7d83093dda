package testenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Listen returns a listener on a free 127.0.0.1 port, closed when the test
// ends. A server the test runs in its own process is handed the listener
// itself, so no other process can take the port between choosing and using.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.1: %v", err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// FreeAddr returns a 127.0.0.1:port for a child process (or a server that
// must be restarted on the same address) to listen on itself. Choosing a
// port by listening on :0 and closing races with every connection the
// machine opens, because :0 and outgoing connections share the kernel's
// ephemeral range; so the port is drawn from below that range, checked to
// be bindable on every interface, never handed out twice in this process,
// and reserved against the other test processes by a lock file held until
// the test ends. A child that still finds the address taken should be
// restarted on a new FreeAddr (see AddrInUse).
func FreeAddr(t testing.TB) string {
	t.Helper()
	lo, hi := candidatePorts()
	dir := filepath.Join(os.TempDir(), "chatr-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatalf("port reservations: %v", err)
	}
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		portsMu.Lock()
		taken := portsUsed[port]
		if !taken {
			portsUsed[port] = true
		}
		portsMu.Unlock()
		if taken {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			_ = f.Close() // another test process holds it
			continue
		}
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
		if err != nil {
			_ = f.Close()
			continue
		}
		_ = ln.Close()
		t.Cleanup(func() { _ = f.Close() })
		return "127.0.0.1:" + strconv.Itoa(port)
	}
	t.Fatalf("no free port in %d..%d after 1000 tries", lo, hi)
	return ""
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(FreeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// AddrInUse reports whether err (or a child's output) says the address was
// already taken: the one case where starting again on a new address helps.
func AddrInUse(err error, output string) bool {
	return errors.Is(err, syscall.EADDRINUSE) ||
		strings.Contains(strings.ToLower(output), "address already in use") ||
		err != nil && strings.Contains(strings.ToLower(err.Error()), "address already in use")
}

// candidatePorts is the range FreeAddr draws from: from 20000 to the start of
// the kernel's ephemeral range (32768 unless configured otherwise).
func candidatePorts() (lo, hi int) {
	lo, hi = 20000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var elo, ehi int
		if n, _ := fmt.Sscan(string(b), &elo, &ehi); n == 2 {
			switch {
			case elo > lo+1000:
				hi = elo
			case ehi < 64000:
				lo, hi = ehi+1, 65535
			}
		}
	}
	return lo, hi
}
