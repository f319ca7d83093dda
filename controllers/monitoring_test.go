package controllers

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// monitoringCRDs are the Prometheus Operator's CRDs, generated from the Go
// module of their types (hack/generate-operator.sh).
var monitoringCRDs = filepath.Join("..", "test", "crds", "monitoring.coreos.com")

// TestMonitoringWithoutAndThenWithTheCRDs: the suite's API server starts
// without the Prometheus Operator's CRDs. A room asking for monitoring is
// built and turns Available all the same, and its Monitoring condition says
// the CRDs are missing. Once the CRDs are installed (from the module, as a
// cluster admin would), the running operator finds them at the room's next
// reconcile, starts watching PodMonitors and creates the room's: owned by the
// room, selecting every pod of the room, scraping the admin port's /metrics
// at the asked interval, carrying the asked labels. A deleted PodMonitor is
// recreated (the watch works); turning monitoring off deletes it.
func TestMonitoringWithoutAndThenWithTheCRDs(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecrets(t, ns, "s")
	room := newRoom(ns, "watched", "s")
	room.Spec.Monitoring = chatrv1.MonitoringSpec{Enabled: true, Interval: "15s", Labels: map[string]string{"release": "kube-prometheus-stack"}}
	createRoom(t, room)
	setDeploymentStatus(t, deployment(room, chatrv1.ComponentAPI), healthy(2))
	setDeploymentStatus(t, deployment(room, chatrv1.ComponentStreamer), healthy(2))
	setDeploymentStatus(t, deployment(room, chatrv1.ComponentVerifier), healthy(1))

	wantCondition(t, room, chatrv1.ConditionAvailable, metav1.ConditionTrue, chatrv1.ReasonAvailable)
	wantCondition(t, room, chatrv1.ConditionMonitoring, metav1.ConditionFalse, chatrv1.ReasonMonitoringCRDsNotFound)
	must(get(room))
	if msg := condition(room, chatrv1.ConditionMonitoring).Message; !strings.Contains(msg, "monitoring.coreos.com/v1 PodMonitor") || !strings.Contains(msg, "install") {
		t.Errorf("the Monitoring condition does not say what is missing and what to do: %q", msg)
	}

	if _, err := envtest.InstallCRDs(restCfg, envtest.CRDInstallOptions{Paths: []string{monitoringCRDs}, ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("installing the monitoring CRDs: %v", err)
	}

	pm := &monv1.PodMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.PodMonitorName()}}
	testenv.Eventually(t, 30*time.Second, "PodMonitor created once the CRDs exist", func() error { return get(pm) })
	wantCondition(t, room, chatrv1.ConditionMonitoring, metav1.ConditionTrue, chatrv1.ReasonPodMonitorReady)
	wantCondition(t, room, chatrv1.ConditionAvailable, metav1.ConditionTrue, chatrv1.ReasonAvailable)

	must(get(room))
	if !metav1.IsControlledBy(pm, room) {
		t.Errorf("the PodMonitor is not controlled by the room: %v", pm.OwnerReferences)
	}
	if pm.Labels["release"] != "kube-prometheus-stack" || pm.Labels[chatrv1.LabelManagedBy] != chatrv1.ManagerName {
		t.Errorf("PodMonitor labels %v", pm.Labels)
	}
	wantSelector := map[string]string{chatrv1.LabelName: chatrv1.AppName, chatrv1.LabelInstance: room.Name}
	if !reflect.DeepEqual(pm.Spec.Selector.MatchLabels, wantSelector) || len(pm.Spec.Selector.MatchExpressions) > 0 {
		t.Errorf("selector %+v, want exactly %v", pm.Spec.Selector, wantSelector)
	}
	// The selector picks every component's pods, as their templates label them.
	for _, c := range chatrv1.Components {
		d := deployment(room, c)
		must(get(d))
		for k, v := range wantSelector {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("%s pods are labelled %v: the PodMonitor does not select them", c, d.Spec.Template.Labels)
			}
		}
		if ports := d.Spec.Template.Spec.Containers[0].Ports; !hasPort(ports, portAdminName, portAdmin) {
			t.Errorf("%s pods have no %s port %d: %v", c, portAdminName, portAdmin, ports)
		}
	}
	if eps := pm.Spec.PodMetricsEndpoints; len(eps) != 1 || eps[0].Port == nil || *eps[0].Port != portAdminName ||
		eps[0].Path != "/metrics" || eps[0].Interval != "15s" {
		t.Errorf("endpoints %+v, want port %s, /metrics every 15s", eps, portAdminName)
	}

	// Watched: a deleted PodMonitor comes back without waiting for a resync.
	uid := pm.UID
	must(k8s.Delete(ctx, pm))
	testenv.Eventually(t, 30*time.Second, "PodMonitor recreated", func() error {
		fresh := &monv1.PodMonitor{ObjectMeta: pm.ObjectMeta}
		if err := get(fresh); err != nil {
			return err
		}
		if fresh.UID == uid {
			return fmt.Errorf("still the deleted one")
		}
		return nil
	})

	updateRoom(t, room, func(r *chatrv1.ChatRoom) { r.Spec.Monitoring.Enabled = false })
	testenv.Eventually(t, 30*time.Second, "PodMonitor deleted with monitoring off", func() error {
		err := get(&monv1.PodMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.PodMonitorName()}})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
	wantCondition(t, room, chatrv1.ConditionMonitoring, metav1.ConditionFalse, chatrv1.ReasonMonitoringDisabled)
}

func hasPort(ports []corev1.ContainerPort, name string, port int32) bool {
	for _, p := range ports {
		if p.Name == name && p.ContainerPort == port {
			return true
		}
	}
	return false
}
