package main

import (
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The autoscaler's goals (docs/design.md) hold for every trace with the default policy; this
// is the test CI runs (the program's exit code says the same).
func TestTracesMeetTheGoals(t *testing.T) {
	cfg := DefaultConfig()
	for _, tr := range Traces() {
		t.Run(tr.Name, func(t *testing.T) {
			t.Parallel()
			r := Run(cfg, tr)
			for _, f := range r.Failed {
				t.Error(f)
			}
			if r.RoundTrips != int(tr.Duration/cfg.SyncInterval) {
				t.Errorf("%d evaluations (each a JSON round trip of the state), want %d", r.RoundTrips, tr.Duration/cfg.SyncInterval)
			}
			if r.MaxPerPod == 0 || r.PeakNeed == 0 || len(r.Events) == 0 {
				t.Errorf("the trace measured nothing: %+v", r)
			}
		})
	}
}

// The plateau trace sits on a boundary with one seed; other levels and
// other noise must not flap either.
func TestPlateausNeverFlap(t *testing.T) {
	for _, mean := range []float64{12000, 22500, 25000, 27500, 40000} {
		for seed := range uint64(3) {
			r := Run(DefaultConfig(), plateau(mean, 100+seed))
			for _, f := range r.Failed {
				t.Errorf("mean %.0f seed %d: %s", mean, seed, f)
			}
		}
	}
}

// The goal checks must be able to fail, or the test above proves nothing.
func TestGoalsCatchABadPolicy(t *testing.T) {
	byName := map[string]Trace{}
	for _, tr := range Traces() {
		byName[tr.Name] = tr
	}
	tests := []struct {
		name  string
		trace string
		bad   func(*Config)
		want  string
	}{
		// Without a spare pod the surge piles onto the first pods for good.
		{"no spare pod", "surge", func(c *Config) { c.Policy.SparePods = 0 }, "above 1.2 × target"},
		// Without a scale-down window the noisy plateau flaps.
		{"no scale-down window", "plateau", func(c *Config) { c.Policy.ScaleDownWindow = 0 }, "flaps"},
		// Evaluating rarely lets the surge outrun the fleet.
		{"slow evaluation", "surge", func(c *Config) { c.SyncInterval = 15 * time.Second }, "capacity"},
		// Two spare pods are pods the load never asked for.
		{"two spare pods", "surge", func(c *Config) { c.Policy.SparePods = 2 }, "overshoot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			tt.bad(&cfg)
			r := Run(cfg, byName[tt.trace])
			if !strings.Contains(strings.Join(r.Failed, "; "), tt.want) {
				t.Errorf("%s on %s: failures %q, want one about %q", tt.name, tt.trace, r.Failed, tt.want)
			}
		})
	}
}

func TestRunIsDeterministic(t *testing.T) {
	tr := Traces()[0]
	a, b := Run(DefaultConfig(), tr), Run(DefaultConfig(), tr)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two runs of %s differ:\n%+v\n%+v", tr.Name, a, b)
	}
}

func TestExitCode(t *testing.T) {
	var out strings.Builder
	if code := run([]string{"-trace", "surge"}, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "ok: every goal holds") {
		t.Errorf("default policy: exit %d\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"-trace", "surge", "-spare", "0"}, &out, io.Discard); code != 1 || !strings.Contains(out.String(), "FAILED") {
		t.Errorf("no spare: exit %d, want 1\n%s", code, out.String())
	}
	if code := run([]string{"-trace", "nonesuch"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("unknown trace: exit %d, want 2", code)
	}
}
