package controllers

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// The checks that derive the ChatRoom reconciler's conditions, each on its
// own, from Deployments as the Deployment controller would leave them.

// dep returns a Deployment asking for replicas pods whose status is s, its
// latest generation observed.
func dep(replicas int32, s appsv1.DeploymentStatus) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Spec: appsv1.DeploymentSpec{Replicas: ptr(replicas)}}
	s.ObservedGeneration = 2
	d.Status = s
	return d
}

// healthyDep is a Deployment whose rollout is complete and every pod available.
func healthyDep(n int32) *appsv1.Deployment { return dep(n, healthy(n)) }

// rollingDep is a Deployment rolling out: of want pods, updated are new and
// available are available.
func rollingDep(want, replicas, updated, available int32) *appsv1.Deployment {
	return dep(want, appsv1.DeploymentStatus{Replicas: replicas, UpdatedReplicas: updated, ReadyReplicas: available, AvailableReplicas: available})
}

// lostPods is a Deployment whose rollout completed and which then lost
// pods: available of n.
func lostPods(n, available int32) *appsv1.Deployment {
	d := healthyDep(n)
	d.Status.ReadyReplicas, d.Status.AvailableReplicas = available, available
	return d
}

// withCondition adds a Deployment condition.
func withCondition(d *appsv1.Deployment, typ appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string) *appsv1.Deployment {
	d.Status.Conditions = append(d.Status.Conditions, appsv1.DeploymentCondition{Type: typ, Status: s, Reason: reason, Message: msg})
	return d
}

// allHealthy is every component healthy: 2 API pods, 2 streamers, 1 verifier.
func allHealthy() map[chatrv1.Component]*appsv1.Deployment {
	return map[chatrv1.Component]*appsv1.Deployment{
		chatrv1.ComponentAPI: healthyDep(2), chatrv1.ComponentStreamer: healthyDep(2), chatrv1.ComponentVerifier: healthyDep(1),
	}
}

// with returns allHealthy with c's Deployment replaced (nil: missing).
func with(c chatrv1.Component, d *appsv1.Deployment) map[chatrv1.Component]*appsv1.Deployment {
	deps := allHealthy()
	if d == nil {
		delete(deps, c)
	} else {
		deps[c] = d
	}
	return deps
}

func statusIn(deps map[chatrv1.Component]*appsv1.Deployment, problems ...problem) statusInput {
	return statusInput{desired: defaultedRoom(nil), deps: deps, problems: problems}
}

func wantVerdict(t *testing.T, got, want verdict) {
	t.Helper()
	if got != want {
		t.Errorf("verdict %+v\n          want %+v", got, want)
	}
}

func TestComponentAvailableCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    chatrv1.Component
		d    *appsv1.Deployment
		want verdict
	}{
		{"missing", chatrv1.ComponentAPI, nil,
			verdict{false, chatrv1.ReasonDeploymentMissing, "Deployment lobby-api does not exist yet"}},
		{"every pod available", chatrv1.ComponentStreamer, healthyDep(3),
			verdict{true, chatrv1.ReasonMinimumReplicasAvailable, "3 of 3 pods available"}},
		{"one pod available is enough", chatrv1.ComponentAPI, lostPods(4, 1),
			verdict{true, chatrv1.ReasonMinimumReplicasAvailable, "1 of 4 pods available"}},
		{"no pod available", chatrv1.ComponentVerifier, lostPods(1, 0),
			verdict{false, chatrv1.ReasonNoReplicasAvailable, "0 of 1 pods available"}},
		{"replicas unset count as 1", chatrv1.ComponentVerifier, func() *appsv1.Deployment {
			d := lostPods(1, 0)
			d.Spec.Replicas = nil
			return d
		}(), verdict{false, chatrv1.ReasonNoReplicasAvailable, "0 of 1 pods available"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantVerdict(t, componentAvailable(tc.c)(statusIn(with(tc.c, tc.d))), tc.want)
		})
	}
}

func TestRoomAvailableCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		deps map[chatrv1.Component]*appsv1.Deployment
		want verdict
	}{
		{"all healthy", allHealthy(), verdict{true, chatrv1.ReasonAvailable, "the API and the streamers have available pods"}},
		{"the verifier down does not stop the room", with(chatrv1.ComponentVerifier, lostPods(1, 0)),
			verdict{true, chatrv1.ReasonAvailable, "the API and the streamers have available pods"}},
		{"no streamer", with(chatrv1.ComponentStreamer, lostPods(2, 0)),
			verdict{false, chatrv1.ReasonComponentUnavailable, "no available pods for: streamer"}},
		{"no API Deployment", with(chatrv1.ComponentAPI, nil),
			verdict{false, chatrv1.ReasonComponentUnavailable, "no available pods for: api"}},
		{"nothing yet lists every component", map[chatrv1.Component]*appsv1.Deployment{},
			verdict{false, chatrv1.ReasonComponentUnavailable, "no available pods for: api, streamer, verifier"}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantVerdict(t, roomAvailable(statusIn(tc.deps)), tc.want) })
	}
}

func TestRoomProgressingCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		deps map[chatrv1.Component]*appsv1.Deployment
		want verdict
	}{
		{"rolled out", allHealthy(), verdict{false, chatrv1.ReasonRolledOut, "no rollout in progress"}},
		{"missing Deployments are not rolling out", map[chatrv1.Component]*appsv1.Deployment{},
			verdict{false, chatrv1.ReasonRolledOut, "no rollout in progress"}},
		{"a streamer rollout", with(chatrv1.ComponentStreamer, rollingDep(2, 3, 1, 2)),
			verdict{true, chatrv1.ReasonRollingOut, "rolling out: streamer (1 of 2 updated pods available)"}},
		{"two at once, in component order", func() map[chatrv1.Component]*appsv1.Deployment {
			deps := with(chatrv1.ComponentVerifier, rollingDep(1, 2, 1, 0))
			deps[chatrv1.ComponentAPI] = rollingDep(2, 2, 0, 2)
			return deps
		}(), verdict{true, chatrv1.ReasonRollingOut, "rolling out: api (0 of 2 updated pods available), verifier (0 of 1 updated pods available)"}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantVerdict(t, roomProgressing(statusIn(tc.deps)), tc.want) })
	}
}

func TestRollingOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    *appsv1.Deployment
		want bool
	}{
		{"no Deployment", nil, false},
		{"complete", healthyDep(2), false},
		{"new spec not yet observed", func() *appsv1.Deployment { d := healthyDep(2); d.Generation = 3; return d }(), true},
		{"not every pod updated", rollingDep(2, 2, 1, 2), true},
		{"old pods still running", rollingDep(2, 3, 2, 2), true},
		{"updated pods not yet available", rollingDep(2, 2, 2, 1), true},
		{"pods lost after the rollout completed", lostPods(2, 1), false},
		{"scaled up, new pods not yet available", func() *appsv1.Deployment {
			d := rollingDep(3, 3, 3, 2)
			return withCondition(d, appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated", "")
		}(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rollingOut(tc.d); got != tc.want {
				t.Errorf("rollingOut = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRoomDegradedCheck(t *testing.T) {
	secret := problem{chatrv1.ReasonSecretNotFound, `Secret "pg" not found: the Deployments wait for it`}
	notOwned := problem{chatrv1.ReasonNotOwned, `Service "lobby-api" exists and is not owned by this ChatRoom: the operator leaves it alone; delete or rename it`}
	deadline := withCondition(rollingDep(2, 3, 1, 2), appsv1.DeploymentProgressing, corev1.ConditionFalse, "ProgressDeadlineExceeded", "timed out")
	for _, tc := range []struct {
		name     string
		deps     map[chatrv1.Component]*appsv1.Deployment
		problems []problem
		want     verdict
	}{
		{"nothing to do", allHealthy(), nil, verdict{false, chatrv1.ReasonAsExpected, "nothing needs attention"}},
		{"the reconcile's problems come first, each once", with(chatrv1.ComponentStreamer, lostPods(2, 0)), []problem{secret, notOwned, secret},
			verdict{true, chatrv1.ReasonSecretNotFound, secret.message + "\n" + notOwned.message + "\nstreamer has no available pod"}},
		{"a rollout past its deadline", with(chatrv1.ComponentStreamer, deadline), nil,
			verdict{true, chatrv1.ReasonProgressDeadlineExceeded, "streamer rollout exceeded its progress deadline: timed out"}},
		{"pods the ReplicaSet cannot create", with(chatrv1.ComponentAPI,
			withCondition(rollingDep(2, 0, 0, 0), appsv1.DeploymentReplicaFailure, corev1.ConditionTrue, "FailedCreate", "quota exceeded")), nil,
			verdict{true, chatrv1.ReasonReplicaFailure, "api cannot create pods: quota exceeded"}},
		{"fewer pods than asked for", with(chatrv1.ComponentAPI, lostPods(3, 1)), nil,
			verdict{true, chatrv1.ReasonReplicasUnavailable, "api has 1 of 3 pods available"}},
		{"a rollout is not a shortage", with(chatrv1.ComponentAPI, rollingDep(3, 3, 1, 1)), nil,
			verdict{false, chatrv1.ReasonAsExpected, "nothing needs attention"}},
		{"the verifier down", with(chatrv1.ComponentVerifier, lostPods(1, 0)), nil,
			verdict{true, chatrv1.ReasonComponentUnavailable, "verifier has no available pod: verifications wait"}},
		{"the verifier down while it rolls out", with(chatrv1.ComponentVerifier, rollingDep(1, 1, 1, 0)), nil,
			verdict{false, chatrv1.ReasonAsExpected, "nothing needs attention"}},
		{"a missing Deployment is no problem of its own", with(chatrv1.ComponentVerifier, nil), nil,
			verdict{false, chatrv1.ReasonAsExpected, "nothing needs attention"}},
		{"a message past the API's limit is cut", allHealthy(), []problem{{chatrv1.ReasonReconcileError, strings.Repeat("x", 40000)}},
			verdict{true, chatrv1.ReasonReconcileError, strings.Repeat("x", 32000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := statusIn(tc.deps, tc.problems...)
			before := len(in.problems)
			wantVerdict(t, roomDegraded(in), tc.want)
			if len(in.problems) != before {
				t.Error("the reconcile's problems were changed")
			}
		})
	}
}

// TestComputeStatus: the whole of the ChatRoom reconciler's part, from the
// checks and the spec, and nothing of the autoscaler's.
// TestRoomDegradedListsOneCausePerLine: kubectl describe shows the
// Degraded message as it is, so each cause is a line of its own.
func TestRoomDegradedListsOneCausePerLine(t *testing.T) {
	in := statusIn(with(chatrv1.ComponentAPI, lostPods(3, 1)),
		problem{chatrv1.ReasonSecretNotFound, `Secret "pg" not found: the Deployments wait for it`})
	in.deps[chatrv1.ComponentVerifier] = lostPods(1, 0)
	lines := strings.Split(roomDegraded(in).message, "\n")
	want := []string{`Secret "pg" not found: the Deployments wait for it`, "api has 1 of 3 pods available", "verifier has no available pod: verifications wait"}
	if !slices.Equal(lines, want) {
		t.Errorf("lines %q, want %q", lines, want)
	}
}

func TestMonitoringCheck(t *testing.T) {
	on := func() *chatrv1.ChatRoom {
		r := defaultedRoom(nil)
		r.Spec.Monitoring.Enabled = true
		return r
	}
	live := &slot{live: buildPodMonitor(on())}
	for _, tc := range []struct {
		name string
		room *chatrv1.ChatRoom
		mon  monitoringState
		want verdict
	}{
		{"off", defaultedRoom(nil), monitoringState{available: true}, verdict{false, chatrv1.ReasonMonitoringDisabled, "spec.monitoring.enabled is false: no PodMonitor"}},
		{"off without the CRDs", defaultedRoom(nil), monitoringState{}, verdict{false, chatrv1.ReasonMonitoringDisabled, "spec.monitoring.enabled is false: no PodMonitor"}},
		{"on without the CRDs", on(), monitoringState{}, verdict{false, chatrv1.ReasonMonitoringCRDsNotFound,
			"spec.monitoring.enabled is true but the cluster does not serve monitoring.coreos.com/v1 PodMonitor: install the Prometheus Operator's CRDs; the operator finds them at the room's next reconcile, no restart needed"}},
		{"discovery failed", on(), monitoringState{err: errors.New("connection refused")}, verdict{false, chatrv1.ReasonReconcileError,
			"could not ask the API server whether it serves PodMonitors: connection refused"}},
		{"not created yet", on(), monitoringState{available: true, slot: &slot{}}, verdict{false, chatrv1.ReasonReconcileError, `PodMonitor "lobby" is not created yet`}},
		{"someone else's", on(), monitoringState{available: true, slot: &slot{notOwned: true}}, verdict{false, chatrv1.ReasonNotOwned, `PodMonitor "lobby" exists and is not owned by this ChatRoom`}},
		{"in place", on(), monitoringState{available: true, slot: live}, verdict{true, chatrv1.ReasonPodMonitorReady,
			`PodMonitor "lobby" scrapes /metrics on port admin (9090) of every pod of the room every 30s`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := statusIn(allHealthy())
			in.desired, in.monitoring = tc.room, tc.mon
			wantVerdict(t, monitoringReady(in), tc.want)
		})
	}
}

func TestComputeStatus(t *testing.T) {
	room := defaultedRoom(func(r *chatrv1.ChatRoom) {
		r.Generation = 4
		r.Spec.Ingress = &chatrv1.IngressSpec{Host: "chat.example.com", TLSSecretName: "tls"}
	})
	earlier := metav1.NewTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	room.Status = chatrv1.ChatRoomStatus{
		Connections: ptr(int64(5)), DesiredStreamers: ptr(int32(3)), Autoscaler: &chatrv1.AutoscalerState{LastScaleUnixMilli: 1},
		Conditions: []metav1.Condition{
			{Type: chatrv1.ConditionScalingActive, Status: metav1.ConditionTrue, Reason: "ValidCounts", LastTransitionTime: earlier},
			{Type: chatrv1.ConditionAvailable, Status: metav1.ConditionTrue, Reason: "Old", Message: "old", ObservedGeneration: 3, LastTransitionTime: earlier},
			{Type: chatrv1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: chatrv1.ReasonAsExpected, LastTransitionTime: earlier},
		},
	}
	deps := with(chatrv1.ComponentStreamer, rollingDep(3, 3, 1, 2))
	deps[chatrv1.ComponentVerifier] = lostPods(1, 0)
	st := computeStatus(room, statusInput{desired: room, deps: deps})

	if st.ObservedGeneration != 4 || st.Streamers != "2/3" || st.PostgresSchema != "team_a__lobby" ||
		st.API != (chatrv1.ComponentStatus{Replicas: 2, ReadyReplicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}) ||
		st.Streamer != (chatrv1.ComponentStatus{Replicas: 3, ReadyReplicas: 2, UpdatedReplicas: 1, AvailableReplicas: 2}) ||
		st.Verifier != (chatrv1.ComponentStatus{Replicas: 1, UpdatedReplicas: 1}) {
		t.Errorf("status %+v", st)
	}
	if want := (chatrv1.Endpoints{URL: "https://chat.example.com/", API: room.ServiceURL(chatrv1.ComponentAPI, portHTTP),
		Streamer: room.ServiceURL(chatrv1.ComponentStreamer, portHTTP)}); st.Endpoints != want || !strings.HasPrefix(want.API, "http://lobby-api.team-a.svc") {
		t.Errorf("endpoints %+v, want %+v", st.Endpoints, want)
	}
	if st.Connections != nil || st.DesiredStreamers != nil || st.CurrentStreamers != nil || st.LastScaleTime != nil || st.Autoscaler != nil {
		t.Errorf("the autoscaler's fields were copied: %+v", st)
	}

	var types []string
	for _, c := range st.Conditions {
		types = append(types, c.Type)
		if c.ObservedGeneration != 4 {
			t.Errorf("%s: observedGeneration %d, want 4", c.Type, c.ObservedGeneration)
		}
	}
	// The room's own conditions stay where they were; new ones come in
	// statusChecks order; the autoscaler's are not this part's.
	if want := []string{"Available", "Degraded", "APIAvailable", "StreamerAvailable", "VerifierAvailable", "Progressing", "Monitoring"}; strings.Join(types, ",") != strings.Join(want, ",") {
		t.Errorf("conditions %v, want %v", types, want)
	}
	for typ, want := range map[string]metav1.ConditionStatus{
		chatrv1.ConditionAvailable: metav1.ConditionTrue, chatrv1.ConditionProgressing: metav1.ConditionTrue,
		chatrv1.ConditionDegraded: metav1.ConditionTrue, chatrv1.ConditionVerifierAvailable: metav1.ConditionFalse,
	} {
		if c := meta.FindStatusCondition(st.Conditions, typ); c.Status != want {
			t.Errorf("%s = %s (%s), want %s", typ, c.Status, c.Message, want)
		}
	}
	// Available kept its status: its transition time stays, with the new
	// reason and message. Degraded turned True: a new transition time.
	if c := meta.FindStatusCondition(st.Conditions, chatrv1.ConditionAvailable); !c.LastTransitionTime.Equal(&earlier) ||
		c.Reason != chatrv1.ReasonAvailable {
		t.Errorf("Available %+v", c)
	}
	if c := meta.FindStatusCondition(st.Conditions, chatrv1.ConditionDegraded); c.LastTransitionTime.Equal(&earlier) {
		t.Errorf("Degraded turned True and kept its transition time: %+v", c)
	}
	if room.Status.Conditions[1].Reason != "Old" {
		t.Error("the room's status was changed")
	}

	// Computed again from its own result, nothing changes.
	room.Status = *st
	if same, err := roomStatusPart.equal(st, computeStatus(room, statusInput{desired: room, deps: deps})); err != nil || !same {
		t.Errorf("a second computation differs: %v", err)
	}
}
