package testenv

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Eventually takes both kinds of condition and returns once it holds.
func TestEventuallyWaitsForTheCondition(t *testing.T) {
	n := 0
	Eventually(t, 10*time.Second, "an error condition", func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	m := 0
	Eventually(t, 10*time.Second, "a bool condition", func() bool { m++; return m >= 3 })
	if n != 3 || m != 3 {
		t.Fatalf("conditions called %d and %d times, want 3", n, m)
	}
}

// Poll gives up after the timeout with the last error, and at once on
// StopTrying.
func TestPollGivesUp(t *testing.T) {
	last := errors.New("the last reason")
	if err := Poll(context.Background(), 30*time.Millisecond, func() error { return last }); !errors.Is(err, last) {
		t.Fatalf("after the timeout: %v, want the last error", err)
	}
	calls := 0
	fatal := errors.New("cannot get better")
	err := Poll(context.Background(), time.Hour, func() error { calls++; return StopTrying(fatal) })
	if !errors.Is(err, fatal) || calls != 1 {
		t.Fatalf("StopTrying: %v after %d calls, want the error after 1", err, calls)
	}
}

// Timed doubles the unit while the scenario reports TooSlow.
func TestTimedDoublesTheUnit(t *testing.T) {
	var units []time.Duration
	Timed(t, time.Millisecond, func(u time.Duration) error {
		units = append(units, u)
		if len(units) < 3 {
			return TooSlow("try %d", len(units))
		}
		return nil
	})
	if len(units) != 3 || units[1] != 2*time.Millisecond || units[2] != 4*time.Millisecond {
		t.Fatalf("units %v, want 1ms 2ms 4ms", units)
	}
}

// FreeAddr never hands out the same port twice, and the port is free.
func TestFreeAddr(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		a := FreeAddr(t)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
	}
	lo, hi := candidatePorts()
	if p := FreePort(t); p < lo || p >= hi {
		t.Fatalf("port %d outside %d..%d", p, lo, hi)
	}
}
