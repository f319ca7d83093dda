package controllers

import (
	"maps"

	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// buildPodMonitor returns the room's PodMonitor, or nil when
// spec.monitoring.enabled is off. It selects every pod of the room (API,
// streamers, verifier: the verifier has no Service, which is why this is a
// PodMonitor and not a ServiceMonitor) and scrapes /metrics on the admin
// port. Each series gets the pod's component label (as
// app_kubernetes_io_component) beside the namespace, pod and job labels the
// Prometheus Operator adds.
// spec.monitoring.labels are added; the operator's own labels win, since
// they are how the operator finds its children.
func buildPodMonitor(room *chatrv1.ChatRoom) *monv1.PodMonitor {
	spec := room.Spec.Monitoring
	if !spec.Enabled {
		return nil
	}
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, room.CommonLabels())
	port := portAdminName
	return &monv1.PodMonitor{
		ObjectMeta: objectMeta(room, room.PodMonitorName(), labels),
		Spec: monv1.PodMonitorSpec{
			Selector: metav1.LabelSelector{MatchLabels: map[string]string{
				chatrv1.LabelName:     chatrv1.AppName,
				chatrv1.LabelInstance: room.Name,
			}},
			PodTargetLabels: []string{chatrv1.LabelComponent},
			PodMetricsEndpoints: []monv1.PodMetricsEndpoint{{
				Port:     &port,
				Path:     "/metrics",
				Interval: monv1.Duration(spec.Interval),
			}},
		},
	}
}

// podMonitorSlot keeps the PodMonitor in line; a nil desired PodMonitor
// (monitoring off) means an existing one of ours is deleted.
func podMonitorSlot(room *chatrv1.ChatRoom, d *monv1.PodMonitor) *slot {
	s := &slot{
		kind: "PodMonitor", name: room.PodMonitorName(),
		newObj: func() client.Object { return &monv1.PodMonitor{} },
		same: func(desired, live client.Object) bool {
			return equality.Semantic.DeepDerivative(desired.(*monv1.PodMonitor).Spec, live.(*monv1.PodMonitor).Spec)
		},
		merge: func(live, desired client.Object) {
			live.(*monv1.PodMonitor).Spec = desired.(*monv1.PodMonitor).Spec
		},
	}
	if d != nil {
		s.desired = d
		s.hashInput = []any{d.Labels, d.Spec}
	}
	return s
}
