package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

func TestBuildService(t *testing.T) {
	for _, c := range servedComponents {
		t.Run(string(c), func(t *testing.T) {
			s := buildService(defaultedRoom(nil), c)
			if s.Name != "lobby-"+string(c) || s.Spec.Type != corev1.ServiceTypeClusterIP {
				t.Errorf("name %s type %s", s.Name, s.Spec.Type)
			}
			if s.Spec.Selector[chatrv1.LabelComponent] != string(c) || s.Spec.Selector[chatrv1.LabelInstance] != "lobby" {
				t.Errorf("selector %v", s.Spec.Selector)
			}
			ports := map[string]corev1.ServicePort{}
			for _, p := range s.Spec.Ports {
				ports[p.Name] = p
			}
			if p := ports["http"]; p.Port != 8080 || p.TargetPort.StrVal != portHTTPName {
				t.Errorf("http port %+v", p)
			}
			if p := ports["metrics"]; p.Port != 9090 || p.TargetPort.StrVal != portAdminName {
				t.Errorf("metrics port %+v", p)
			}
		})
	}
}

func TestBuildServiceAccount(t *testing.T) {
	sa := buildServiceAccount(defaultedRoom(nil))
	if sa.Name != "lobby-chatr" || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("service account %+v", sa)
	}
}
