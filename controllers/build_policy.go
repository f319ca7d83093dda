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

// buildNetworkPolicy returns the NetworkPolicy of component c, from
// spec.networkPolicy and its defaults (api/v1alpha1/chatroom_network.go).
//
// Ingress: the API and the streamers accept their main port only from the
// ingress controller (ingressFrom), so no other pod can reach them directly
// and forge the X-Forwarded-For that trustedProxies makes them believe; the
// admin port (metrics) only from monitoring (monitoringFrom); the API's
// moderation port from moderation.allowFrom alone (nobody by default). The verifier
// serves nothing else. No component calls another (they meet in Postgres
// and Redis), so there is no rule between the room's own pods. Kubelet probes
// and host-network ingress controllers come from the node, which network
// plugins allow to reach its own pods whatever the policy says.
//
// Egress: DNS, Postgres, Redis (every component: the verifier hands its
// retention summaries to the operator through it) and Moltbook (the
// verifier), by port to any address unless
// peers are given, plus any extra rules. Nothing reaches the Kubernetes API:
// no component uses it (the pods mount no ServiceAccount token).
func buildNetworkPolicy(room *chatrv1.ChatRoom, c chatrv1.Component) *networkingv1.NetworkPolicy {
	np := room.Spec.NetworkPolicy
	var ingress []networkingv1.NetworkPolicyIngressRule
	if c != chatrv1.ComponentVerifier {
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{
			From: room.IngressPeers(), Ports: []networkingv1.NetworkPolicyPort{namedPort(portHTTPName)}})
	}
	ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{
		From: room.MonitoringPeers(), Ports: []networkingv1.NetworkPolicyPort{namedPort(portAdminName)}})
	if peers := room.Spec.Moderation.AllowFrom; c == chatrv1.ComponentAPI && len(peers) > 0 {
		// The moderation port: only the peers named (none by default; an
		// empty From would admit everyone). kubectl port-forward enters
		// the pod itself and is not subject to the policy.
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{
			From: peers, Ports: []networkingv1.NetworkPolicyPort{namedPort(portModerationName)}})
	}

	types := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	var egress []networkingv1.NetworkPolicyEgressRule
	if !np.Egress.AllowAll {
		types = append(types, networkingv1.PolicyTypeEgress)
		egress = egressRules(room, c)
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: objectMeta(room, room.ComponentName(c), room.ComponentLabels(c)),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: room.SelectorLabels(c)},
			PolicyTypes: types,
			Ingress:     ingress,
			Egress:      egress,
		},
	}
}

// egressRules returns the destinations component c may reach.
func egressRules(room *chatrv1.ChatRoom, c chatrv1.Component) []networkingv1.NetworkPolicyEgressRule {
	e := room.Spec.NetworkPolicy.Egress
	rule := func(d chatrv1.EgressDestination, protocols []corev1.Protocol, def ...int32) networkingv1.NetworkPolicyEgressRule {
		var ports []networkingv1.NetworkPolicyPort
		for _, n := range d.PortsOr(def...) {
			for _, proto := range protocols {
				ports = append(ports, numberedPort(proto, n))
			}
		}
		r := networkingv1.NetworkPolicyEgressRule{Ports: ports}
		for _, p := range d.To {
			r.To = append(r.To, *p.DeepCopy())
		}
		return r
	}
	tcp := []corev1.Protocol{corev1.ProtocolTCP}
	rules := []networkingv1.NetworkPolicyEgressRule{
		rule(e.DNS, []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolTCP}, chatrv1.DefaultDNSPort),
		rule(e.Postgres, tcp, chatrv1.DefaultPostgresPort),
	}
	rules = append(rules, rule(e.Redis, tcp, chatrv1.DefaultRedisPort))
	if c == chatrv1.ComponentVerifier {
		rules = append(rules, rule(e.Moltbook, tcp, room.MoltbookPort()))
	}
	for _, x := range e.Extra {
		rules = append(rules, *x.DeepCopy())
	}
	return rules
}

// namedPort is a TCP port by its container port name.
func namedPort(name string) networkingv1.NetworkPolicyPort {
	tcp := corev1.ProtocolTCP
	p := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &p}
}

// numberedPort is a port by number.
func numberedPort(proto corev1.Protocol, n int32) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(n)
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
}
