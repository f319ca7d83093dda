package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseExpect(t *testing.T) {
	got, err := parseExpect("20, 200")
	if err != nil || len(got) != 2 || got[0] != 20 || got[1] != 220 {
		t.Fatalf("parseExpect = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "5,x", "-1", "3,,4"} {
		if _, err := parseExpect(bad); err == nil {
			t.Errorf("parseExpect(%q) accepted", bad)
		}
	}
}

// A stream's messages are counted into phases by their number; a stream
// that breaks counts towards every phase it had not finished.
func TestPhaseTally(t *testing.T) {
	pt := newPhaseTally([]uint64{2, 5})
	now := time.Now().UnixNano()
	for i := uint64(1); i <= 5; i++ {
		at := now - int64(i)*int64(time.Millisecond)
		if i == 4 {
			at = 0
		}
		pt.add(i, at, now)
	}
	pt.add(6, now, now) // beyond the expected: not in any phase
	if pt.complete[0].Load() != 1 || pt.complete[1].Load() != 1 {
		t.Fatalf("complete %d %d", pt.complete[0].Load(), pt.complete[1].Load())
	}
	if pt.untimed[1] != 1 || pt.max[0] != 2*int64(time.Millisecond) || pt.max[1] != 5*int64(time.Millisecond) {
		t.Fatalf("untimed %v max %v", pt.untimed, pt.max)
	}
	var n0, n1 uint64
	for _, c := range pt.lat[0] {
		n0 += c
	}
	for _, c := range pt.lat[1] {
		n1 += c
	}
	if n0 != 2 || n1 != 2 {
		t.Fatalf("phase deliveries %d %d", n0, n1)
	}
	pt.gone(3)
	if pt.abandoned[0].Load() != 0 || pt.abandoned[1].Load() != 1 {
		t.Fatalf("abandoned %d %d", pt.abandoned[0].Load(), pt.abandoned[1].Load())
	}
}

func TestHistEncodeRoundTrip(t *testing.T) {
	var h, g hist
	if h.encode() != "-" {
		t.Fatalf("empty %q", h.encode())
	}
	for _, d := range []time.Duration{0, 3 * time.Microsecond, time.Millisecond, time.Millisecond, 40 * time.Millisecond, time.Hour} {
		h.add(d)
	}
	if err := g.decode(h.encode()); err != nil || g != h {
		t.Fatalf("decode(%q) = %v, %v", h.encode(), g, err)
	}
	for _, bad := range []string{"x", "1:", ":3", "999:1", "-1:1"} {
		if err := g.decode(bad); err == nil {
			t.Errorf("decode(%q) accepted", bad)
		}
	}
}

// merge adds up the listeners' histograms and counts, and fails unless
// every delivery came exactly once.
func TestMergeListenResults(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, lost int, d time.Duration) string {
		var h hist
		for range 100 {
			h.add(d)
		}
		recv := 100 - lost
		out := "listen: noise\nready\n" +
			"result phase=1 streams=10 expected=100 received=" + itoa(recv) + " lost=" + itoa(lost) + " untimed=0 p50_us=1 p99_us=" + itoa(int(d.Microseconds())) + " max_us=" + itoa(int(d.Microseconds())) + "\n" +
			"hist phase=1 " + h.encode() + "\n" +
			"total streams=10 expected=100 received=" + itoa(recv) + " lost=" + itoa(lost) + " dup=0 ooo=0 extra=0 broken=0\n"
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := write("a", 0, time.Millisecond), write("b", 0, 100*time.Millisecond)
	if err := runMerge(options{labels: "1 msg/s"}, []string{a, b}); err != nil {
		t.Fatalf("exact delivery: %v", err)
	}
	r, _ := readListenResult(b)
	if r.phases[1].p99us != 100000 || r.received != 100 {
		t.Fatalf("read %+v", r)
	}
	if err := runMerge(options{}, []string{a, write("c", 1, time.Millisecond)}); err == nil {
		t.Fatal("a lost delivery passed")
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte("streambench: 3 of 10 streams failed to open\n"), 0o644)
	if err := runMerge(options{}, []string{a, empty}); err == nil || !strings.Contains(err.Error(), "no result") {
		t.Fatalf("a listener without a result: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
