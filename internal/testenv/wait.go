package testenv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Condition is what Eventually waits on: a check that says why it does not
// hold yet (an error), or simply whether it holds.
type Condition interface {
	func() error | func() bool
}

// Eventually retries cond until it holds (returns nil, or true) and fails
// the test with its last error when timeout passes, or at once when it
// returns StopTrying(err). It is the one way the tests wait for something
// another goroutine or process does: they wait on the condition itself,
// never on a sleep whose length a loaded machine would make too short. The
// timeout is a bound for a hung system, not a measurement, so make it
// generous; Slow stretches it.
func Eventually[C Condition](t testing.TB, timeout time.Duration, what string, cond C) {
	t.Helper()
	if err := Poll(context.Background(), timeout, asError(cond)); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func asError[C Condition](cond C) func() error {
	switch f := any(cond).(type) {
	case func() error:
		return f
	case func() bool:
		return func() error {
			if f() {
				return nil
			}
			return errors.New("condition not met")
		}
	}
	panic("unreachable: Condition has two kinds")
}

// Poll is Eventually without a test, for helpers that return an error: it
// returns nil once f does, f's last error when Slow(timeout) has passed, the
// wrapped error of StopTrying at once, or ctx's error when ctx ends. It polls
// often at first (10 ms) and backs off to 100 ms, so fast conditions are seen
// quickly and slow ones do not spin a busy core.
func Poll(ctx context.Context, timeout time.Duration, f func() error) error {
	timeout = Slow(timeout)
	deadline := time.Now().Add(timeout)
	pause := 10 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		var stop stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %s: %w", timeout, err)
		}
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// StopTrying wraps an error that waiting longer cannot fix: Eventually and
// Poll return it at once instead of retrying until the timeout.
func StopTrying(err error) error { return stopError{err} }

type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }
func (e stopError) Unwrap() error { return e.err }

// Consistently checks that f keeps returning nil for d (polling every
// 100 ms) and fails the test at the first error. It proves that something
// does not happen, so d is a minimum, not a bound: a slower machine only
// makes the check stricter.
func Consistently(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
