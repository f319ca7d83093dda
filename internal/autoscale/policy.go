package autoscale

import (
	"errors"
	"fmt"
	"time"
)

// Policy is how a room's streamer fleet scales. The controller builds it from
// the ChatRoom spec; DefaultPolicy gives the values the simulation
// (cmd/scalesim) was tuned with.
type Policy struct {
	// MinReplicas is the smallest fleet. At least 1: a fleet of zero pods
	// reports no counts, so it could never learn that it must grow.
	MinReplicas int32
	// MaxReplicas is the largest fleet.
	MaxReplicas int32
	// TargetPerPod is the number of live connections one pod should carry.
	TargetPerPod int64
	// SparePods are kept on top of ceil(connections / TargetPerPod). A new pod
	// takes seconds to report, be seen and become Ready, and connections
	// never move off a pod once placed, so a fleet with no spare lets a surge
	// pile onto the old pods for good; one spare pod absorbs that lag.
	SparePods int32
	// ScaleUpTolerance is how far above 1 the usage ratio (connections over
	// the capacity of the non-spare pods) may go before the fleet grows.
	ScaleUpTolerance float64
	// ScaleDownTolerance is how far below 1 the usage ratio may fall before
	// the fleet shrinks. Wider than the upward band: shrinking costs every
	// moved client a reconnection, growing costs only a pod.
	ScaleDownTolerance float64
	// ScaleUpWindow: a scale-up goes only as high as the lowest
	// recommendation of this window. Zero reacts on the next evaluation.
	ScaleUpWindow time.Duration
	// ScaleDownWindow: a scale-down goes only as low as the highest
	// recommendation of this window, so a dip in a noisy load never removes a
	// pod that the next peak needs again.
	ScaleDownWindow time.Duration
	// Period is the rate-limit period for both directions.
	Period time.Duration
	// ScaleUpMaxPods and ScaleUpMaxPercent bound growth per Period: the fleet
	// may grow by whichever allows more. Percent is of the fleet at the start
	// of the period, rounded up. At least one must be positive.
	ScaleUpMaxPods    int32
	ScaleUpMaxPercent int32
	// ScaleDownMaxPods and ScaleDownMaxPercent bound shrinking per Period the
	// same way (whichever removes more); the percent rounds down but allows
	// at least one pod. Each removed pod sends its clients reconnecting to
	// the others, so this also bounds reconnection storms. At least one must
	// be positive.
	ScaleDownMaxPods    int32
	ScaleDownMaxPercent int32
}

// DefaultInterval is how often the controller should evaluate a room: read
// the counts and call Decide. Each count is up to 5 s old already (the
// streamers' report interval); evaluating every 2 s keeps the reaction to a
// surge within the one spare pod, where 5 s lets a steep surge pile 1.25 ×
// target onto the first pods (docs/autoscaling.md, cmd/scalesim).
const DefaultInterval = 2 * time.Second

// DefaultPolicy returns the defaults tuned with cmd/scalesim (see
// docs/autoscaling.md for the figures that justify each value).
func DefaultPolicy() Policy {
	return Policy{
		MinReplicas:         2,
		MaxReplicas:         50,
		TargetPerPod:        5000,
		SparePods:           1,
		ScaleUpTolerance:    0,
		ScaleDownTolerance:  0.1,
		ScaleUpWindow:       0,
		ScaleDownWindow:     300 * time.Second,
		Period:              15 * time.Second,
		ScaleUpMaxPods:      4,
		ScaleUpMaxPercent:   100,
		ScaleDownMaxPods:    1,
		ScaleDownMaxPercent: 10,
	}
}

// Validate reports every reason the policy cannot be applied. Decide holds
// the fleet while it fails, so a bad spec never resizes the streamers.
func (p Policy) Validate() error {
	var errs []error
	if p.MinReplicas < 1 {
		errs = append(errs, fmt.Errorf("minReplicas %d: must be at least 1", p.MinReplicas))
	}
	if p.MaxReplicas < p.MinReplicas {
		errs = append(errs, fmt.Errorf("maxReplicas %d: must be at least minReplicas %d", p.MaxReplicas, p.MinReplicas))
	}
	if p.TargetPerPod < 1 {
		errs = append(errs, fmt.Errorf("targetPerPod %d: must be positive", p.TargetPerPod))
	}
	if p.SparePods < 0 {
		errs = append(errs, fmt.Errorf("sparePods %d: must not be negative", p.SparePods))
	}
	if p.ScaleUpTolerance < 0 || p.ScaleDownTolerance < 0 || p.ScaleDownTolerance >= 1 {
		errs = append(errs, fmt.Errorf("tolerances up %g, down %g: must be >= 0, and down < 1", p.ScaleUpTolerance, p.ScaleDownTolerance))
	}
	if p.ScaleUpWindow < 0 || p.ScaleDownWindow < 0 {
		errs = append(errs, errors.New("stabilization windows must not be negative"))
	}
	if p.Period <= 0 {
		errs = append(errs, fmt.Errorf("period %s: must be positive", p.Period))
	}
	if p.ScaleUpMaxPods < 0 || p.ScaleUpMaxPercent < 0 || p.ScaleUpMaxPods+p.ScaleUpMaxPercent == 0 {
		errs = append(errs, errors.New("scale-up limits: pods and percent must not be negative, and one must be positive"))
	}
	if p.ScaleDownMaxPods < 0 || p.ScaleDownMaxPercent < 0 || p.ScaleDownMaxPods+p.ScaleDownMaxPercent == 0 || p.ScaleDownMaxPercent > 100 {
		errs = append(errs, errors.New("scale-down limits: pods and percent (at most 100) must not be negative, and one must be positive"))
	}
	return errors.Join(errs...)
}
