//go:build linux

package uring

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
)

// pair returns a connected AF_UNIX stream socket pair, the first end
// non-blocking, both closed at the test's end.
func pair(t testing.TB) (w, r int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fds[0]); _ = syscall.Close(fds[1]) })
	return fds[0], fds[1]
}

func newRing(t testing.TB, entries int) *Ring {
	t.Helper()
	r, err := New(entries, 8)
	if errors.Is(err, ErrUnsupported) {
		t.Fatalf("io_uring is not available on this kernel: %v (the streamer falls back to writev; this test needs it)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func readAll(t *testing.T, fd int, n int) []byte {
	t.Helper()
	out := make([]byte, 0, n)
	buf := make([]byte, 64<<10)
	for len(out) < n {
		k, err := syscall.Read(fd, buf)
		if err != nil || k == 0 {
			t.Fatalf("read after %d of %d bytes: %v", len(out), n, err)
		}
		out = append(out, buf[:k]...)
	}
	return out
}

// Every send of a batch delivers its buffers, in order, to its own socket.
func TestBatchDeliversEverySend(t *testing.T) {
	r := newRing(t, 64)
	const n = 50
	var readers []int
	var want [][]byte
	for i := range n {
		w, rd := pair(t)
		readers = append(readers, rd)
		a := bytes.Repeat([]byte{byte('a' + i%26)}, 10+i)
		b := []byte("|tail")
		want = append(want, append(append([]byte{}, a...), b...))
		if !r.Add(w, [][]byte{a, nil, b}) {
			t.Fatalf("Add %d refused", i)
		}
	}
	res, err := r.Flush()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != n {
		t.Fatalf("%d results for %d sends", len(res), n)
	}
	for i := range n {
		if res[i].Err != nil || res[i].N != len(want[i]) {
			t.Fatalf("send %d: %+v, want %d bytes", i, res[i], len(want[i]))
		}
		if got := readAll(t, readers[i], len(want[i])); !bytes.Equal(got, want[i]) {
			t.Fatalf("socket %d got %q, want %q", i, got, want[i])
		}
	}
	// The ring is reusable: a second batch works the same.
	w, rd := pair(t)
	r.Add(w, [][]byte{[]byte("again")})
	if res, err := r.Flush(); err != nil || res[0].N != 5 {
		t.Fatalf("second batch: %+v %v", res, err)
	}
	if got := readAll(t, rd, 5); string(got) != "again" {
		t.Fatalf("second batch delivered %q", got)
	}
}

// A full socket takes what fits and then nothing, at once: the send never
// waits for the reader (no completion arrives later).
func TestFullSocketNeverWaits(t *testing.T) {
	r := newRing(t, 4)
	w, rd := pair(t)
	chunk := make([]byte, 64<<10)
	total := 0
	for round := 0; ; round++ {
		if round > 10000 {
			t.Fatal("the socket never filled")
		}
		r.Add(w, [][]byte{chunk})
		res, err := r.Flush()
		if err != nil || res[0].Err != nil {
			t.Fatalf("round %d: %+v %v", round, res, err)
		}
		total += res[0].N
		if res[0].N == 0 {
			break
		}
	}
	// Draining the reader makes room again; nothing queued earlier arrives
	// on its own in between (the full send completed with 0 bytes).
	got := readAll(t, rd, total)
	if len(got) != total {
		t.Fatalf("read %d of %d", len(got), total)
	}
	r.Add(w, [][]byte{[]byte("x")})
	if res, _ := r.Flush(); res[0].N != 1 {
		t.Fatalf("after draining: %+v", res[0])
	}
	if got := readAll(t, rd, 1); string(got) != "x" {
		t.Fatalf("got %q", got)
	}
}

// One failing send (a closed peer, a bad descriptor) fails alone; the rest
// of the batch is sent, and no SIGPIPE kills the process.
func TestFailuresStayWithTheirSend(t *testing.T) {
	r := newRing(t, 8)
	gone, peer := pair(t)
	_ = syscall.Close(peer)
	okW, okR := pair(t)
	r.Add(gone, [][]byte{[]byte("lost")})
	r.Add(-1, [][]byte{[]byte("bad fd")})
	r.Add(okW, [][]byte{[]byte("kept")})
	res, err := r.Flush()
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, syscall.EPIPE) && !errors.Is(res[0].Err, syscall.ECONNRESET) {
		t.Errorf("closed peer: %+v", res[0])
	}
	if !errors.Is(res[1].Err, syscall.EBADF) {
		t.Errorf("bad descriptor: %+v", res[1])
	}
	if res[2].Err != nil || res[2].N != 4 {
		t.Errorf("good send: %+v", res[2])
	}
	if got := readAll(t, okR, 4); string(got) != "kept" {
		t.Errorf("got %q", got)
	}
}

func TestBatchBound(t *testing.T) {
	r := newRing(t, 2)
	w, _ := pair(t)
	if !r.Add(w, nil) || !r.Add(w, nil) || r.Add(w, nil) {
		t.Fatal("a batch of 2 took a third send, or refused one of the first two")
	}
	if r.Len() != 2 || r.Cap() != 2 {
		t.Fatalf("Len %d Cap %d", r.Len(), r.Cap())
	}
	res, err := r.Flush()
	if err != nil || len(res) != 2 || res[0].N != 0 || res[0].Err != nil {
		t.Fatalf("empty sends: %+v %v", res, err)
	}
	if _, err := New(3, 1); err == nil {
		t.Fatal("New(3) accepted a size that is not a power of two")
	}
}
