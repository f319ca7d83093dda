package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/testenv"
)

// -netns: the tool's dials open their sockets inside the named network
// namespace, not where the tool runs. A listener outside is reachable by a
// plain dial and not from the namespace, whose own state (loopback down,
// then up with nothing listening) decides how the dial fails.
func TestNetnsDialsFromInsideTheNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "creating a network namespace needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Missing(t, "ip(8) from iproute2 is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	name := fmt.Sprintf("chatr-sbtest-%d", os.Getpid())
	ip("netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })

	orig := dialIn
	t.Cleanup(func() { dialIn = orig })
	dial := func() error {
		c, err := dialIn(context.Background(), &net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String())
		if err == nil {
			_ = c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("a plain dial to %s: %v", ln.Addr(), err)
	}
	if err := useNetns("/run/netns/" + name); err != nil {
		t.Fatal(err)
	}
	if err := dial(); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("dial from a fresh namespace (loopback down): %v, want network unreachable", err)
	}
	ip("-n", name, "link", "set", "lo", "up")
	if err := dial(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial from the namespace with loopback up and nothing listening: %v, want connection refused", err)
	}
	if err := useNetns("/run/netns/no-such-namespace-" + name); err == nil {
		t.Error("useNetns accepted a namespace that does not exist")
	}
}
