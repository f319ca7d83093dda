package localpods

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// These tests need no API server.

func TestRankVictims(t *testing.T) {
	t0 := time.Unix(1000, 0)
	vs := []victim{
		{name: "ready-cheap-old", running: true, ready: true, cost: -10, readySince: t0, seq: 1},
		{name: "ready-dear", running: true, ready: true, cost: 100, readySince: t0, seq: 2},
		{name: "notready-dear", running: true, ready: false, cost: 100, seq: 3},
		{name: "pending", running: false, cost: 1000, seq: 4},
		{name: "ready-cheap-newer-ready", running: true, ready: true, cost: -10, readySince: t0.Add(time.Second), seq: 0},
		{name: "ready-mid-restarted", running: true, ready: true, cost: 5, readySince: t0, restarts: 2, seq: 5},
		{name: "ready-mid", running: true, ready: true, cost: 5, readySince: t0, seq: 6},
		{name: "ready-mid-older", running: true, ready: true, cost: 5, readySince: t0, seq: 1},
	}
	rankVictims(vs)
	var got []string
	for _, v := range vs {
		got = append(got, v.name)
	}
	want := []string{"pending", "notready-dear", "ready-cheap-newer-ready", "ready-cheap-old",
		"ready-mid-restarted", "ready-mid", "ready-mid-older", "ready-dear"}
	if !slices.Equal(got, want) {
		t.Fatalf("order\n got %v\nwant %v", got, want)
	}
}

