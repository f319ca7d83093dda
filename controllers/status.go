package controllers

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// computeStatus derives the ChatRoom reconciler's part of the status
// (roomStatusPart), once per reconcile, from the Deployments as the
// reconcile left them and the problems it met: the replica counts, then
// each condition from its named check (statusChecks), then what the spec
// alone gives. The autoscaler's fields stay unset. It starts from the room's
// current conditions of its own types, so that a condition that did not
// change keeps its lastTransitionTime (then the status compares equal and is
// not written).
func computeStatus(room *chatrv1.ChatRoom, in statusInput) *chatrv1.ChatRoomStatus {
	desired, deps := in.desired, in.deps
	gen := room.Generation
	st := &chatrv1.ChatRoomStatus{
		ObservedGeneration: gen,
		API:                componentStatus(deps[chatrv1.ComponentAPI]),
		Streamer:           componentStatus(deps[chatrv1.ComponentStreamer]),
		Verifier:           componentStatus(deps[chatrv1.ComponentVerifier]),
		PostgresSchema:     desired.PostgresSchema(),
		Endpoints: chatrv1.Endpoints{
			URL:      desired.PublicURL(),
			API:      desired.ServiceURL(chatrv1.ComponentAPI, portHTTP),
			Streamer: desired.ServiceURL(chatrv1.ComponentStreamer, portHTTP),
		},
	}
	st.Streamers = fmt.Sprintf("%d/%d", st.Streamer.ReadyReplicas, st.Streamer.Replicas)
	for _, c := range room.Status.Conditions {
		if slices.Contains(roomStatusPart.conditions, c.Type) {
			st.Conditions = append(st.Conditions, c)
		}
	}
	for _, check := range statusChecks {
		v := check.eval(in)
		s := metav1.ConditionFalse
		if v.ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: check.condition, Status: s, Reason: v.reason, Message: v.message, ObservedGeneration: gen,
		})
	}
	return st
}

// statusInput is what the conditions are derived from: the defaulted room,
// its Deployments as the reconcile left them (a missing one is absent), the
// problems the reconcile met (Secrets, adoption, writes), and what it found
// about monitoring.
type statusInput struct {
	desired    *chatrv1.ChatRoom
	deps       map[chatrv1.Component]*appsv1.Deployment
	problems   []problem
	monitoring monitoringState
}

// verdict is what a check finds: the condition's status, reason and message.
type verdict struct {
	ok              bool
	reason, message string
}

// statusCheck derives one condition.
type statusCheck struct {
	condition string
	eval      func(statusInput) verdict
}

// statusChecks are the ChatRoom reconciler's conditions, in the order they
// are first added to the status: each component's availability, then the
// room's Available, Progressing and Degraded, then Monitoring.
var statusChecks = []statusCheck{
	{chatrv1.ConditionAPIAvailable, componentAvailable(chatrv1.ComponentAPI)},
	{chatrv1.ConditionStreamerAvailable, componentAvailable(chatrv1.ComponentStreamer)},
	{chatrv1.ConditionVerifierAvailable, componentAvailable(chatrv1.ComponentVerifier)},
	{chatrv1.ConditionAvailable, roomAvailable},
	{chatrv1.ConditionProgressing, roomProgressing},
	{chatrv1.ConditionDegraded, roomDegraded},
	{chatrv1.ConditionMonitoring, monitoringReady},
}

// componentAvailable checks that the component's Deployment exists and has
// an available pod.
func componentAvailable(c chatrv1.Component) func(statusInput) verdict {
	return func(in statusInput) verdict {
		d := in.deps[c]
		cs := componentStatus(d)
		switch {
		case d == nil:
			return verdict{false, chatrv1.ReasonDeploymentMissing, fmt.Sprintf("Deployment %s does not exist yet", in.desired.ComponentName(c))}
		case cs.AvailableReplicas > 0:
			return verdict{true, chatrv1.ReasonMinimumReplicasAvailable, fmt.Sprintf("%d of %d pods available", cs.AvailableReplicas, cs.Replicas)}
		default:
			return verdict{false, chatrv1.ReasonNoReplicasAvailable, fmt.Sprintf("0 of %d pods available", cs.Replicas)}
		}
	}
}

// unavailable lists, in component order, the components without an
// available pod (or without a Deployment).
func (in statusInput) unavailable() []string {
	var out []string
	for _, c := range chatrv1.Components {
		if d := in.deps[c]; d == nil || d.Status.AvailableReplicas == 0 {
			out = append(out, string(c))
		}
	}
	return out
}

// roomAvailable checks that the room serves: agents can post (API) and
// spectators can watch (streamers). A verifier outage delays verifications:
// Degraded only.
func roomAvailable(in statusInput) verdict {
	down := in.unavailable()
	if slices.Contains(down, string(chatrv1.ComponentAPI)) || slices.Contains(down, string(chatrv1.ComponentStreamer)) {
		return verdict{false, chatrv1.ReasonComponentUnavailable, "no available pods for: " + strings.Join(down, ", ")}
	}
	return verdict{true, chatrv1.ReasonAvailable, "the API and the streamers have available pods"}
}

