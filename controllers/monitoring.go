package controllers

import (
	"fmt"
	"sync"

	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// podMonitorGVK is the kind the operator creates for spec.monitoring.
var podMonitorGVK = schema.GroupVersionKind{Group: monv1.SchemeGroupVersion.Group, Version: monv1.Version, Kind: monv1.PodMonitorsKind}

// monitoringAPI tells whether the cluster serves the Prometheus Operator's
// PodMonitor, and starts the watch of PodMonitors the first time it does.
// The operator works without those CRDs: it then creates no PodMonitor,
// never watches them, and a room that asks for monitoring says why in its
// Monitoring condition. The question goes to the manager's RESTMapper, which
// asks the API server's discovery again on every miss, so CRDs installed
// after the operator started are found at the room's next reconcile (at
// most SecretResync later) without a restart.
type monitoringAPI struct {
	mu       sync.Mutex
	mapper   meta.RESTMapper
	watching bool
	// watch starts watching PodMonitors (the controller's Watch of a
	// source.Kind on the manager's cache); it is called once.
	watch func() error
}

// available reports whether PodMonitors can be created, starting their
// watch the first time it finds them. An error is a failed discovery (the
// API server did not answer), not a missing CRD.
func (m *monitoringAPI) available() (bool, error) {
	if m == nil {
		return false, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watching {
		return true, nil
	}
	_, err := m.mapper.RESTMapping(podMonitorGVK.GroupKind(), podMonitorGVK.Version)
	if meta.IsNoMatchError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("while looking for the %s API: %w", podMonitorGVK, err)
	}
	if err := m.watch(); err != nil {
		return false, fmt.Errorf("while starting the watch of PodMonitors: %w", err)
	}
	m.watching = true
	return true, nil
}

// monitoringState is what the reconcile found about the room's
// monitoring, for the Monitoring condition.
type monitoringState struct {
	// available: the cluster serves PodMonitors.
	available bool
	// err: discovery failed, so availability is unknown.
	err error
	// slot is the PodMonitor's slot (nil when not available).
	slot *slot
}

// planMonitoring asks whether PodMonitors can be made. Every room asks,
// monitoring on or off, since a room that turned it off may still have a
// PodMonitor of ours to delete; once the API is found the answer is a
// field read.
func (r *ChatRoomReconciler) planMonitoring() monitoringState {
	ok, err := r.Monitoring.available()
	return monitoringState{available: ok, err: err}
}

// monitoringReady checks the room's PodMonitor: not asked for, not
// possible (no CRDs, or discovery failed), not in place (yet), or in place.
func monitoringReady(in statusInput) verdict {
	spec := in.desired.Spec.Monitoring
	m := in.monitoring
	switch {
	case !spec.Enabled:
		return verdict{false, chatrv1.ReasonMonitoringDisabled, "spec.monitoring.enabled is false: no PodMonitor"}
	case m.err != nil:
		return verdict{false, chatrv1.ReasonReconcileError, "could not ask the API server whether it serves PodMonitors: " + m.err.Error()}
	case !m.available:
		return verdict{false, chatrv1.ReasonMonitoringCRDsNotFound, fmt.Sprintf(
			"spec.monitoring.enabled is true but the cluster does not serve %s %s: install the Prometheus Operator's CRDs; the operator finds them at the room's next reconcile, no restart needed",
			podMonitorGVK.GroupVersion(), podMonitorGVK.Kind)}
	case m.slot == nil || m.slot.notOwned:
		return verdict{false, chatrv1.ReasonNotOwned, fmt.Sprintf("PodMonitor %q exists and is not owned by this ChatRoom", in.desired.PodMonitorName())}
	case m.slot.live == nil:
		return verdict{false, chatrv1.ReasonReconcileError, fmt.Sprintf("PodMonitor %q is not created yet", in.desired.PodMonitorName())}
	}
	return verdict{true, chatrv1.ReasonPodMonitorReady, fmt.Sprintf(
		"PodMonitor %q scrapes /metrics on port %s (%d) of every pod of the room every %s", in.desired.PodMonitorName(), portAdminName, portAdmin, spec.Interval)}
}
