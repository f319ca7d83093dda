//go:build linux

package uring

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// threadCPU is the CPU time (user + system, ns) of the calling OS thread.
func threadCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkSendLoopback writes one 300-byte frame to each of 1,000 loopback
// TCP connections, whose other ends a reader goroutine drains, with one
// writev per connection or with Ring batches, and reports the sending
// thread's CPU per send (thread-ns/send): that is what a streamer pays per
// delivery. The loopback receive path runs in the sender's system time
// either way; what the Ring saves is the system calls' entry and exit.
func BenchmarkSendLoopback(b *testing.B) {
	const conns = 1000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var fds []int
	var keep []net.Conn
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		keep = append(keep, c, s)
		rc, _ := s.(*net.TCPConn).SyscallConn()
		_ = rc.Control(func(fd uintptr) { fds = append(fds, int(fd)) })
		go func() {
			buf := make([]byte, 64<<10)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	defer func() {
		for _, c := range keep {
			_ = c.Close()
		}
	}()
	frame := make([]byte, 300)
	bufs := [][]byte{frame}
	run := func(b *testing.B, send func()) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		b.ResetTimer()
		t0 := threadCPU()
		for range b.N {
			send()
		}
		b.StopTimer()
		b.ReportMetric(float64(threadCPU()-t0)/float64(b.N)/conns, "thread-ns/send")
	}
	b.Run("writev", func(b *testing.B) {
		iov := []syscall.Iovec{{Base: &frame[0]}}
		iov[0].SetLen(len(frame))
		run(b, func() {
			for _, fd := range fds {
				_, _, _ = syscall.Syscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), 1)
			}
		})
	})
	for _, batch := range []int{32, 256} {
		b.Run("ring"+map[int]string{32: "32", 256: "256"}[batch], func(b *testing.B) {
			r := newRing(b, batch)
			run(b, func() {
				for _, fd := range fds {
					if !r.Add(fd, bufs) {
						_, _ = r.Flush()
						r.Add(fd, bufs)
					}
				}
				_, _ = r.Flush()
			})
			// The sends ran in this thread: the kernel punted none to
			// io_uring worker threads (their CPU would escape the figure).
			if n := workerThreads(); n > 0 {
				b.Fatalf("%d io_uring worker threads: sends were punted, not run inline", n)
			}
		})
	}
}

// workerThreads counts this process's io_uring worker threads (iou-wrk-*).
func workerThreads() int {
	tasks, _ := filepath.Glob("/proc/self/task/*/comm")
	n := 0
	for _, f := range tasks {
		if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(b), "iou-wrk") {
			n++
		}
	}
	return n
}
