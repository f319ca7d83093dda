package controllers

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

func TestBuildPodDisruptionBudget(t *testing.T) {
	for _, c := range chatrv1.Components {
		t.Run(string(c), func(t *testing.T) {
			p := buildPodDisruptionBudget(defaultedRoom(nil), c)
			if p.Spec.MaxUnavailable.IntValue() != 1 || p.Spec.MinAvailable != nil {
				t.Errorf("budget %+v", p.Spec)
			}
			if *p.Spec.UnhealthyPodEvictionPolicy != policyv1.AlwaysAllow {
				t.Errorf("unhealthy pod eviction %s", *p.Spec.UnhealthyPodEvictionPolicy)
			}
			if p.Spec.Selector.MatchLabels[chatrv1.LabelComponent] != string(c) || p.Spec.Selector.MatchLabels[chatrv1.LabelInstance] != "lobby" {
				t.Errorf("selector %v", p.Spec.Selector.MatchLabels)
			}
		})
	}
}

func TestBuildNetworkPolicy(t *testing.T) {
	cases := []struct {
		c     chatrv1.Component
		ports []string
	}{
		{chatrv1.ComponentAPI, []string{"http", "admin"}},
		{chatrv1.ComponentStreamer, []string{"http", "admin"}},
		{chatrv1.ComponentVerifier, []string{"admin"}},
	}
	for _, tc := range cases {
		t.Run(string(tc.c), func(t *testing.T) {
			np := buildNetworkPolicy(defaultedRoom(nil), tc.c)
			if len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != networkingv1.PolicyTypeIngress {
				t.Errorf("policy types %v: egress must stay open", np.Spec.PolicyTypes)
			}
			if np.Spec.PodSelector.MatchLabels[chatrv1.LabelComponent] != string(tc.c) {
				t.Errorf("pod selector %v", np.Spec.PodSelector.MatchLabels)
			}
			if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 0 {
				t.Fatalf("ingress rules %+v", np.Spec.Ingress)
			}
			var got []string
			for _, p := range np.Spec.Ingress[0].Ports {
				got = append(got, p.Port.StrVal)
			}
			if len(got) != len(tc.ports) {
				t.Fatalf("ports %v, want %v", got, tc.ports)
			}
			for i := range got {
				if got[i] != tc.ports[i] {
					t.Errorf("ports %v, want %v", got, tc.ports)
				}
			}
		})
	}
}
