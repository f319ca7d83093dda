package controllers

import (
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/autoscale"
)

// autoscalePods turns the streamer pods and their counts into what the
// algorithm looks at: Ready is the pod's Ready condition, Terminating its
// deletion timestamp, and a pod without a count has not reported.
func autoscalePods(pods []corev1.Pod, counts map[string]int64) []autoscale.Pod {
	out := make([]autoscale.Pod, 0, len(pods))
	for i := range pods {
		p := &pods[i]
		n, reported := counts[p.Name]
		out = append(out, autoscale.Pod{
			Name:        p.Name,
			Ready:       podReady(p),
			Terminating: !p.DeletionTimestamp.IsZero(),
			Reported:    reported,
			Connections: n,
		})
	}
	return out
}

// podReady reports the pod's Ready condition.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// autoscalerStatus returns the room's status with the autoscaler's part
// replaced by what this evaluation found and decided; the ChatRoom
// reconciler's part is kept as it is. Conditions carry the room's
// generation; a condition whose status did not change keeps its
// lastTransitionTime.
func autoscalerStatus(room *chatrv1.ChatRoom, in autoscale.Input, res autoscale.Result) *chatrv1.ChatRoomStatus {
	st := room.Status.DeepCopy()
	if in.CountsErr == nil || st.Connections == nil {
		// Without counts the last known total stays (0 if none): Decide's
		// Connections is 0 then, which would read as an empty room.
		st.Connections = ptr(res.Connections)
	}
	var current int32
	for _, p := range in.Pods {
		if !p.Terminating {
			current++
		}
	}
	st.CurrentStreamers = ptr(current)
	st.DesiredStreamers = ptr(res.Replicas)
	if t := res.State.LastScaleTime(); !t.IsZero() {
		// The API keeps seconds; truncating here keeps the stored and the
		// computed value equal, so an unchanged time never causes a write.
		st.LastScaleTime = &metav1.Time{Time: t.Truncate(time.Second)}
	}
	st.Autoscaler = statusFromState(res.State)

	now := metav1.NewTime(in.Now.Truncate(time.Second))
	for _, c := range []struct {
		typ  string
		cond autoscale.Condition
	}{
		{chatrv1.ConditionScalingActive, res.ScalingActive},
		{chatrv1.ConditionScalingLimited, res.ScalingLimited},
	} {
		s := metav1.ConditionFalse
		if c.cond.Status {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: c.typ, Status: s, Reason: c.cond.Reason, Message: truncate(c.cond.Message, 32000),
			ObservedGeneration: room.Generation, LastTransitionTime: now,
		})
	}
	return st
}

// autoscalerStatusChanged reports whether the autoscaler's part of the
// status changed enough to be written: the replicas, the last scale time,
// the state, a condition's status, reason or generation, or a first post
// rate. The connection count, the post rate and the condition messages (which quote the counts) change at every
// evaluation of a live room; they are refreshed whenever the status is
// written for one of those reasons, which the state alone causes about every
// 10 s (it records a recommendation at most that often), so the autoscaler
// does not write every room's status every 2 s.
func autoscalerStatusChanged(old, new *chatrv1.ChatRoomStatus) bool {
	if !equalPtr(old.CurrentStreamers, new.CurrentStreamers) || !equalPtr(old.DesiredStreamers, new.DesiredStreamers) ||
		(old.Connections == nil) != (new.Connections == nil) || (old.PostsPerSecond == "") != (new.PostsPerSecond == "") {
		return true
	}
	if (old.LastScaleTime == nil) != (new.LastScaleTime == nil) ||
		(old.LastScaleTime != nil && !old.LastScaleTime.Equal(new.LastScaleTime)) {
		return true
	}
	if !equalState(old.Autoscaler, new.Autoscaler) {
		return true
	}
	for _, t := range []string{chatrv1.ConditionScalingActive, chatrv1.ConditionScalingLimited} {
		o, n := meta.FindStatusCondition(old.Conditions, t), meta.FindStatusCondition(new.Conditions, t)
		if (o == nil) != (n == nil) {
			return true
		}
		if o != nil && (o.Status != n.Status || o.Reason != n.Reason || o.ObservedGeneration != n.ObservedGeneration) {
			return true
		}
	}
	return false
}

// equalState compares two states, an absent one and an empty one alike.
func equalState(a, b *chatrv1.AutoscalerState) bool {
	var x, y chatrv1.AutoscalerState
	if a != nil {
		x = *a
	}
	if b != nil {
		y = *b
	}
	return x.LastScaleUnixMilli == y.LastScaleUnixMilli &&
		slices.Equal(x.Recommendations, y.Recommendations) && slices.Equal(x.ScaleEvents, y.ScaleEvents)
}

// stateFromStatus converts the state the status keeps to the algorithm's
// (the zero state for a room never evaluated), sharing no memory with it.
func stateFromStatus(st *chatrv1.AutoscalerState) autoscale.State {
	if st == nil {
		return autoscale.State{}
	}
	out := autoscale.State{LastScaleUnixMilli: st.LastScaleUnixMilli}
	for _, r := range st.Recommendations {
		out.Recommendations = append(out.Recommendations, autoscale.Recommendation{UnixMilli: r.UnixMilli, Replicas: r.Replicas})
	}
	for _, e := range st.ScaleEvents {
		out.ScaleEvents = append(out.ScaleEvents, autoscale.ScaleEvent{UnixMilli: e.UnixMilli, Change: e.Change})
	}
	return out
}

// statusFromState converts the algorithm's state to the form the status
// keeps, sharing no memory with it.
func statusFromState(s autoscale.State) *chatrv1.AutoscalerState {
	out := &chatrv1.AutoscalerState{LastScaleUnixMilli: s.LastScaleUnixMilli}
	for _, r := range s.Recommendations {
		out.Recommendations = append(out.Recommendations, chatrv1.ScaleRecommendation{UnixMilli: r.UnixMilli, Replicas: r.Replicas})
	}
	for _, e := range s.ScaleEvents {
		out.ScaleEvents = append(out.ScaleEvents, chatrv1.ScaleEvent{UnixMilli: e.UnixMilli, Change: e.Change})
	}
	return out
}

// equalPtr compares two optional values.
func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// stripPodForAutoscaler is the cache transform of streamer pods: the
// autoscaler (their only reader) needs their metadata, phase and
// conditions, so the spec and the rest of the status are dropped, and the
// managed fields with them. A streamer pod's spec is most of its size.
func stripPodForAutoscaler(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	p.ManagedFields = nil
	p.Spec = corev1.PodSpec{}
	p.Status = corev1.PodStatus{Phase: p.Status.Phase, Conditions: p.Status.Conditions}
	return p, nil
}
