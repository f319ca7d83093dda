package autoscale

import (
	"fmt"
	"math"
	"time"
)

// Pod is what the autoscaler knows of one streamer pod of the Deployment.
type Pod struct {
	// Name is the pod's name, which also names its count key in Redis.
	Name string
	// Ready is the pod's Ready condition.
	Ready bool
	// Terminating is true once the pod has a deletion timestamp: it is
	// draining, its clients are moving elsewhere, and it is never counted.
	Terminating bool
	// Reported is true when Redis holds a live count for the pod.
	Reported bool
	// Connections is the reported count; meaningless unless Reported.
	Connections int64
}

// Input is everything one evaluation looks at.
type Input struct {
	// Replicas is the streamer Deployment's spec.replicas now.
	Replicas int32
	// Pods are the Deployment's pods, in any order.
	Pods []Pod
	// CountsErr is set when the counts could not be read (Redis down): the
	// fleet then holds its size, and ScalingActive says why.
	CountsErr error
	// State is the previous evaluation's Result.State (zero for a new room).
	State State
	// Now is the evaluation time; the only clock Decide uses.
	Now time.Time
}

// Condition is a status condition without the Kubernetes types; the
// controller turns it into a metav1.Condition with its observedGeneration.
type Condition struct {
	Status  bool
	Reason  string
	Message string
}

// Result is the outcome of one evaluation.
type Result struct {
	// Replicas is what the Deployment's spec.replicas must become.
	Replicas int32
	// Recommendation is what the counts alone ask for (before windows, rate
	// limits and min/max); Replicas when the counts could not be used.
	Recommendation int32
	// Connections is the sum of the counts of the Ready, non-terminating pods.
	Connections int64
	// State must be stored (in the ChatRoom status) together with applying
	// Replicas, and passed back in the next Input: it records this decision.
	State State
	// ScalingActive says whether the counts could be used.
	ScalingActive Condition
	// ScalingLimited says whether something other than the counts chose
	// Replicas: the min/max, a rate limit, or a stabilization window.
	ScalingLimited Condition
}

// Condition types the controller sets from a Result.
const (
	ConditionScalingActive  = "ScalingActive"
	ConditionScalingLimited = "ScalingLimited"
)

// Reasons of ScalingActive.
const (
	// ReasonValidCounts: the counts were read and used.
	ReasonValidCounts = "ValidConnectionCounts"
	// ReasonFailedGetCounts: Redis could not be read; the size is held.
	ReasonFailedGetCounts = "FailedGetConnectionCounts"
	// ReasonNoReadyPods: no pod is Ready and not terminating; the size is held.
	ReasonNoReadyPods = "NoReadyPods"
	// ReasonNoCounts: no Ready pod has reported a count; the size is held.
	ReasonNoCounts = "NoConnectionCounts"
	// ReasonInvalidPolicy: the policy is invalid; the size is held.
	ReasonInvalidPolicy = "InvalidPolicy"
)

// Reasons of ScalingLimited.
const (
	// ReasonWithinRange (status false): Replicas is what the counts ask for.
	ReasonWithinRange = "DesiredWithinRange"
	// ReasonTooManyReplicas: held at maxReplicas.
	ReasonTooManyReplicas = "TooManyReplicas"
	// ReasonTooFewReplicas: held at minReplicas.
	ReasonTooFewReplicas = "TooFewReplicas"
	// ReasonScaleUpLimit: growth capped by the per-period rate limit.
	ReasonScaleUpLimit = "ScaleUpLimit"
	// ReasonScaleDownLimit: shrinking capped by the per-period rate limit.
	ReasonScaleDownLimit = "ScaleDownLimit"
	// ReasonScaleUpStabilized: growth held by the scale-up window.
	ReasonScaleUpStabilized = "ScaleUpStabilized"
	// ReasonScaleDownStabilized: shrinking held by the scale-down window.
	ReasonScaleDownStabilized = "ScaleDownStabilized"
)

// tally is the pods sorted into the groups the algorithm treats differently.
type tally struct {
	ready, reported, missing, unready, terminating int
	sum                                            int64
}

func count(pods []Pod) tally {
	var t tally
	for _, p := range pods {
		switch {
		case p.Terminating:
			t.terminating++
		case !p.Ready:
			t.unready++
		case !p.Reported:
			t.ready++
			t.missing++
		default:
			t.ready++
			t.reported++
			t.sum += max(p.Connections, 0)
		}
	}
	return t
}

func (t tally) String() string {
	return fmt.Sprintf("%d connections on %d reporting pods (%d ready without a count, %d unready, %d terminating)",
		t.sum, t.reported, t.missing, t.unready, t.terminating)
}

