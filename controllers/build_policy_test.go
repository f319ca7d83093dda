package controllers

import (
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

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

// peerText renders a peer for comparison: "ns{k=v} pod{k=v}" or "cidr".
func peerText(p networkingv1.NetworkPolicyPeer) string {
	sel := func(kind string, s *metav1.LabelSelector) string {
		if s == nil {
			return ""
		}
		var kv []string
		for k, v := range s.MatchLabels {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		return kind + "{" + strings.Join(kv, ",") + "}"
	}
	var parts []string
	if p.IPBlock != nil {
		parts = append(parts, p.IPBlock.CIDR)
	}
	for _, x := range []string{sel("ns", p.NamespaceSelector), sel("pod", p.PodSelector)} {
		if x != "" {
			parts = append(parts, x)
		}
	}
	return strings.Join(parts, " ")
}

// ruleText renders ports and peers: "TCP/http from ns{...} pod{...}", or
// "... from anywhere" when there are no peers.
func ruleText(ports []networkingv1.NetworkPolicyPort, peers []networkingv1.NetworkPolicyPeer, dir string) string {
	var ps []string
	for _, p := range ports {
		ps = append(ps, string(*p.Protocol)+"/"+p.Port.String())
	}
	var who []string
	for _, p := range peers {
		who = append(who, peerText(p))
	}
	if len(who) == 0 {
		who = []string{"anywhere"}
	}
	return strings.Join(ps, ",") + " " + dir + " " + strings.Join(who, " | ")
}

func policyText(np *networkingv1.NetworkPolicy) (types string, ingress, egress []string) {
	var ts []string
	for _, t := range np.Spec.PolicyTypes {
		ts = append(ts, string(t))
	}
	for _, r := range np.Spec.Ingress {
		ingress = append(ingress, ruleText(r.Ports, r.From, "from"))
	}
	for _, r := range np.Spec.Egress {
		egress = append(egress, ruleText(r.Ports, r.To, "to"))
	}
	return strings.Join(ts, ","), ingress, egress
}

func TestBuildNetworkPolicy(t *testing.T) {
	const (
		fromIngressNginx = "TCP/http from ns{kubernetes.io/metadata.name=ingress-nginx} pod{app.kubernetes.io/name=ingress-nginx}"
		fromPrometheus   = "TCP/admin from ns{} pod{app.kubernetes.io/name=prometheus}"
		toDNS            = "UDP/53,TCP/53 to anywhere"
		toPostgres       = "TCP/5432 to anywhere"
		toRedis          = "TCP/6379 to anywhere"
		toMoltbook       = "TCP/443 to anywhere"
	)
	api, streamer, verifier := chatrv1.ComponentAPI, chatrv1.ComponentStreamer, chatrv1.ComponentVerifier
	cases := []struct {
		name    string
		mod     func(*chatrv1.ChatRoom)
		c       chatrv1.Component
		types   string
		ingress []string
		egress  []string
	}{
		{"api by default: the ingress controller, Prometheus; DNS, Postgres, Redis", nil, api,
			"Ingress,Egress", []string{fromIngressNginx, fromPrometheus}, []string{toDNS, toPostgres, toRedis}},
		{"streamer by default", nil, streamer,
			"Ingress,Egress", []string{fromIngressNginx, fromPrometheus}, []string{toDNS, toPostgres, toRedis}},
		{"verifier by default: metrics only; Redis (room events) and Moltbook", nil, verifier,
			"Ingress,Egress", []string{fromPrometheus}, []string{toDNS, toPostgres, toRedis, toMoltbook}},
		{"from anywhere", func(r *chatrv1.ChatRoom) { r.Spec.NetworkPolicy.AllowIngressFromAnywhere = true }, api,
			"Ingress,Egress", []string{"TCP/http from anywhere", fromPrometheus}, []string{toDNS, toPostgres, toRedis}},
		{"from anywhere never opens the verifier", func(r *chatrv1.ChatRoom) { r.Spec.NetworkPolicy.AllowIngressFromAnywhere = true }, verifier,
			"Ingress,Egress", []string{fromPrometheus}, []string{toDNS, toPostgres, toRedis, toMoltbook}},
		{"own ingress and monitoring peers replace the defaults", func(r *chatrv1.ChatRoom) {
			r.Spec.NetworkPolicy.IngressFrom = []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.1.10/32"}},
				{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "traefik"}}},
			}
			r.Spec.NetworkPolicy.MonitoringFrom = []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}},
			}
		}, streamer, "Ingress,Egress",
			[]string{"TCP/http from 192.168.1.10/32 | ns{kubernetes.io/metadata.name=traefik}", "TCP/admin from ns{kubernetes.io/metadata.name=monitoring}"},
			[]string{toDNS, toPostgres, toRedis}},
		{"egress destinations narrowed, extra rules added", func(r *chatrv1.ChatRoom) {
			e := &r.Spec.NetworkPolicy.Egress
			e.Postgres = chatrv1.EgressDestination{Ports: []int32{6432}, To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.0/16"}}}}
			e.Redis.To = []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}}}}
			e.DNS.To = []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}}}}
			tcp := corev1.ProtocolTCP
			p := intstr.FromInt32(3128)
			e.Extra = []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p}},
				To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.9.9.9/32"}}}}}
		}, api, "Ingress,Egress", []string{fromIngressNginx, fromPrometheus}, []string{
			"UDP/53,TCP/53 to ns{kubernetes.io/metadata.name=kube-system}", "TCP/6432 to 10.1.0.0/16", "TCP/6379 to pod{app=redis}",
			"TCP/3128 to 10.9.9.9/32"}},
		{"Moltbook at the port of its URL", func(r *chatrv1.ChatRoom) { r.Spec.Moltbook.URL = "http://fake-moltbook:9000/api/v1" }, verifier,
			"Ingress,Egress", []string{fromPrometheus}, []string{toDNS, toPostgres, toRedis, "TCP/9000 to anywhere"}},
		{"Moltbook over plain http", func(r *chatrv1.ChatRoom) { r.Spec.Moltbook.URL = "http://moltbook.internal/api/v1" }, verifier,
			"Ingress,Egress", []string{fromPrometheus}, []string{toDNS, toPostgres, toRedis, "TCP/80 to anywhere"}},
		{"Moltbook ports set", func(r *chatrv1.ChatRoom) { r.Spec.NetworkPolicy.Egress.Moltbook.Ports = []int32{443, 8443} }, verifier,
			"Ingress,Egress", []string{fromPrometheus}, []string{toDNS, toPostgres, toRedis, "TCP/443,TCP/8443 to anywhere"}},
		{"egress left open", func(r *chatrv1.ChatRoom) { r.Spec.NetworkPolicy.Egress.AllowAll = true }, verifier,
			"Ingress", []string{fromPrometheus}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			room := defaultedRoom(tc.mod)
			np := buildNetworkPolicy(room, tc.c)
			if np.Spec.PodSelector.MatchLabels[chatrv1.LabelComponent] != string(tc.c) || np.Name != room.ComponentName(tc.c) {
				t.Errorf("policy %s selects %v", np.Name, np.Spec.PodSelector.MatchLabels)
			}
			types, ingress, egress := policyText(np)
			if types != tc.types {
				t.Errorf("policy types %s, want %s", types, tc.types)
			}
			if !slices.Equal(ingress, tc.ingress) {
				t.Errorf("ingress\n %q\nwant\n %q", ingress, tc.ingress)
			}
			if !slices.Equal(egress, tc.egress) {
				t.Errorf("egress\n %q\nwant\n %q", egress, tc.egress)
			}
			// An egress rule without ports and peers would allow everything.
			for i, r := range np.Spec.Egress {
				if len(r.Ports) == 0 && len(r.To) == 0 {
					t.Errorf("egress rule %d allows everything", i)
				}
			}
			// Builders are pure: the room's own lists are not shared with the policy.
			before := hashOf(room.Spec)
			for i := range np.Spec.Ingress {
				for j := range np.Spec.Ingress[i].From {
					np.Spec.Ingress[i].From[j].IPBlock = &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}
				}
			}
			for i := range np.Spec.Egress {
				np.Spec.Egress[i].To = append(np.Spec.Egress[i].To[:0:0], networkingv1.NetworkPolicyPeer{})
				for j := range np.Spec.Egress[i].Ports {
					np.Spec.Egress[i].Ports[j].Port = nil
				}
			}
			if hashOf(room.Spec) != before {
				t.Error("changing the policy changed the room's spec: the builder shares its lists")
			}
		})
	}
}
