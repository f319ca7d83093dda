package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// TestNetworkPoliciesFollowTheSpec: the policies the API server stores are
// the restricted ones (sources and egress), and a change of
// spec.networkPolicy reaches them.
func TestNetworkPoliciesFollowTheSpec(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	createSecrets(t, ns, "s")
	room := newRoom(ns, "room", "s")
	createRoom(t, room)

	policy := func(c chatrv1.Component) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: room.ComponentName(c)}}
	}
	texts := func(np *networkingv1.NetworkPolicy) (ingress, egress []string) {
		_, ingress, egress = policyText(np)
		return ingress, egress
	}
	api, verifier := policy(chatrv1.ComponentAPI), policy(chatrv1.ComponentVerifier)
	must(get(api))
	must(get(verifier))
	in, out := texts(api)
	if !slices.Equal(typeNames(api.Spec.PolicyTypes), []string{"Ingress", "Egress"}) || len(in) != 2 ||
		!strings.Contains(in[0], "ingress-nginx") || !strings.Contains(in[1], "TCP/admin from ns{} pod{app.kubernetes.io/name=prometheus}") ||
		!slices.Equal(out, []string{"UDP/53,TCP/53 to anywhere", "TCP/5432 to anywhere", "TCP/6379 to anywhere"}) {
		t.Errorf("api policy: types %v, ingress %q, egress %q", api.Spec.PolicyTypes, in, out)
	}
	in, out = texts(verifier)
	if len(in) != 1 || !strings.HasPrefix(in[0], "TCP/admin ") || !slices.Contains(out, "TCP/443 to anywhere") || !slices.Contains(out, "TCP/6379 to anywhere") {
		t.Errorf("verifier policy: ingress %q, egress %q", in, out)
	}

	updateRoom(t, room, func(r *chatrv1.ChatRoom) {
		r.Spec.NetworkPolicy.IngressFrom = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.1.10/32"}}}
		r.Spec.NetworkPolicy.Egress.Postgres.Ports = []int32{6432}
		r.Spec.NetworkPolicy.Egress.Postgres.To = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.2.0/24"}}}
	})
	testenv.Eventually(t, 20*time.Second, "the api policy follows the spec", func() error {
		must(get(api))
		in, out := texts(api)
		if len(in) != 2 || in[0] != "TCP/http from 192.168.1.10/32" || !slices.Contains(out, "TCP/6432 to 10.1.2.0/24") {
			return fmt.Errorf("ingress %q, egress %q", in, out)
		}
		return nil
	})
	updateRoom(t, room, func(r *chatrv1.ChatRoom) { r.Spec.NetworkPolicy.Egress.AllowAll = true })
	testenv.Eventually(t, 20*time.Second, "egress left open on request", func() error {
		must(get(verifier))
		if !slices.Equal(typeNames(verifier.Spec.PolicyTypes), []string{"Ingress"}) || len(verifier.Spec.Egress) != 0 {
			return fmt.Errorf("types %v, egress %+v", verifier.Spec.PolicyTypes, verifier.Spec.Egress)
		}
		return nil
	})

	// The schema refuses ports that are not ports.
	bad := newRoom(ns, "badports", "s")
	bad.Spec.NetworkPolicy.Egress.Redis.Ports = []int32{70000}
	if err := k8s.Create(context.Background(), bad); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.networkPolicy.egress.redis.ports") {
		t.Errorf("redis port 70000: %v, want Invalid naming the field", err)
	}
	bad = newRoom(ns, "badcidr", "s")
	bad.Spec.NetworkPolicy.IngressFrom = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.1"}}}
	if err := k8s.Create(context.Background(), bad); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "ipBlock.cidr must be a CIDR") {
		t.Errorf("ingressFrom ipBlock 10.0.0.1: %v, want Invalid saying it is not a CIDR", err)
	}
	bad.Spec.NetworkPolicy.IngressFrom = nil
	bad.Spec.NetworkPolicy.Egress.Postgres.To = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "db.internal"}}}
	if err := k8s.Create(context.Background(), bad); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.networkPolicy.egress.postgres.to") {
		t.Errorf("postgres.to ipBlock db.internal: %v, want Invalid naming the field", err)
	}
}

func typeNames(types []networkingv1.PolicyType) []string {
	var out []string
	for _, t := range types {
		out = append(out, string(t))
	}
	return out
}
