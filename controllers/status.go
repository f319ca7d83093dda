package controllers

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// computeStatus derives the room's whole status, once per reconcile, from
// the Deployments as the reconcile left them and the problems it met. It
// starts from the current status so that the autoscaler's fields and
// conditions are kept and a condition that did not change keeps its
// lastTransitionTime (then the status compares equal and is not written).
func computeStatus(room, desired *chatrv1.ChatRoom, deps map[chatrv1.Component]*appsv1.Deployment, problems []problem) *chatrv1.ChatRoomStatus {
	st := room.Status.DeepCopy()
	gen := room.Generation
	st.ObservedGeneration = gen
	set := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen,
		})
	}

	var unavailable, rolling []string
	for _, c := range chatrv1.Components {
		d := deps[c]
		cs := componentStatus(d)
		switch c {
		case chatrv1.ComponentAPI:
			st.API = cs
		case chatrv1.ComponentStreamer:
			st.Streamer = cs
		case chatrv1.ComponentVerifier:
			st.Verifier = cs
		}

		switch {
		case d == nil:
			set(chatrv1.ComponentConditionType(c), false, chatrv1.ReasonDeploymentMissing,
				fmt.Sprintf("Deployment %s does not exist yet", desired.ComponentName(c)))
		case cs.AvailableReplicas > 0:
			set(chatrv1.ComponentConditionType(c), true, chatrv1.ReasonMinimumReplicasAvailable,
				fmt.Sprintf("%d of %d pods available", cs.AvailableReplicas, cs.Replicas))
		default:
			set(chatrv1.ComponentConditionType(c), false, chatrv1.ReasonNoReplicasAvailable,
				fmt.Sprintf("0 of %d pods available", cs.Replicas))
		}
		if d == nil || cs.AvailableReplicas == 0 {
			unavailable = append(unavailable, string(c))
		}
		if rollingOut(d) {
			rolling = append(rolling, fmt.Sprintf("%s (%d of %d updated pods available)", c, min(cs.UpdatedReplicas, cs.AvailableReplicas), cs.Replicas))
		}
		problems = append(problems, deploymentProblems(c, d)...)
	}

	// The room serves when agents can post (API) and spectators can watch
	// (streamers). A verifier outage delays verifications: Degraded only.
	serving := !contains(unavailable, string(chatrv1.ComponentAPI)) && !contains(unavailable, string(chatrv1.ComponentStreamer))
	if serving {
		set(chatrv1.ConditionAvailable, true, chatrv1.ReasonAvailable, "the API and the streamers have available pods")
	} else {
		set(chatrv1.ConditionAvailable, false, chatrv1.ReasonComponentUnavailable,
			"no available pods for: "+strings.Join(unavailable, ", "))
	}
	if contains(unavailable, string(chatrv1.ComponentVerifier)) && deps[chatrv1.ComponentVerifier] != nil && !rollingOut(deps[chatrv1.ComponentVerifier]) {
		problems = append(problems, problem{chatrv1.ReasonComponentUnavailable, "verifier has no available pod: verifications wait"})
	}

	if len(rolling) > 0 {
		set(chatrv1.ConditionProgressing, true, chatrv1.ReasonRollingOut, "rolling out: "+strings.Join(rolling, ", "))
	} else {
		set(chatrv1.ConditionProgressing, false, chatrv1.ReasonRolledOut, "no rollout in progress")
	}

	problems = dedupe(problems)
	if len(problems) > 0 {
		msgs := make([]string, 0, len(problems))
		for _, p := range problems {
			msgs = append(msgs, p.message)
		}
		set(chatrv1.ConditionDegraded, true, problems[0].reason, truncate(strings.Join(msgs, "; "), 32000))
	} else {
		set(chatrv1.ConditionDegraded, false, chatrv1.ReasonAsExpected, "nothing needs attention")
	}

	st.Streamers = fmt.Sprintf("%d/%d", st.Streamer.ReadyReplicas, st.Streamer.Replicas)
	st.PostgresSchema = desired.PostgresSchema()
	st.Endpoints = chatrv1.Endpoints{
		URL:      desired.PublicURL(),
		API:      desired.ServiceURL(chatrv1.ComponentAPI, portHTTP),
		Streamer: desired.ServiceURL(chatrv1.ComponentStreamer, portHTTP),
	}
	return st
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

// contains reports whether x is in xs.
func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// truncate keeps a condition message under the API's 32768-byte limit.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