// Decide is one evaluation of the autoscaler: pure and deterministic, so the
// controller, the tests and the simulation all run exactly this.
//
// The steps, in order:
//  1. Spec bounds: replicas outside [min, max] are brought inside at once.
//  2. Counts: only Ready, non-terminating pods count. Without usable counts
//     (Redis down, no Ready pod, no report) the size holds.
//  3. Recommendation: ceil(connections / target) + spare, unless the usage
//     ratio is within tolerance. Ready pods without a report count as 0
//     when growing and as the full target when shrinking, and if that
//     reverses the direction the size holds (the HPA's rule for missing
//     metrics): an unknown never makes a change bigger.
//  4. Stabilization: up to the lowest recommendation of the scale-up
//     window, down to the highest of the scale-down window.
//  5. Rate limits per period, then min/max.
func Decide(p Policy, in Input) Result {
	cur := in.Replicas
	res := Result{Replicas: cur, Recommendation: cur, State: in.State.clone()}
	if err := p.Validate(); err != nil {
		res.ScalingActive = Condition{false, ReasonInvalidPolicy, fmt.Sprintf("holding %d replicas: invalid autoscaling policy: %v", cur, err)}
		res.ScalingLimited = Condition{false, ReasonWithinRange, "the policy is invalid"}
		return res
	}
	now := in.Now.UnixMilli()
	st := &res.State
	st.pruneEvents(p, now)

	t := count(in.Pods)
	res.Connections = t.sum
	switch {
	case in.CountsErr != nil:
		res.ScalingActive = Condition{false, ReasonFailedGetCounts, fmt.Sprintf("holding %d replicas: cannot read the connection counts: %v", cur, in.CountsErr)}
		res.Connections = 0
	case t.ready == 0:
		res.ScalingActive = Condition{false, ReasonNoReadyPods, fmt.Sprintf("holding %d replicas: no streamer pod is Ready (%d unready, %d terminating)", cur, t.unready, t.terminating)}
	case t.reported == 0:
		res.ScalingActive = Condition{false, ReasonNoCounts, fmt.Sprintf("holding %d replicas: none of the %d Ready streamer pods has reported a connection count", cur, t.ready)}
	default:
		res.ScalingActive = Condition{true, ReasonValidCounts, t.String()}
	}

	// 1. Spec bounds apply with or without counts, and ignore rate limits:
	// the spec is the operator's order, not a guess from a noisy load.
	if cur < p.MinReplicas || cur > p.MaxReplicas {
		desired, reason, msg := p.MinReplicas, ReasonTooFewReplicas, "below minReplicas"
		if cur > p.MaxReplicas {
			desired, reason, msg = p.MaxReplicas, ReasonTooManyReplicas, "above maxReplicas"
		}
		res.Replicas, res.Recommendation = desired, desired
		st.addEvent(now, desired-cur)
		res.ScalingLimited = Condition{true, reason, fmt.Sprintf("%d replicas is %s: scaling to %d", cur, msg, desired)}
		return res
	}
	// 2. Without counts, hold.
	if !res.ScalingActive.Status {
		res.ScalingLimited = Condition{false, ReasonWithinRange, "holding the current size"}
		return res
	}

	// 3. What the counts ask for.
	rec, why := recommend(p, cur, t)
	res.Recommendation = rec
	res.ScalingActive.Message = fmt.Sprintf("%s: %s", t, why)

	// 4. Windows. History holds recommendations clamped to [min, max],
	// which keeps the state bounded and changes no outcome.
	if len(st.Recommendations) == 0 {
		// A room seen for the first time (or whose state was lost) starts
		// its scale-down window now, at the current size, as the HPA does:
		// no shrinking on the word of a single evaluation.
		st.Recommendations = []Recommendation{{UnixMilli: now, Replicas: cur}}
	}
	upBound, downBound := st.stabilize(p, now, rec)
	st.addRecommendation(p, now, clamp(rec, p.MinReplicas, p.MaxReplicas))
	stabilized := max(cur, upBound)
	stabilized = min(stabilized, downBound)

	// 5. Rate limits and min/max.
	added, removed := st.periodChanges(p, now)
	desired, limitReason, limitMsg := limit(p, cur, stabilized, added, removed)
	res.Replicas = desired
	if desired != cur {
		st.addEvent(now, desired-cur)
	}

	switch {
	case limitReason != "":
		res.ScalingLimited = Condition{true, limitReason, limitMsg}
	case rec > p.MaxReplicas && desired == p.MaxReplicas:
		res.ScalingLimited = Condition{true, ReasonTooManyReplicas, fmt.Sprintf("the connections ask for %d replicas, more than maxReplicas %d", rec, p.MaxReplicas)}
	case rec < p.MinReplicas && desired == p.MinReplicas:
		res.ScalingLimited = Condition{true, ReasonTooFewReplicas, fmt.Sprintf("the connections ask for %d replicas, fewer than minReplicas %d", rec, p.MinReplicas)}
	case rec > cur && desired < rec:
		res.ScalingLimited = Condition{true, ReasonScaleUpStabilized, fmt.Sprintf("the connections ask for %d replicas; the lowest recommendation of the last %s is %d", rec, p.ScaleUpWindow, upBound)}
	case rec < cur && desired > rec:
		res.ScalingLimited = Condition{true, ReasonScaleDownStabilized, fmt.Sprintf("the connections ask for %d replicas; the highest recommendation of the last %s is %d", rec, p.ScaleDownWindow, downBound)}
	default:
		res.ScalingLimited = Condition{false, ReasonWithinRange, fmt.Sprintf("%d replicas is what the connections ask for", desired)}
	}
	return res
}

