package autoscale

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ready(name string, conns int64) Pod {
	return Pod{Name: name, Ready: true, Reported: true, Connections: conns}
}

func missing(name string) Pod { return Pod{Name: name, Ready: true} }

func unready(name string, conns int64, reported bool) Pod {
	return Pod{Name: name, Reported: reported, Connections: conns}
}

func terminating(name string, conns int64) Pod {
	return Pod{Name: name, Ready: true, Terminating: true, Reported: true, Connections: conns}
}

// fleet is n Ready pods reporting each connections.
func fleet(n int, each int64) []Pod {
	pods := make([]Pod, n)
	for i := range pods {
		pods[i] = ready(fmt.Sprintf("streamer-%d", i), each)
	}
	return pods
}

func ago(d time.Duration) int64 { return t0.Add(-d).UnixMilli() }

func TestDecide(t *testing.T) {
	// No scale-down window unless a case sets one: each case is one evaluation.
	noWindow := func(p *Policy) { p.ScaleDownWindow = 0 }
	tests := []struct {
		name      string
		policy    func(*Policy)
		replicas  int32
		pods      []Pod
		state     State
		countsErr error

		want, wantRec int32
		wantConns     int64 // checked when not -1
		active        string
		limited       string // ReasonWithinRange means status false
	}{
		{
			name: "a surge grows on the first evaluation", replicas: 2, pods: fleet(2, 6000),
			want: 4, wantRec: 4, wantConns: 12000, active: ReasonValidCounts, limited: ReasonWithinRange,
		},
		{
			name: "within the scale-up tolerance holds", policy: func(p *Policy) { p.ScaleUpTolerance = 0.1 },
			replicas: 3, pods: fleet(3, 3500), // 10,500 on 2 non-spare pods: ratio 1.05
			want: 3, wantRec: 3, wantConns: 10500, active: ReasonValidCounts, limited: ReasonWithinRange,
		},
		{
			name: "beyond the scale-up tolerance grows", policy: func(p *Policy) { p.ScaleUpTolerance = 0.1 },
			replicas: 3, pods: fleet(3, 3700), // ratio 1.11
			want: 4, wantRec: 4, wantConns: 11100, active: ReasonValidCounts, limited: ReasonWithinRange,
		},
		{
			name: "pods without a count count zero when growing", replicas: 3,
			pods: []Pod{ready("a", 6000), ready("b", 6000), missing("c")},
			want: 4, wantRec: 4, wantConns: 12000, active: ReasonValidCounts, limited: ReasonWithinRange,
		},
		{
			name: "pods without a count count the target when shrinking", policy: noWindow, replicas: 7,
			pods: []Pod{ready("a", 1000), ready("b", 1000), ready("c", 1000), ready("d", 1000), missing("e"), missing("f"), missing("g")},
			// 4,000 + 3 × 5,000 = 19,000 at 4,500 a pod: 5 pods + 1 spare (as zeros: 2).
			want: 6, wantRec: 6, wantConns: 4000, active: ReasonValidCounts, limited: ReasonWithinRange,
		},
		{
			name: "pods without a count that could be busy hold the size", policy: noWindow, replicas: 6,
			pods: []Pod{ready("a", 1000), ready("b", 1000), missing("c"), missing("d"), missing("e"), missing("f")},
			want: 6, wantRec: 6, wantConns: 2000, active: ReasonValidCounts, limited: ReasonWithinRange,
		},
		{
			name: "unready pods' counts are ignored", policy: noWindow, replicas: 4,
			pods: []Pod{ready("a", 2000), ready("b", 2000), unready("c", 9000, true), unready("d", 9000, true)},
			want: 3, wantRec: 2, wantConns: 4000, active: ReasonValidCounts, limited: ReasonScaleDownLimit,
		},
		{
			name: "unready pods are capacity on its way", replicas: 4,
			pods: []Pod{ready("a", 6000), ready("b", 6000), unready("c", 0, false), unready("d", 0, false)},
			want: 4, wantRec: 4, wantConns: 12000, active: ReasonValidCounts, limited: ReasonWithinRange,
		},
		{
			name: "terminating pods are not counted", replicas: 3,
			pods: []Pod{ready("a", 4000), ready("b", 4000), terminating("c", 5000)},
			want: 3, wantRec: 3, wantConns: 8000, active: ReasonValidCounts, limited: ReasonWithinRange,
		},
		{
			name: "below minReplicas goes to the minimum at once", replicas: 1, pods: fleet(1, 100),
			want: 2, wantRec: 2, wantConns: 100, active: ReasonValidCounts, limited: ReasonTooFewReplicas,
		},
		{
			name: "above maxReplicas goes to the maximum at once", replicas: 60, pods: fleet(60, 100),
			want: 50, wantRec: 50, wantConns: 6000, active: ReasonValidCounts, limited: ReasonTooManyReplicas,
		},
		{
			name: "a recommendation above maxReplicas stops at the maximum", replicas: 48, pods: fleet(48, 6000),
			want: 50, wantRec: 59, wantConns: 288000, active: ReasonValidCounts, limited: ReasonTooManyReplicas,
		},
		{
			name: "growth is rate limited", replicas: 2, pods: fleet(2, 50000),
			want: 6, wantRec: 21, wantConns: 100000, active: ReasonValidCounts, limited: ReasonScaleUpLimit,
		},
		{
			name: "growth already made this period counts against the limit", replicas: 6, pods: fleet(6, 10000),
			state: State{ScaleEvents: []ScaleEvent{{UnixMilli: ago(5 * time.Second), Change: 4}}},
			want:  6, wantRec: 13, wantConns: 60000, active: ReasonValidCounts, limited: ReasonScaleUpLimit,
		},
		{
			name: "growth older than the period does not limit", replicas: 6, pods: fleet(6, 10000),
			state: State{ScaleEvents: []ScaleEvent{{UnixMilli: ago(20 * time.Second), Change: 4}}},
			want:  12, wantRec: 13, wantConns: 60000, active: ReasonValidCounts, limited: ReasonScaleUpLimit,
		},
		{
			name: "a period that already grew past its limit holds, never shrinks", replicas: 10, pods: fleet(10, 9000),
			state: State{ScaleEvents: []ScaleEvent{{UnixMilli: ago(5 * time.Second), Change: 8}}},
			want:  10, wantRec: 19, wantConns: 90000, active: ReasonValidCounts, limited: ReasonScaleUpLimit,
		},
		{
			name: "a period that already shrank past its limit holds, never grows", policy: noWindow, replicas: 3, pods: fleet(3, 0),
			state: State{ScaleEvents: []ScaleEvent{{UnixMilli: ago(5 * time.Second), Change: -6}}},
			want:  3, wantRec: 1, wantConns: 0, active: ReasonValidCounts, limited: ReasonScaleDownLimit,
		},
		{
			name: "an idle room stays at minReplicas", policy: noWindow, replicas: 2, pods: fleet(2, 0),
			want: 2, wantRec: 1, wantConns: 0, active: ReasonValidCounts, limited: ReasonTooFewReplicas,
		},
		{
			name: "the current size fits", policy: noWindow, replicas: 11, pods: fleet(11, 4182),
			want: 11, wantRec: 11, wantConns: 46002, active: ReasonValidCounts, limited: ReasonWithinRange,
		},
		{
			name: "within the scale-down tolerance holds", policy: noWindow, replicas: 11, pods: fleet(11, 4000),
			// 44,000 fits 9 pods at target but needs 10 at 0.9 × target.
			want: 11, wantRec: 11, wantConns: 44000, active: ReasonValidCounts, limited: ReasonWithinRange,
		},
		{
			name: "below the scale-down tolerance shrinks", policy: noWindow, replicas: 11, pods: fleet(11, 3636),
			want: 10, wantRec: 10, wantConns: 39996, active: ReasonValidCounts, limited: ReasonWithinRange,
		},
		{
			name: "shrinking is rate limited", policy: noWindow, replicas: 11, pods: fleet(11, 500),
			want: 10, wantRec: 3, wantConns: 5500, active: ReasonValidCounts, limited: ReasonScaleDownLimit,
		},
		{
			name: "shrinking by percent rounds down", policy: func(p *Policy) { p.ScaleDownWindow = 0; p.ScaleDownMaxPercent = 50 },
			replicas: 11, pods: fleet(11, 500), // 50% of 11 is 5.5: 5 pods
			want: 6, wantRec: 3, wantConns: 5500, active: ReasonValidCounts, limited: ReasonScaleDownLimit,
		},
		{
			name: "unreadable counts hold the size", replicas: 5, pods: fleet(5, 9000), countsErr: errors.New("redis: connection refused"),
			want: 5, wantRec: 5, wantConns: 0, active: ReasonFailedGetCounts, limited: ReasonWithinRange,
		},
		{
			name: "unreadable counts still respect minReplicas", replicas: 1, pods: fleet(1, 0), countsErr: errors.New("timeout"),
			want: 2, wantRec: 2, wantConns: 0, active: ReasonFailedGetCounts, limited: ReasonTooFewReplicas,
		},
		{
			name: "no Ready pod holds the size", replicas: 3,
			pods: []Pod{unready("a", 0, false), unready("b", 0, false), terminating("c", 4000)},
			want: 3, wantRec: 3, wantConns: 0, active: ReasonNoReadyPods, limited: ReasonWithinRange,
		},
		{
			name: "no count from any Ready pod holds the size", replicas: 3,
			pods: []Pod{missing("a"), missing("b"), unready("c", 7000, true)},
			want: 3, wantRec: 3, wantConns: 0, active: ReasonNoCounts, limited: ReasonWithinRange,
		},
		{
			name: "an invalid policy holds the size", policy: func(p *Policy) { p.MinReplicas = 0 }, replicas: 3, pods: fleet(3, 9000),
			want: 3, wantRec: 3, wantConns: -1, active: ReasonInvalidPolicy, limited: ReasonWithinRange,
		},
		{
			name: "a new room does not shrink on its first evaluation", replicas: 11, pods: fleet(11, 1000),
			want: 11, wantRec: 4, wantConns: 11000, active: ReasonValidCounts, limited: ReasonScaleDownStabilized,
		},
		{
			name:   "shrinks only to the highest recommendation of the window",
			policy: func(p *Policy) { p.ScaleDownMaxPercent = 100 }, replicas: 11, pods: fleet(11, 1000),
			state: State{Recommendations: []Recommendation{
				{UnixMilli: ago(400 * time.Second), Replicas: 11}, // out of the window
				{UnixMilli: ago(200 * time.Second), Replicas: 8},
				{UnixMilli: ago(100 * time.Second), Replicas: 6},
			}},
			want: 8, wantRec: 4, wantConns: 11000, active: ReasonValidCounts, limited: ReasonScaleDownStabilized,
		},
		{
			name:   "grows only to the lowest recommendation of the scale-up window",
			policy: func(p *Policy) { p.ScaleUpWindow = time.Minute }, replicas: 4, pods: fleet(4, 7000),
			state: State{Recommendations: []Recommendation{{UnixMilli: ago(30 * time.Second), Replicas: 5}}},
			want:  5, wantRec: 7, wantConns: 28000, active: ReasonValidCounts, limited: ReasonScaleUpStabilized,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			if tt.policy != nil {
				tt.policy(&p)
			}
			before := tt.state.DeepCopy()
			res := Decide(p, Input{Replicas: tt.replicas, Pods: tt.pods, CountsErr: tt.countsErr, State: tt.state, Now: t0})
			if res.Replicas != tt.want || res.Recommendation != tt.wantRec {
				t.Errorf("replicas %d, recommendation %d; want %d, %d (%s; %s)", res.Replicas, res.Recommendation,
					tt.want, tt.wantRec, res.ScalingActive.Message, res.ScalingLimited.Message)
			}
			if tt.wantConns >= 0 && res.Connections != tt.wantConns {
				t.Errorf("connections %d, want %d", res.Connections, tt.wantConns)
			}
			if res.ScalingActive.Reason != tt.active || res.ScalingActive.Status != (tt.active == ReasonValidCounts) {
				t.Errorf("ScalingActive %+v, want reason %s", res.ScalingActive, tt.active)
			}
			if res.ScalingLimited.Reason != tt.limited || res.ScalingLimited.Status != (tt.limited != ReasonWithinRange) {
				t.Errorf("ScalingLimited %+v, want reason %s", res.ScalingLimited, tt.limited)
			}
			if res.ScalingActive.Message == "" || res.ScalingLimited.Message == "" {
				t.Errorf("empty condition message: %+v %+v", res.ScalingActive, res.ScalingLimited)
			}
			if !reflect.DeepEqual(&tt.state, before) {
				t.Errorf("Decide modified the input state: %+v, was %+v", tt.state, before)
			}
			// A change is recorded for the rate limits; a hold records none.
			var now []ScaleEvent
			for _, e := range res.State.ScaleEvents {
				if e.UnixMilli == t0.UnixMilli() {
					now = append(now, e)
				}
			}
			if res.Replicas != tt.replicas {
				if len(now) != 1 || now[0].Change != res.Replicas-tt.replicas || !res.State.LastScaleTime().Equal(t0) {
					t.Errorf("replicas %d → %d recorded %+v, last scale %s", tt.replicas, res.Replicas, now, res.State.LastScaleTime())
				}
			} else if len(now) != 0 || res.State.LastScaleUnixMilli != before.LastScaleUnixMilli {
				t.Errorf("a hold recorded %+v", res.State)
			}
		})
	}
}

