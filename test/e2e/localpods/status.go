package localpods

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// podState is what the Deployment status is computed from.
type podState struct {
	hash        string
	terminating bool
	ready       bool
	readySince  time.Time
}

// syncDeploymentStatus writes the status the deployment controller would.
func (r *Runner) syncDeploymentStatus(ctx context.Context, d *appsv1.Deployment, hash string) error {
	var states []podState
	for _, p := range r.podsOf(d.UID) {
		states = append(states, p.state())
	}
	st := deploymentStatus(d, hash, states, time.Now())
	if equality.Semantic.DeepEqual(st, d.Status) {
		return nil
	}
	nd := d.DeepCopy()
	nd.Status = st
	if err := r.c.Status().Update(ctx, nd); err != nil {
		r.kick() // a conflict: try again with a fresh read
		return fmt.Errorf("update status: %w", err)
	}
	return nil
}

// deploymentStatus computes a Deployment's status from its pods as the
// deployment controller does (calculateStatus and syncRolloutStatus):
// terminating pods count only in terminatingReplicas; available means Ready
// for minReadySeconds; Available is true when available >= replicas -
// maxUnavailable; Progressing is NewReplicaSetAvailable once the rollout is
// complete, ReplicaSetUpdated while it progresses, and
// ProgressDeadlineExceeded when it has not progressed for
// progressDeadlineSeconds.
func deploymentStatus(d *appsv1.Deployment, hash string, pods []podState, now time.Time) appsv1.DeploymentStatus {
	desired := int32(replicasOf(d))
	minReady := time.Duration(d.Spec.MinReadySeconds) * time.Second
	var active, updated, ready, available, terminating int32
	for _, p := range pods {
		if p.terminating {
			terminating++
			continue
		}
		active++
		if p.hash == hash {
			updated++
		}
		if p.ready {
			ready++
			if !now.Before(p.readySince.Add(minReady)) {
				available++
			}
		}
	}
	st := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            active,
		UpdatedReplicas:     updated,
		ReadyReplicas:       ready,
		AvailableReplicas:   available,
		UnavailableReplicas: max(0, desired-available),
		TerminatingReplicas: &terminating,
		CollisionCount:      d.Status.CollisionCount,
	}
	old := d.Status
	progressed := old.ObservedGeneration != st.ObservedGeneration || old.UpdatedReplicas != st.UpdatedReplicas ||
		old.ReadyReplicas != st.ReadyReplicas || old.AvailableReplicas != st.AvailableReplicas ||
		old.Replicas != st.Replicas

	rs := fmt.Sprintf("%s-%s", d.Name, hash)
	mt := metav1.NewTime(now)

	availCond := appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
		Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability.", LastUpdateTime: mt, LastTransitionTime: mt}
	if available < desired-maxUnavailable(d) {
		availCond.Status, availCond.Reason, availCond.Message = corev1.ConditionFalse, "MinimumReplicasUnavailable", "Deployment does not have minimum availability."
	}

	complete := updated == desired && active == desired && available == desired
	prog := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue,
		Reason: "ReplicaSetUpdated", Message: fmt.Sprintf("ReplicaSet %q is progressing.", rs), LastUpdateTime: mt, LastTransitionTime: mt}
	prev := findCondition(old.Conditions, appsv1.DeploymentProgressing)
	switch {
	case complete:
		prog.Reason, prog.Message = "NewReplicaSetAvailable", fmt.Sprintf("ReplicaSet %q has successfully progressed.", rs)
	case progressed || prev == nil || prev.Reason == "NewReplicaSetAvailable":
		// progress: a fresh lastUpdateTime
	case prev.Reason == "ProgressDeadlineExceeded":
		prog = *prev // stays failed until something progresses
	case d.Spec.ProgressDeadlineSeconds != nil &&
		now.Sub(prev.LastUpdateTime.Time) > time.Duration(*d.Spec.ProgressDeadlineSeconds)*time.Second:
		prog.Status, prog.Reason, prog.Message = corev1.ConditionFalse, "ProgressDeadlineExceeded", fmt.Sprintf("ReplicaSet %q has timed out progressing.", rs)
	default:
		prog = *prev // no progress, within the deadline: unchanged
	}

	st.Conditions = []appsv1.DeploymentCondition{
		mergeCondition(old.Conditions, availCond, false),
		mergeCondition(old.Conditions, prog, progressed && !complete),
	}
	return st
}

// mergeCondition keeps the previous times when nothing changed (and the
// previous transition time when only the reason did); touch forces a new
// lastUpdateTime.
func mergeCondition(old []appsv1.DeploymentCondition, c appsv1.DeploymentCondition, touch bool) appsv1.DeploymentCondition {
	prev := findCondition(old, c.Type)
	if prev == nil {
		return c
	}
	if prev.Status == c.Status {
		c.LastTransitionTime = prev.LastTransitionTime
		if prev.Reason == c.Reason && prev.Message == c.Message && !touch {
			c.LastUpdateTime = prev.LastUpdateTime
		}
	}
	return c
}

func findCondition(cs []appsv1.DeploymentCondition, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}

// maxUnavailable resolves the rolling update's maxUnavailable (percentages
// round down) the way the deployment controller does; 0 for Recreate.
func maxUnavailable(d *appsv1.Deployment) int32 {
	desired := int32(replicasOf(d))
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType || desired == 0 {
		return 0
	}
	ru := d.Spec.Strategy.RollingUpdate
	mu := intstr.FromString("25%")
	ms := intstr.FromString("25%")
	if ru != nil {
		if ru.MaxUnavailable != nil {
			mu = *ru.MaxUnavailable
		}
		if ru.MaxSurge != nil {
			ms = *ru.MaxSurge
		}
	}
	surge, _ := intstr.GetScaledValueFromIntOrPercent(&ms, int(desired), true)
	unavail, _ := intstr.GetScaledValueFromIntOrPercent(&mu, int(desired), false)
	if surge == 0 && unavail == 0 {
		unavail = 1 // the controller never lets both be 0
	}
	return min(int32(unavail), desired)
}