func TestDeletionCost(t *testing.T) {
	for v, want := range map[string]int32{"": 0, "12": 12, "-7": -7, "x": 0, "99999999999": 0} {
		a := map[string]string{}
		if v != "" {
			a[DeletionCostAnnotation] = v
		}
		if got := deletionCost(a); got != want {
			t.Errorf("%q: %d, want %d", v, got, want)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "x", "B": "$(A)"}
	for in, want := range map[string]string{
		"plain":          "plain",
		"$(A)":           "x",
		"a-$(A)-$(A)":    "a-x-x",
		"$$(A)":          "$(A)",
		"$(MISSING)":     "$(MISSING)",
		"$(B)":           "$(A)", // no recursion
		"$(A":            "$(A",
		"cost $5":        "cost $5",
		"end$":           "end$",
		"$$$(A)":         "$x",
		"$(A)$(MISSING)": "x$(MISSING)",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestListenPort(t *testing.T) {
	for in, want := range map[string]int32{":8080": 8080, "0.0.0.0:9090": 9090, "": 8080, "127.0.0.1": 8080, ":http": 8080} {
		if got := listenPort(in, 8080); got != want {
			t.Errorf("listenPort(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestFieldAndResourceValues(t *testing.T) {
	facts := podFacts{name: "p", namespace: "n", uid: "u", nodeName: "node", serviceAccount: "sa",
		labels: map[string]string{"app": "a"}, annotations: map[string]string{"x/y": "z"}}
	for path, want := range map[string]string{
		"metadata.name": "p", "metadata.namespace": "n", "metadata.uid": "u", "spec.nodeName": "node",
		"spec.serviceAccountName": "sa", "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1",
		"metadata.labels['app']": "a", "metadata.annotations['x/y']": "z", "metadata.labels['none']": "",
	} {
		if got, err := fieldValue(path, facts); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", path, got, err, want)
		}
	}
	if _, err := fieldValue("spec.bogus", facts); err == nil {
		t.Error("unknown fieldRef accepted")
	}
	ctr := &corev1.Container{Resources: corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
	}}
	for _, c := range []struct {
		res, div, want string
	}{
		{"limits.cpu", "", "2"}, {"limits.cpu", "1m", "1500"}, {"limits.memory", "1Mi", "256"},
		{"requests.cpu", "1m", "250"}, {"requests.memory", "", "0"},
	} {
		sel := &corev1.ResourceFieldSelector{Resource: c.res}
		if c.div != "" {
			sel.Divisor = resource.MustParse(c.div)
		}
		if got, err := resourceValue(sel, ctr); err != nil || got != c.want {
			t.Errorf("%s/%s: %q %v, want %q", c.res, c.div, got, err, c.want)
		}
	}
}

func TestPrefixMatch(t *testing.T) {
	for _, c := range []struct {
		prefix, path string
		want         bool
	}{
		{"/", "/anything", true}, {"/api", "/api", true}, {"/api", "/api/x", true}, {"/api", "/apix", false},
		{"/api/", "/api", true}, {"/api/stream", "/api/streams", false}, {"/api/stream", "/api/stream/x", true},
	} {
		if got := prefixMatch(c.prefix, c.path); got != c.want {
			t.Errorf("prefixMatch(%q, %q) = %v", c.prefix, c.path, got)
		}
	}
	in := &Ingress{routes: ChatRoomRoutes("s", "a")}
	// ChatRoomRoutes is already longest-first.
	for path, backend := range map[string]string{"/": "s", "/api/stream": "s", "/api/ws": "s", "/api/agents": "a", "/api": "a", "/apix": "s", "/index.html": "s"} {
		if i := in.match(path); i < 0 || in.routes[i].Backend != backend {
			t.Errorf("%s -> %d", path, i)
		}
	}
}

func TestDeploymentStatus(t *testing.T) {
	now := time.Unix(10000, 0)
	three := int32(3)
	deadline := int32(60)
	mu := intstr.FromInt32(1)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "d", Generation: 4},
		Spec: appsv1.DeploymentSpec{Replicas: &three, ProgressDeadlineSeconds: &deadline, MinReadySeconds: 5,
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &mu}}},
	}
	pods := []podState{
		{hash: "new", ready: true, readySince: now.Add(-time.Minute)},
		{hash: "new", ready: true, readySince: now.Add(-time.Second)}, // not yet available (minReadySeconds)
		{hash: "old", ready: true, readySince: now.Add(-time.Hour)},
		{hash: "old", terminating: true, ready: true},
	}
	st := deploymentStatus(d, "new", pods, now)
	if st.ObservedGeneration != 4 || st.Replicas != 3 || st.UpdatedReplicas != 2 || st.ReadyReplicas != 3 ||
		st.AvailableReplicas != 2 || st.UnavailableReplicas != 1 || st.TerminatingReplicas == nil || *st.TerminatingReplicas != 1 {
		t.Fatalf("status %+v", st)
	}
	d.Status = st
	if c := findCondition(st.Conditions, appsv1.DeploymentAvailable); c.Status != corev1.ConditionTrue {
		t.Errorf("2 available of 3 with maxUnavailable 1: %+v", c)
	}
	if c := findCondition(st.Conditions, appsv1.DeploymentProgressing); c.Status != corev1.ConditionTrue || c.Reason != "ReplicaSetUpdated" {
		t.Errorf("Progressing %+v", c)
	}
	// Nothing changes for longer than the deadline: ProgressDeadlineExceeded,
	// and it stays so.
	// (10s on, the second pod has been ready for minReadySeconds: progress.)
	d.Status = deploymentStatus(d, "new", pods, now.Add(10*time.Second))
	if d.Status.AvailableReplicas != 3 {
		t.Fatalf("status 10s on: %+v", d.Status)
	}
	later := deploymentStatus(d, "new", pods, now.Add(40*time.Second))
	if c := findCondition(later.Conditions, appsv1.DeploymentProgressing); c.Reason != "ReplicaSetUpdated" || !c.LastUpdateTime.Equal(&metav1.Time{Time: now.Add(10 * time.Second)}) {
		t.Errorf("within the deadline: %+v", c)
	}
	d.Status = later
	late := deploymentStatus(d, "new", pods, now.Add(2*time.Minute))
	if c := findCondition(late.Conditions, appsv1.DeploymentProgressing); c.Status != corev1.ConditionFalse || c.Reason != "ProgressDeadlineExceeded" {
		t.Errorf("past the deadline: %+v", c)
	}
	d.Status = late
	if c := findCondition(deploymentStatus(d, "new", pods, now.Add(3*time.Minute)).Conditions, appsv1.DeploymentProgressing); c.Reason != "ProgressDeadlineExceeded" {
		t.Errorf("deadline exceeded forgotten: %+v", c)
	}
	// Complete: all updated, ready and available.
	done := []podState{{hash: "new", ready: true}, {hash: "new", ready: true}, {hash: "new", ready: true}}
	st = deploymentStatus(d, "new", done, now.Add(4*time.Minute))
	if c := findCondition(st.Conditions, appsv1.DeploymentProgressing); c.Status != corev1.ConditionTrue || c.Reason != "NewReplicaSetAvailable" {
		t.Errorf("complete: %+v", c)
	}
	// Unavailable below replicas - maxUnavailable.
	st = deploymentStatus(d, "new", done[:1], now)
	if c := findCondition(st.Conditions, appsv1.DeploymentAvailable); c.Status != corev1.ConditionFalse || c.Reason != "MinimumReplicasUnavailable" {
		t.Errorf("1 of 3: %+v", c)
	}
}

func TestMaxUnavailable(t *testing.T) {
	mk := func(replicas int32, surge, unavail *intstr.IntOrString, recreate bool) *appsv1.Deployment {
		d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: &replicas}}
		if recreate {
			d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
		} else if surge != nil || unavail != nil {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: surge, MaxUnavailable: unavail}
		}
		return d
	}
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(n int32) *intstr.IntOrString { v := intstr.FromInt32(n); return &v }
	for _, c := range []struct {
		d    *appsv1.Deployment
		want int32
	}{
		{mk(4, nil, nil, false), 1},            // 25% of 4
		{mk(2, nil, nil, false), 0},            // 25% of 2 rounds down
		{mk(3, num(0), num(0), false), 1},      // never both 0
		{mk(10, pct("25%"), num(0), false), 0}, // the operator's setting
		{mk(3, nil, nil, true), 0},             // Recreate
		{mk(2, nil, num(5), false), 2},         // at most replicas
	} {
		if got := maxUnavailable(c.d); got != c.want {
			t.Errorf("%+v: %d, want %d", c.d.Spec, got, c.want)
		}
	}
}