// Without usable counts nothing is learnt: the state keeps no
// recommendation from an evaluation that saw no counts.
func TestDecideWithoutCountsLeavesTheWindowsAlone(t *testing.T) {
	p := DefaultPolicy()
	st := State{Recommendations: []Recommendation{{UnixMilli: ago(time.Minute), Replicas: 9}}}
	for _, in := range []Input{
		{Replicas: 9, Pods: fleet(9, 100), CountsErr: errors.New("down")},
		{Replicas: 9, Pods: []Pod{missing("a")}},
		{Replicas: 9, Pods: []Pod{unready("a", 5, true)}},
	} {
		in.State, in.Now = st, t0
		res := Decide(p, in)
		if !reflect.DeepEqual(res.State, st) || res.Replicas != 9 {
			t.Errorf("%s: state %+v replicas %d, want %+v and 9", res.ScalingActive.Reason, res.State, res.Replicas, st)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatalf("default policy: %v", err)
	}
	bad := map[string]func(*Policy){
		"min 0":              func(p *Policy) { p.MinReplicas = 0 },
		"max below min":      func(p *Policy) { p.MaxReplicas = 1 },
		"no target":          func(p *Policy) { p.TargetPerPod = 0 },
		"negative spare":     func(p *Policy) { p.SparePods = -1 },
		"down tolerance 1":   func(p *Policy) { p.ScaleDownTolerance = 1 },
		"negative up tol":    func(p *Policy) { p.ScaleUpTolerance = -0.1 },
		"negative window":    func(p *Policy) { p.ScaleDownWindow = -time.Second },
		"no period":          func(p *Policy) { p.Period = 0 },
		"no way to grow":     func(p *Policy) { p.ScaleUpMaxPods, p.ScaleUpMaxPercent = 0, 0 },
		"no way to shrink":   func(p *Policy) { p.ScaleDownMaxPods, p.ScaleDownMaxPercent = 0, 0 },
		"shrink above 100 %": func(p *Policy) { p.ScaleDownMaxPercent = 101 },
	}
	for name, mod := range bad {
		p := DefaultPolicy()
		mod(&p)
		if p.Validate() == nil {
			t.Errorf("%s: Validate accepted %+v", name, p)
		}
	}
}
