package v1alpha1

import (
	"net/url"
	"strconv"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The network policy defaults are applied when the operator builds the
// policies, not stored in the spec (like the resources' defaults): an empty
// list of peers would otherwise be ambiguous between "the default" and
// "nobody", and a stored default would not follow a better one later.
const (
	DefaultDNSPort      = int32(53)
	DefaultPostgresPort = int32(5432)
	DefaultRedisPort    = int32(6379)
)

// DefaultIngressFrom is who may connect to the API and streamers' main port
// when spec.networkPolicy.ingressFrom is empty: ingress-nginx, installed the
// usual way (its chart labels its pods app.kubernetes.io/name=ingress-nginx,
// in a namespace of that name, which Kubernetes labels with its name).
func DefaultIngressFrom() []networkingv1.NetworkPolicyPeer {
	return []networkingv1.NetworkPolicyPeer{{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "ingress-nginx"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "ingress-nginx"}},
	}}
}

// DefaultMonitoringFrom is who may connect to the admin port when
// spec.networkPolicy.monitoringFrom is empty: Prometheus pods (as the
// Prometheus operator and the prometheus chart label them), in any namespace.
func DefaultMonitoringFrom() []networkingv1.NetworkPolicyPeer {
	return []networkingv1.NetworkPolicyPeer{{
		NamespaceSelector: &metav1.LabelSelector{},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "prometheus"}},
	}}
}

// IngressPeers returns the peers allowed on the main port (ingressFrom or
// its default); nil when allowIngressFromAnywhere is set.
func (r *ChatRoom) IngressPeers() []networkingv1.NetworkPolicyPeer {
	np := r.Spec.NetworkPolicy
	switch {
	case np.AllowIngressFromAnywhere:
		return nil
	case len(np.IngressFrom) > 0:
		return copyPeers(np.IngressFrom)
	default:
		return DefaultIngressFrom()
	}
}

// MonitoringPeers returns the peers allowed on the admin port.
func (r *ChatRoom) MonitoringPeers() []networkingv1.NetworkPolicyPeer {
	if from := r.Spec.NetworkPolicy.MonitoringFrom; len(from) > 0 {
		return copyPeers(from)
	}
	return DefaultMonitoringFrom()
}

// PortsOr returns the destination's ports, or def when none are set.
func (d EgressDestination) PortsOr(def ...int32) []int32 {
	if len(d.Ports) > 0 {
		return append([]int32(nil), d.Ports...)
	}
	return def
}

// MoltbookPort is the port of moltbook.url: its explicit port, else 443 for
// https and 80 for http.
func (r *ChatRoom) MoltbookPort() int32 {
	raw := r.Spec.Moltbook.URL
	if raw == "" {
		raw = DefaultMoltbookURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return 443
	}
	if p, err := strconv.ParseUint(u.Port(), 10, 16); err == nil && p > 0 {
		return int32(p)
	}
	if u.Scheme == "http" {
		return 80
	}
	return 443
}

func copyPeers(in []networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer {
	out := make([]networkingv1.NetworkPolicyPeer, len(in))
	for i := range in {
		in[i].DeepCopyInto(&out[i])
	}
	return out
}
