package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// The moderation API in the children: the API pods serve it on their port
// "moderation" (the Service too, for kubectl port-forward), the Ingress never
// routes to it, the NetworkPolicy admits only moderation.allowFrom (nobody by
// default), and the token comes from its Secret (the default key "token"),
// to the API alone, never through the ConfigMap.
func TestModerationChildren(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*chatrv1.ChatRoom)
		token bool
		peers int
	}{
		{name: "off"},
		{name: "a token, default key", mod: func(r *chatrv1.ChatRoom) {
			r.Spec.Moderation.TokenSecretRef = &chatrv1.ModerationTokenRef{Name: "mods"}
		}, token: true},
		{name: "a token and a tool allowed in", mod: func(r *chatrv1.ChatRoom) {
			r.Spec.Moderation.TokenSecretRef = &chatrv1.ModerationTokenRef{Name: "mods", Key: "token"}
			r.Spec.Moderation.AllowFrom = []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "modtool"}}}}
		}, token: true, peers: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			room := defaultedRoom(func(r *chatrv1.ChatRoom) {
				r.Spec.Ingress = &chatrv1.IngressSpec{Host: "chat.example.org"}
				if tc.mod != nil {
					tc.mod(r)
				}
			})
			for _, c := range chatrv1.Components {
				d := buildDeployment(room, c, podHashes{Config: "c", Secrets: "s"})
				ctr := d.Spec.Template.Spec.Containers[0]
				var port int32
				for _, p := range ctr.Ports {
					if p.Name == portModerationName {
						port = p.ContainerPort
					}
				}
				env := envMap(ctr.Env)
				tok, hasTok := env[config.EnvModerationToken]
				listen, hasListen := env[config.EnvModerationListen]
				if c != chatrv1.ComponentAPI {
					if port != 0 || hasTok || hasListen {
						t.Errorf("%s has the moderation port %d / token %v / listen %v", c, port, hasTok, hasListen)
					}
					continue
				}
				if port != 9091 || !hasListen || listen.ValueFrom.ConfigMapKeyRef == nil {
					t.Errorf("api: moderation port %d, listen %+v", port, listen)
				}
				if hasTok != tc.token {
					t.Fatalf("api: token env %v, want %v", hasTok, tc.token)
				}
				if tc.token && (tok.Value != "" || tok.ValueFrom.SecretKeyRef == nil || tok.ValueFrom.SecretKeyRef.Name != "mods" || tok.ValueFrom.SecretKeyRef.Key != "token") {
					t.Errorf("api: token env %+v, want Secret mods key token", tok)
				}
			}
			cm := buildConfigMap(room)
			if cm.Data[config.EnvModerationListen] != ":9091" {
				t.Errorf("ConfigMap %s = %q", config.EnvModerationListen, cm.Data[config.EnvModerationListen])
			}
			if _, ok := cm.Data[config.EnvModerationToken]; ok {
				t.Errorf("the token is in the ConfigMap")
			}
			svc := buildService(room, chatrv1.ComponentAPI)
			found := false
			for _, p := range svc.Spec.Ports {
				if p.Name == portModerationName && p.Port == 9091 && p.TargetPort.StrVal == portModerationName {
					found = true
				}
			}
			if !found {
				t.Errorf("API Service ports %+v lack moderation", svc.Spec.Ports)
			}
			for _, p := range buildService(room, chatrv1.ComponentStreamer).Spec.Ports {
				if p.Name == portModerationName {
					t.Errorf("the streamer Service has the moderation port")
				}
			}
			ing := buildIngress(room)
			for _, rule := range ing.Spec.Rules {
				for _, path := range rule.HTTP.Paths {
					if b := path.Backend.Service; b.Port.Name != portHTTPName || b.Port.Number != 0 {
						t.Errorf("Ingress path %s routes to port %+v", path.Path, b.Port)
					}
				}
			}
			rules := 0
			for _, r := range buildNetworkPolicy(room, chatrv1.ComponentAPI).Spec.Ingress {
				for _, p := range r.Ports {
					if p.Port.StrVal == portModerationName {
						rules++
						if len(r.From) != tc.peers || len(r.From) == 0 {
							t.Errorf("moderation rule admits %v", r.From)
						}
					}
				}
			}
			if want := min(tc.peers, 1); rules != want {
				t.Errorf("%d NetworkPolicy rules for the moderation port, want %d", rules, want)
			}
			refs := room.SecretRefs()
			var modRef *chatrv1.SecretRef
			for i := range refs {
				if refs[i].Name == "mods" {
					modRef = &refs[i]
				}
			}
			if (modRef != nil) != tc.token || (modRef != nil && (modRef.Key != "token" || fmt.Sprint(modRef.Components) != fmt.Sprint([]chatrv1.Component{chatrv1.ComponentAPI}))) {
				t.Errorf("Secret refs %+v", refs)
			}
		})
	}
}

// In a cluster: a room naming a moderation Secret waits for it, then its API
// Deployment reads the token from it (the CRD defaults the key), and a new
// token rolls the API alone.
func TestModerationSecretRollsTheAPI(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecrets(t, ns, "s")
	room := newRoom(ns, "room", "s")
	room.Spec.Moderation.TokenSecretRef = &chatrv1.ModerationTokenRef{Name: "mods"}
	must(k8s.Create(ctx, room))
	must(get(room))
	if room.Spec.Moderation.TokenSecretRef.Key != "token" {
		t.Fatalf("the CRD defaulted the key to %q, want token", room.Spec.Moderation.TokenSecretRef.Key)
	}
	wantCondition(t, room, chatrv1.ConditionDegraded, metav1.ConditionTrue, chatrv1.ReasonSecretNotFound)
	mods := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "mods", Namespace: ns}, StringData: map[string]string{"token": "first-token-0123456789"}}
	must(k8s.Create(ctx, mods))
	for _, c := range chatrv1.Components {
		testenv.Eventually(t, 20*time.Second, "deployment "+string(c), func() error { return get(deployment(room, c)) })
	}
	api := deployment(room, chatrv1.ComponentAPI)
	must(get(api))
	e := envMap(api.Spec.Template.Spec.Containers[0].Env)[config.EnvModerationToken]
	if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "mods" || e.ValueFrom.SecretKeyRef.Key != "token" {
		t.Fatalf("api token env %+v", e)
	}
	hashes := func() map[chatrv1.Component]string {
		out := map[chatrv1.Component]string{}
		for _, c := range chatrv1.Components {
			d := deployment(room, c)
			must(get(d))
			out[c] = d.Spec.Template.Annotations[annotationSecretsHash]
		}
		return out
	}
	h0 := hashes()
	must(get(mods))
	mods.Data["token"] = []byte("second-token-0123456789")
	must(k8s.Update(ctx, mods))
	testenv.Eventually(t, 40*time.Second, "the API rolls on a new token", func() error {
		if hashes()[chatrv1.ComponentAPI] == h0[chatrv1.ComponentAPI] {
			return fmt.Errorf("api secrets hash unchanged")
		}
		return nil
	})
	h1 := hashes()
	if h1[chatrv1.ComponentStreamer] != h0[chatrv1.ComponentStreamer] || h1[chatrv1.ComponentVerifier] != h0[chatrv1.ComponentVerifier] {
		t.Errorf("streamer or verifier rolled on the moderation token: %v -> %v", h0, h1)
	}
}
