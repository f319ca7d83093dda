package controllers

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

func TestBuildPodMonitor(t *testing.T) {
	if pm := buildPodMonitor(defaultedRoom(nil)); pm != nil {
		t.Fatalf("monitoring off built %+v", pm)
	}
	room := defaultedRoom(func(r *chatrv1.ChatRoom) {
		r.Spec.Monitoring = chatrv1.MonitoringSpec{Enabled: true, Labels: map[string]string{
			"release": "prom", chatrv1.LabelManagedBy: "someone-else"}}
	})
	pm := buildPodMonitor(room)
	if pm.Name != "lobby" || pm.Namespace != "team-a" || !metav1.IsControlledBy(pm, room) {
		t.Errorf("metadata %+v", pm.ObjectMeta)
	}
	if pm.Labels["release"] != "prom" || pm.Labels[chatrv1.LabelManagedBy] != chatrv1.ManagerName {
		t.Errorf("labels %v: the asked ones added, the operator's winning", pm.Labels)
	}
	want := map[string]string{chatrv1.LabelName: chatrv1.AppName, chatrv1.LabelInstance: "lobby"}
	if !reflect.DeepEqual(pm.Spec.Selector.MatchLabels, want) {
		t.Errorf("selector %v, want %v", pm.Spec.Selector.MatchLabels, want)
	}
	// The selector is a subset of every component's selector labels.
	for _, c := range chatrv1.Components {
		for k, v := range want {
			if room.SelectorLabels(c)[k] != v {
				t.Errorf("%s pods not selected: %v", c, room.SelectorLabels(c))
			}
		}
	}
	ep := pm.Spec.PodMetricsEndpoints
	if len(ep) != 1 || *ep[0].Port != "admin" || ep[0].Path != "/metrics" || ep[0].Interval != "30s" {
		t.Errorf("endpoints %+v", ep)
	}
	if !reflect.DeepEqual(pm.Spec.PodTargetLabels, []string{chatrv1.LabelComponent}) {
		t.Errorf("podTargetLabels %v", pm.Spec.PodTargetLabels)
	}
}
