package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// useNetns makes every dial of the tool (the streams and, with -api, the
// posts) open its socket inside the network namespace at path, while the
// tool's own Postgres and Redis connections stay where the tool runs. The
// load then crosses a veth pair instead of loopback, and each side's kernel
// receive work can run on its own CPU (hack/bench-compare.sh): on loopback
// the sender's system call also runs the receiver's TCP input, so the
// server would be charged for its clients' kernel work.
//
// A socket belongs to the namespace of the thread that created it, so the
// dials run on threads that entered the namespace and never leave it.
func useNetns(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("-netns: %w", err)
	}
	defer f.Close()
	const workers = 64 // dials in flight at once (the tool opens 200 at a time)
	jobs := make(chan func())
	entered := make(chan error)
	for range workers {
		go func() {
			// Never unlocked: the thread keeps the namespace, and Go starts
			// new threads from a clean template thread, not from this one.
			runtime.LockOSThread()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				entered <- fmt.Errorf("-netns %s: entering the namespace: %w", path, err)
				return
			}
			entered <- nil
			for job := range jobs {
				job()
			}
		}()
	}
	for range workers {
		if err := <-entered; err != nil {
			return err
		}
	}
	dialIn = func(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		jobs <- func() {
			c, err := d.DialContext(ctx, network, addr)
			done <- result{c, err}
		}
		r := <-done
		return r.c, r.err
	}
	return nil
}
