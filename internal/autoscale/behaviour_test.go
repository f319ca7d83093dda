package autoscale

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// The behaviours docs/design.md asks of the autoscaler, over time. A run is a
// fleet whose pods are all Ready and share the load evenly, evaluated every
// two seconds; cmd/scalesim plays the harder world of starting pods, stale
// reports and uneven load.

const every = 2 * time.Second

type run struct {
	p        Policy
	now      time.Time
	replicas int32
	state    State
	changes  []change
	// restart, when set, is applied to the state between evaluations.
	restart func(State) State
}

type change struct {
	at       time.Duration
	from, to int32
}

func newRun(p Policy, replicas int32) *run {
	return &run{p: p, now: t0, replicas: replicas}
}

// step evaluates once with total connections spread over the fleet.
func (r *run) step(total int64, countsErr error) Result {
	pods := make([]Pod, r.replicas)
	for i := range pods {
		share := total / int64(r.replicas)
		if int64(i) < total%int64(r.replicas) {
			share++
		}
		pods[i] = ready("p"+string(rune('a'+i%26))+string(rune('a'+i/26)), share)
	}
	res := Decide(r.p, Input{Replicas: r.replicas, Pods: pods, CountsErr: countsErr, State: r.state, Now: r.now})
	if res.Replicas != r.replicas {
		r.changes = append(r.changes, change{r.now.Sub(t0), r.replicas, res.Replicas})
	}
	r.replicas, r.state = res.Replicas, res.State
	if r.restart != nil {
		r.state = r.restart(r.state)
	}
	r.now = r.now.Add(every)
	return res
}

// hold evaluates for d under a load given by load(elapsed since t0).
func (r *run) hold(d time.Duration, load func(time.Duration) int64) Result {
	var res Result
	for end := r.now.Add(d); r.now.Before(end); {
		res = r.step(load(r.now.Sub(t0)), nil)
	}
	return res
}

func flat(n int64) func(time.Duration) int64 { return func(time.Duration) int64 { return n } }

func TestSurgeScalesUpOnTheNextEvaluation(t *testing.T) {
	r := newRun(DefaultPolicy(), 2)
	r.hold(10*time.Minute, flat(10000))
	if r.replicas != 3 {
		t.Fatalf("10,000 connections settle at %d replicas, want 3 (2 + 1 spare)", r.replicas)
	}
	res := r.step(30000, nil)
	if res.Replicas != 7 {
		t.Fatalf("the first evaluation after a surge to 30,000 gives %d replicas (%s), want 7", res.Replicas, res.ScalingLimited.Message)
	}
}

func TestNoisySteadyLoadNeverFlaps(t *testing.T) {
	for _, mean := range []float64{10000, 22500, 25000, 27500, 40000} {
		for seed := range uint64(4) {
			rng := rand.New(rand.NewPCG(seed, 1))
			// ±4% (std) noise, correlated over ~20 s like an audience.
			x, a := 0.0, math.Exp(-every.Seconds()/20)
			load := func(time.Duration) int64 {
				x = a*x + math.Sqrt(1-a*a)*rng.NormFloat64()
				return int64(mean * (1 + 0.04*x))
			}
			r := newRun(DefaultPolicy(), 2)
			r.hold(time.Hour, load)
			ups := 0
			for i, c := range r.changes {
				if c.to < c.from {
					t.Errorf("mean %.0f seed %d: scaled down %+v on a steady load (changes %+v)", mean, seed, c, r.changes[:i+1])
					break
				}
				ups++
			}
			// Growing from the minimum takes a rate-limited step or two, then
			// at most one more for a noise peak, never a stream of changes.
			if ups > 4 {
				t.Errorf("mean %.0f seed %d: %d scale-ups on a steady load: %+v", mean, seed, ups, r.changes)
			}
		}
	}
}

func TestDropScalesDownOnlyAfterTheWindowAndByTheAllowedStep(t *testing.T) {
	p := DefaultPolicy()
	r := newRun(p, 2)
	r.hold(5*time.Minute, flat(50000))
	if r.replicas != 11 {
		t.Fatalf("50,000 connections settle at %d replicas, want 11", r.replicas)
	}
	dropAt := r.now.Sub(t0)
	r.changes = nil
	r.hold(20*time.Minute, flat(10000))

	if len(r.changes) == 0 {
		t.Fatal("never scaled down")
	}
	first := r.changes[0].at - dropAt
	if first < p.ScaleDownWindow || first > p.ScaleDownWindow+resolution+every {
		t.Errorf("first scale-down %s after the drop, want within [%s, %s]", first, p.ScaleDownWindow, p.ScaleDownWindow+resolution+every)
	}
	// Within any period the fleet shrinks by at most one pod (10% of ≤ 11 is
	// one pod), and never grows.
	for i, c := range r.changes {
		if c.to > c.from {
			t.Errorf("grew after a drop: %+v", c)
		}
		removed := int32(0)
		for _, d := range r.changes[:i+1] {
			if c.at-d.at < p.Period {
				removed += d.from - d.to
			}
		}
		if removed > 1 {
			t.Errorf("removed %d pods within one period ending at %s: %+v", removed, c.at, r.changes)
		}
	}
	// 10,000 at 0.9 × 5,000 a pod is 3 pods, plus the spare.
	if r.replicas != 4 {
		t.Errorf("settled at %d replicas, want 4", r.replicas)
	}
}

