package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/autoscale"
)

// TestInvalidAutoscalingIsRejected sends rooms with a bad autoscaling
// policy to the real API server: the CRD schema refuses each, naming the
// field, so the autoscaler never sees a policy Policy.Validate would refuse.
func TestInvalidAutoscalingIsRejected(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	d := func(s string) *metav1.Duration {
		v, err := time.ParseDuration(s)
		must(err)
		return &metav1.Duration{Duration: v}
	}
	cases := []struct {
		name   string
		change func(*chatrv1.StreamerAutoscalingSpec)
		want   string
	}{
		{"no scale-up at all", func(a *chatrv1.StreamerAutoscalingSpec) {
			a.ScaleUp.MaxPods, a.ScaleUp.MaxPercent = ptr(int32(0)), ptr(int32(0))
		}, "scaleUp: maxPods or maxPercent must be positive"},
		{"no scale-down at all", func(a *chatrv1.StreamerAutoscalingSpec) {
			a.ScaleDown.MaxPods, a.ScaleDown.MaxPercent = ptr(int32(0)), ptr(int32(0))
		}, "scaleDown: maxPods or maxPercent must be positive"},
		{"scale-down tolerance of 100 %", func(a *chatrv1.StreamerAutoscalingSpec) { a.ScaleDown.TolerancePercent = ptr(int32(100)) },
			"spec.streamer.autoscaling.scaleDown.tolerancePercent"},
		{"scale-down percent above 100", func(a *chatrv1.StreamerAutoscalingSpec) { a.ScaleDown.MaxPercent = ptr(int32(150)) },
			"spec.streamer.autoscaling.scaleDown.maxPercent"},
		{"negative spare pods", func(a *chatrv1.StreamerAutoscalingSpec) { a.SparePods = ptr(int32(-1)) },
			"spec.streamer.autoscaling.sparePods"},
		{"evaluation interval too short", func(a *chatrv1.StreamerAutoscalingSpec) { a.EvaluationInterval = d("500ms") },
			"evaluationInterval must be between 1s and 5m"},
		{"rate-limit period of zero", func(a *chatrv1.StreamerAutoscalingSpec) { a.RateLimitPeriod = d("0s") },
			"rateLimitPeriod must be between 1s and 1h"},
		{"window too long", func(a *chatrv1.StreamerAutoscalingSpec) { a.ScaleDown.StabilizationWindow = d("2h") },
			"stabilizationWindow must be between 0s and 1h"},
		{"max above 1000", func(a *chatrv1.StreamerAutoscalingSpec) { a.MaxReplicas = 1001 },
			"spec.streamer.autoscaling.maxReplicas"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoom(ns, "r"+string(rune('a'+i)), "s")
			tc.change(&r.Spec.Streamer.Autoscaling)
			err := k8s.Create(context.Background(), r)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("created or failed otherwise: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}

	// One of the two limits at 0 is fine (the other one limits), and what
	// the API server stores is a valid policy.
	r := newRoom(ns, "ok", "s")
	r.Spec.Streamer.Autoscaling.ScaleUp.MaxPods = ptr(int32(0))
	r.Spec.Streamer.Autoscaling.ScaleDown.MaxPercent = ptr(int32(0))
	r.Spec.Streamer.Autoscaling.SparePods = ptr(int32(0))
	must(k8s.Create(context.Background(), r))
	must(get(r))
	as := r.Spec.Streamer.Autoscaling
	if *as.ScaleUp.MaxPods != 0 || *as.ScaleUp.MaxPercent != 100 || *as.ScaleDown.MaxPercent != 0 || *as.SparePods != 0 {
		t.Errorf("stored %+v", as)
	}
	if err := as.Policy().Validate(); err != nil {
		t.Errorf("stored policy invalid: %v", err)
	}
	if as.Policy().MaxReplicas != autoscale.DefaultPolicy().MaxReplicas {
		t.Errorf("default maxReplicas %d", as.MaxReplicas)
	}
}

// TestCRDShowsTheAutoscaler: kubectl get -o wide shows the scaling
// conditions, the last scale time, the connections and the post rate.
func TestCRDShowsTheAutoscaler(t *testing.T) {
	needEnv(t)
	var crd apiextensionsv1.CustomResourceDefinition
	must(k8s.Get(context.Background(), client.ObjectKey{Name: "chatrooms.chatr.ai"}, &crd))
	cols := map[string]string{}
	for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		cols[c.Name] = c.JSONPath
	}
	for name, path := range map[string]string{
		"Active":      `.status.conditions[?(@.type=="ScalingActive")].reason`,
		"Limited":     `.status.conditions[?(@.type=="ScalingLimited")].reason`,
		"Last Scale":  ".status.lastScaleTime",
		"Connections": ".status.connections",
		"Posts/s":     ".status.postsPerSecond",
	} {
		if cols[name] != path {
			t.Errorf("printer column %s = %q, want %q", name, cols[name], path)
		}
	}
}
