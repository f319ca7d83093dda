package testenv

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// Slow stretches a timeout by $CHATR_TEST_SLOWDOWN (a factor, default 1),
// for machines slower than the ones the bounds were written on.
func Slow(d time.Duration) time.Duration {
	if f, err := strconv.ParseFloat(os.Getenv("CHATR_TEST_SLOWDOWN"), 64); err == nil && f > 1 {
		return time.Duration(float64(d) * f)
	}
	return d
}

// TooSlow is what a Timed scenario returns when the machine broke one of
// its premises (a step took longer than the scenario's margin), so its
// outcome says nothing about the code under test.
func TooSlow(format string, args ...any) error {
	return tooSlowError{fmt.Sprintf(format, args...)}
}

type tooSlowError struct{ msg string }

func (e tooSlowError) Error() string { return "too slow: " + e.msg }

// timedTries is how many times Timed doubles the unit: 1, 2, 4, 8 and 16
// times base, enough for a machine many times slower than usual.
const timedTries = 5

// Timed runs a scenario whose meaning depends on real time (a sliding window
// in Redis, a lease, a timeout measured by another process) with a time unit:
// base first, and twice as long again each time the scenario returns a
// TooSlow error, up to 16 times base. The scenario checks its own premises
// by measuring (time.Since) and returns TooSlow when they did not hold; it
// fails the test (t.Fatal) only when they held and the code was wrong. So a
// loaded machine makes the test slower, never wrong, and a broken feature
// still fails on every try.
func Timed(t testing.TB, base time.Duration, scenario func(unit time.Duration) error) {
	t.Helper()
	unit := base
	for try := 1; ; try++ {
		err := scenario(unit)
		if err == nil {
			return
		}
		var slow tooSlowError
		if !errors.As(err, &slow) {
			t.Fatal(err)
		}
		if try == timedTries {
			t.Fatalf("still too slow with a time unit of %s: %v", unit, err)
		}
		t.Logf("with a time unit of %s: %v; again with %s", unit, err, 2*unit)
		unit *= 2
	}
}
