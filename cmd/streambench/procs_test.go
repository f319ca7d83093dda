package main

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseProcs(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	ps, err := parseProcs("streamer=" + self + ", postgres=comm:postgres")
	if err != nil || len(ps) != 2 || ps[0].pid != os.Getpid() || ps[1].comm != "postgres" {
		t.Fatalf("parseProcs = %+v, %v", ps, err)
	}
	for _, bad := range []string{"streamer", "=1", "api=", "api=x", "api=-3", "api=999999999"} {
		if _, err := parseProcs(bad); err == nil {
			t.Errorf("parseProcs(%q) accepted", bad)
		}
	}
}

func TestProcTicksCountThisProcess(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	ps, _ := parseProcs("me=" + self)
	a := ps.ticks()
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	b := ps.ticks()
	if b[0]-a[0] < 10 { // 300 ms of spinning is about 30 ticks
		t.Fatalf("spun 300ms, counted %d ticks", b[0]-a[0])
	}
	if r := ps.report(a, b, 1000, 10); !strings.Contains(r, "per delivery: all ") || !strings.Contains(r, "me ") {
		t.Fatalf("report %q", r)
	}
}

// Deliveries that come before their post's answer (-api) are recorded once
// the answer has given the post's time.
func TestDeferredDeliveriesSettle(t *testing.T) {
	sent := &sentTimes{times: make([]atomic.Int64, 4), deferred: true}
	sent.base.Store(100)
	tl := newTally(sent, 4)
	tl.add(101, 5_000_000) // its post has not answered yet
	if len(tl.pending) != 1 {
		t.Fatalf("pending %d", len(tl.pending))
	}
	sent.times[1].Store(1_000_000)
	tl.settle()
	if tl.first[1] != 4_000_000 || tl.lat.quantile(1) < 3*time.Millisecond {
		t.Fatalf("first %d, max %s", tl.first[1], tl.lat.quantile(1))
	}
}

func TestCoreTicksInCountsBusyNotIdle(t *testing.T) {
	stat := []byte("cpu  99 0 99 99 0 0 0 0 0 0\n" +
		"cpu0 10 1 20 1000 50 3 4 5 0 0\n" +
		"cpu1 7 0 8 2000 9 0 0 0 0 0\n" +
		"intr 12345\n")
	// user+nice+system+irq+softirq+steal; idle (1000) and iowait (50) are not busy.
	if got := coreTicksIn(stat, 0); got != 43 {
		t.Errorf("cpu0 busy = %d ticks, want 43", got)
	}
	if got := coreTicksIn(stat, 1); got != 15 {
		t.Errorf("cpu1 busy = %d ticks, want 15", got)
	}
	if got := coreTicksIn(stat, 2); got != 0 {
		t.Errorf("a CPU not in the file: %d ticks, want 0", got)
	}
	if got := coreReport(0, 100, 130, 1000, 10); got != "server core (CPU 0) busy per delivery: 300.00 µs; per post: 30000.00 µs" {
		t.Errorf("coreReport = %q", got)
	}
}