// recommend is step 3 of Decide: the replicas the counts ask for, and why.
func recommend(p Policy, cur int32, t tally) (int32, string) {
	target := p.TargetPerPod
	// The non-spare pods of the current fleet carry the load; the usage
	// ratio compares the load with their capacity.
	capacity := float64(int64(cur-p.SparePods) * target)
	rec := pods(t.sum, target) + int64(p.SparePods)
	switch {
	case rec > int64(cur):
		// Growing: pods without a count count as 0, so rec stands.
		if capacity > 0 && float64(t.sum) <= capacity*(1+p.ScaleUpTolerance) {
			return cur, fmt.Sprintf("usage ratio %.3f within the scale-up tolerance %g", float64(t.sum)/capacity, p.ScaleUpTolerance)
		}
		return clampInt32(rec), fmt.Sprintf("%d connections need %d pods plus %d spare", t.sum, rec-int64(p.SparePods), p.SparePods)
	case rec < int64(cur):
		// Shrinking: pods without a count might be full; count them so.
		sum := t.sum + int64(t.missing)*target
		if pods(sum, target)+int64(p.SparePods) >= int64(cur) {
			return cur, fmt.Sprintf("%d Ready pods without a count could be busy; not shrinking", t.missing)
		}
		// Shrink only to a fleet that runs at most (1 - tolerance) × target:
		// then the load must rise by the tolerance before the next scale-up,
		// and a load that wanders around a boundary does not flap.
		down := int64(math.Floor(float64(target) * (1 - p.ScaleDownTolerance)))
		rec = pods(sum, max(down, 1)) + int64(p.SparePods)
		if rec >= int64(cur) {
			return cur, fmt.Sprintf("usage ratio %.3f: one pod fewer would run above %g × target", float64(sum)/capacity, 1-p.ScaleDownTolerance)
		}
		return int32(rec), fmt.Sprintf("%d connections need %d pods at %g × target plus %d spare", sum, rec-int64(p.SparePods), 1-p.ScaleDownTolerance, p.SparePods)
	default:
		return cur, "the current size fits"
	}
}

// limit is step 5 of Decide: the per-period rate limits, then min/max. The
// period's starting size is the current size minus the changes made within
// the period, so several evaluations of one period share one allowance.
func limit(p Policy, cur, want int32, added, removed int32) (int32, string, string) {
	start := cur - added + removed
	switch {
	case want > cur:
		// The percent step rounds up, as the HPA's does: growing is the
		// safe direction, and a small fleet must be able to grow.
		allowed := max(start+p.ScaleUpMaxPods, int32(math.Ceil(float64(start)*(1+float64(p.ScaleUpMaxPercent)/100))))
		allowed = max(allowed, cur) // never below the current size
		if allowed < p.MaxReplicas {
			if want > allowed {
				return allowed, ReasonScaleUpLimit, fmt.Sprintf("growing from %d to %d is faster than the rate limit: %d this period", cur, want, allowed)
			}
		} else if want > p.MaxReplicas {
			return p.MaxReplicas, ReasonTooManyReplicas, fmt.Sprintf("%d replicas wanted, more than maxReplicas %d", want, p.MaxReplicas)
		}
	case want < cur:
		// The percent step rounds down (shrinking is the risky direction)
		// but is at least one pod, so a small fleet can still shrink.
		step := p.ScaleDownMaxPods
		if p.ScaleDownMaxPercent > 0 {
			step = max(step, int32(float64(start)*float64(p.ScaleDownMaxPercent)/100), 1)
		}
		allowed := start - step
		allowed = min(allowed, cur) // never above the current size
		if allowed > p.MinReplicas {
			if want < allowed {
				return allowed, ReasonScaleDownLimit, fmt.Sprintf("shrinking from %d to %d is faster than the rate limit: %d this period", cur, want, allowed)
			}
		} else if want < p.MinReplicas {
			return p.MinReplicas, ReasonTooFewReplicas, fmt.Sprintf("%d replicas wanted, fewer than minReplicas %d", want, p.MinReplicas)
		}
	}
	return want, "", ""
}

// pods is ceil(conns / target), the pods that hold conns at target each.
func pods(conns, target int64) int64 {
	return (conns + target - 1) / target
}

func clamp(v, lo, hi int32) int32 { return max(lo, min(v, hi)) }

func clampInt32(v int64) int32 {
	if v > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(v)
}