// roomProgressing checks whether a Deployment rolls out, naming each.
func roomProgressing(in statusInput) verdict {
	var rolling []string
	for _, c := range chatrv1.Components {
		if d := in.deps[c]; rollingOut(d) {
			cs := componentStatus(d)
			rolling = append(rolling, fmt.Sprintf("%s (%d of %d updated pods available)", c, min(cs.UpdatedReplicas, cs.AvailableReplicas), cs.Replicas))
		}
	}
	if len(rolling) > 0 {
		return verdict{true, chatrv1.ReasonRollingOut, "rolling out: " + strings.Join(rolling, ", ")}
	}
	return verdict{false, chatrv1.ReasonRolledOut, "no rollout in progress"}
}

// roomDegraded checks whether anything needs a human (roomProblems): the
// reason is the first problem's, the message all of theirs, one a line, so
// `kubectl describe chatroom` shows each cause on a line of its own.
func roomDegraded(in statusInput) verdict {
	problems := roomProblems(in)
	if len(problems) == 0 {
		return verdict{false, chatrv1.ReasonAsExpected, "nothing needs attention"}
	}
	msgs := make([]string, 0, len(problems))
	for _, p := range problems {
		msgs = append(msgs, p.message)
	}
	return verdict{true, problems[0].reason, truncate(strings.Join(msgs, "\n"), 32000)}
}

// roomProblems lists, once each and in this order, the reconcile's
// problems, each Deployment's (deploymentProblems), and a verifier with no
// available pod outside a rollout.
func roomProblems(in statusInput) []problem {
	problems := slices.Clone(in.problems)
	for _, c := range chatrv1.Components {
		problems = append(problems, deploymentProblems(c, in.deps[c])...)
	}
	if v := in.deps[chatrv1.ComponentVerifier]; v != nil && v.Status.AvailableReplicas == 0 && !rollingOut(v) {
		problems = append(problems, problem{chatrv1.ReasonComponentUnavailable, "verifier has no available pod: verifications wait"})
	}
	return dedupe(problems)
}

// componentStatus copies a Deployment's replica counts; the desired count is
// the Deployment's spec (for streamers, what the autoscaler set).
func componentStatus(d *appsv1.Deployment) chatrv1.ComponentStatus {
	if d == nil {
		return chatrv1.ComponentStatus{}
	}
	var want int32 = 1
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return chatrv1.ComponentStatus{
		Replicas:          want,
		ReadyReplicas:     d.Status.ReadyReplicas,
		UpdatedReplicas:   d.Status.UpdatedReplicas,
		AvailableReplicas: d.Status.AvailableReplicas,
	}
}

// rollingOut reports whether a Deployment has not finished moving to its
// current template, as `kubectl rollout status` judges it: the controller
// has not seen the latest spec, or not every pod is updated, or old pods
// still run, or updated pods are not all available yet.
func rollingOut(d *appsv1.Deployment) bool {
	if d == nil {
		return false
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	if s.ObservedGeneration < d.Generation || s.UpdatedReplicas < want || s.Replicas > s.UpdatedReplicas {
		return true
	}
	// Updated pods not all available: still rolling, unless the Deployment
	// controller already declared the rollout complete (then pods were lost
	// afterwards, which deploymentProblems reports as Degraded).
	return s.AvailableReplicas < s.UpdatedReplicas && !rolloutComplete(d)
}

// rolloutComplete reports whether the Deployment controller marked the
// latest rollout complete (Progressing=True, NewReplicaSetAvailable).
func rolloutComplete(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing {
			return c.Status == corev1.ConditionTrue && c.Reason == "NewReplicaSetAvailable"
		}
	}
	return false
}

// deploymentProblems returns what about a Deployment needs a human: a
// rollout stuck past its deadline, pods the ReplicaSet cannot create, or,
// once no rollout runs, fewer available pods than asked for.
func deploymentProblems(c chatrv1.Component, d *appsv1.Deployment) []problem {
	if d == nil {
		return nil
	}
	var ps []problem
	for _, cond := range d.Status.Conditions {
		switch {
		case cond.Type == appsv1.DeploymentProgressing && cond.Status == corev1.ConditionFalse && cond.Reason == "ProgressDeadlineExceeded":
			ps = append(ps, problem{chatrv1.ReasonProgressDeadlineExceeded, fmt.Sprintf("%s rollout exceeded its progress deadline: %s", c, cond.Message)})
		case cond.Type == appsv1.DeploymentReplicaFailure && cond.Status == corev1.ConditionTrue:
			ps = append(ps, problem{chatrv1.ReasonReplicaFailure, fmt.Sprintf("%s cannot create pods: %s", c, cond.Message)})
		}
	}
	want := componentStatus(d).Replicas
	if !rollingOut(d) && d.Status.AvailableReplicas < want && d.Status.AvailableReplicas > 0 {
		ps = append(ps, problem{chatrv1.ReasonReplicasUnavailable, fmt.Sprintf("%s has %d of %d pods available", c, d.Status.AvailableReplicas, want)})
	}
	if !rollingOut(d) && d.Status.AvailableReplicas == 0 && want > 0 && c != chatrv1.ComponentVerifier {
		ps = append(ps, problem{chatrv1.ReasonReplicasUnavailable, fmt.Sprintf("%s has no available pod", c)})
	}
	return ps
}

// truncate keeps a condition message under the API's 32768-byte limit.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