func TestMinAndMaxClamp(t *testing.T) {
	p := DefaultPolicy()
	p.MaxReplicas = 12
	r := newRun(p, 5)
	r.hold(10*time.Minute, flat(0))
	if r.replicas != p.MinReplicas {
		t.Errorf("an idle room ends at %d replicas, want min %d", r.replicas, p.MinReplicas)
	}
	res := r.hold(2*time.Minute, flat(1_000_000))
	if r.replicas != p.MaxReplicas || res.ScalingLimited.Reason != ReasonTooManyReplicas {
		t.Errorf("a flood ends at %d replicas (%+v), want max %d, TooManyReplicas", r.replicas, res.ScalingLimited, p.MaxReplicas)
	}
	for _, c := range r.changes {
		if c.to < p.MinReplicas || c.to > p.MaxReplicas {
			t.Errorf("scaled outside [min, max]: %+v", c)
		}
	}
}

func TestRedisDownHoldsThenResumes(t *testing.T) {
	r := newRun(DefaultPolicy(), 2)
	r.hold(5*time.Minute, flat(20000))
	before := r.replicas
	for range 30 { // a minute of Redis down while the load doubles
		res := r.step(40000, errors.New("dial tcp: connection refused"))
		if res.Replicas != before || res.ScalingActive.Status || res.ScalingActive.Reason != ReasonFailedGetCounts {
			t.Fatalf("Redis down: %d replicas, %+v; want %d held and FailedGetConnectionCounts", res.Replicas, res.ScalingActive, before)
		}
	}
	if res := r.step(40000, nil); res.Replicas <= before || !res.ScalingActive.Status {
		t.Errorf("Redis back: %d replicas, %+v; want growth from %d", res.Replicas, res.ScalingActive, before)
	}
}

// A restarted operator reads the state back from the ChatRoom status: the
// decisions must be exactly those of an operator that never restarted, and
// must differ from one that lost the state (or the test proves nothing).
func TestStateSurvivesARestart(t *testing.T) {
	scenario := func(restart func(State) State) []change {
		r := newRun(DefaultPolicy(), 2)
		r.hold(5*time.Minute, flat(50000))
		r.hold(2*time.Minute, flat(20000)) // the down window is running…
		r.restart = restart                // …when the operator restarts
		r.step(20000, nil)
		r.restart = nil
		r.hold(15*time.Minute, flat(20000))
		return r.changes
	}
	viaJSON := func(s State) State {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		return back
	}
	kept := scenario(nil)
	restarted := scenario(viaJSON)
	lost := scenario(func(State) State { return State{} })

	if len(kept) == 0 || !equalChanges(kept, restarted) {
		t.Errorf("a restart through JSON changed the decisions:\nkept      %+v\nrestarted %+v", kept, restarted)
	}
	if equalChanges(kept, lost) {
		t.Errorf("losing the state changed nothing, so this test cannot tell: %+v", lost)
	}
}

func equalChanges(a, b []change) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Invariants over random fleets and histories: the result stays within
// [min, max], moves no faster than the rate limits allow, holds without
// counts, and the state stays bounded and JSON-stable.
func TestDecideInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	p := DefaultPolicy()
	p.MaxReplicas = 30
	st, replicas, now := State{}, int32(5), t0
	for i := range 20000 {
		now = now.Add(time.Duration(rng.IntN(4000)+500) * time.Millisecond)
		var pods []Pod
		for j := range int(replicas) + rng.IntN(3) {
			pod := Pod{Name: string(rune('a' + j)), Ready: rng.IntN(10) > 0, Terminating: rng.IntN(15) == 0,
				Reported: rng.IntN(8) > 0, Connections: rng.Int64N(12000)}
			pods = append(pods, pod)
		}
		var err error
		if rng.IntN(30) == 0 {
			err = errors.New("down")
		}
		added, removed := st.periodChanges(p, now.UnixMilli())
		res := Decide(p, Input{Replicas: replicas, Pods: pods, CountsErr: err, State: st, Now: now})
		if res.Replicas < p.MinReplicas || res.Replicas > p.MaxReplicas {
			t.Fatalf("step %d: %d replicas outside [%d, %d]", i, res.Replicas, p.MinReplicas, p.MaxReplicas)
		}
		if !res.ScalingActive.Status && res.Replicas != replicas {
			t.Fatalf("step %d: changed %d → %d without counts (%+v)", i, replicas, res.Replicas, res.ScalingActive)
		}
		start := replicas - added + removed
		upTo := max(start+p.ScaleUpMaxPods, int32(math.Ceil(float64(start)*2)), replicas)
		downTo := min(start-max(p.ScaleDownMaxPods, start/10, 1), replicas)
		if res.Replicas > upTo || res.Replicas < downTo {
			t.Fatalf("step %d: %d → %d outside the rate limits [%d, %d] (period start %d)", i, replicas, res.Replicas, downTo, upTo, start)
		}
		if len(res.State.Recommendations) > 2*int(p.MaxReplicas-p.MinReplicas+1)+1 || len(res.State.ScaleEvents) > maxScaleEvents {
			t.Fatalf("step %d: state grew to %d recommendations, %d events", i, len(res.State.Recommendations), len(res.State.ScaleEvents))
		}
		b, _ := json.Marshal(res.State)
		var back State
		if err := json.Unmarshal(b, &back); err != nil || !equalState(back, res.State) {
			t.Fatalf("step %d: state does not round-trip: %s", i, b)
		}
		st, replicas = res.State, res.Replicas
	}
}

func equalState(a, b State) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
