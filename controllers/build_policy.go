package controllers

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// buildPodDisruptionBudget returns the PDB of component c: voluntary
// evictions (node drains, upgrades) take one pod at a time. maxUnavailable
// rather than minAvailable, so a one-replica component never blocks a drain;
// AlwaysAllow, so a crash-looping pod never does either.
func buildPodDisruptionBudget(room *chatrv1.ChatRoom, c chatrv1.Component) *policyv1.PodDisruptionBudget {
	one := intstr.FromInt32(1)
	always := policyv1.AlwaysAllow
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: objectMeta(room, room.ComponentName(c), room.ComponentLabels(c)),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable:             &one,
			Selector:                   &metav1.LabelSelector{MatchLabels: room.SelectorLabels(c)},
			UnhealthyPodEvictionPolicy: &always,
		},
	}
}

// buildNetworkPolicy returns the ingress NetworkPolicy of component c. Pods
// accept connections only on the ports they serve: the API and streamers on
// the main port (from anywhere: the ingress controller's namespace is not
// known) and all of them on the admin port (probes, Prometheus). Egress is
// left open, since Postgres, Redis and Moltbook may live anywhere.
func buildNetworkPolicy(room *chatrv1.ChatRoom, c chatrv1.Component) *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := func(name string) networkingv1.NetworkPolicyPort {
		p := intstr.FromString(name)
		return networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &p}
	}
	ports := []networkingv1.NetworkPolicyPort{port(portAdminName)}
	if c != chatrv1.ComponentVerifier {
		ports = append([]networkingv1.NetworkPolicyPort{port(portHTTPName)}, ports...)
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: objectMeta(room, room.ComponentName(c), room.ComponentLabels(c)),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: room.SelectorLabels(c)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: ports}},
		},
	}
}
