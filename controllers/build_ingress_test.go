package controllers

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

func TestBuildIngress(t *testing.T) {
	cases := []struct {
		name        string
		ingress     *chatrv1.IngressSpec
		wantNil     bool
		tls         bool
		annotations map[string]string
	}{
		{name: "no ingress", wantNil: true},
		{name: "plain", ingress: &chatrv1.IngressSpec{Host: "chat.example.com"},
			annotations: map[string]string{"nginx.ingress.kubernetes.io/proxy-buffering": "off", "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"}},
		{name: "tls, class and annotations that win", ingress: &chatrv1.IngressSpec{
			Host: "chat.example.com", ClassName: ptr("nginx"), TLSSecretName: "chat-tls",
			Annotations: map[string]string{"cert-manager.io/cluster-issuer": "le", "nginx.ingress.kubernetes.io/proxy-read-timeout": "7200"},
		}, tls: true, annotations: map[string]string{
			"cert-manager.io/cluster-issuer": "le", "nginx.ingress.kubernetes.io/proxy-read-timeout": "7200",
			"nginx.ingress.kubernetes.io/proxy-buffering": "off",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := buildIngress(defaultedRoom(func(r *chatrv1.ChatRoom) { r.Spec.Ingress = tc.ingress }))
			if tc.wantNil {
				if in != nil {
					t.Fatalf("ingress built without spec.ingress")
				}
				return
			}
			if len(in.Spec.Rules) != 1 || in.Spec.Rules[0].Host != "chat.example.com" {
				t.Fatalf("rules %+v", in.Spec.Rules)
			}
			routes := map[string]string{}
			for _, p := range in.Spec.Rules[0].HTTP.Paths {
				if *p.PathType != networkingv1.PathTypePrefix || p.Backend.Service.Port.Name != "http" {
					t.Errorf("path %s: type %s port %+v", p.Path, *p.PathType, p.Backend.Service.Port)
				}
				routes[p.Path] = p.Backend.Service.Name
			}
			want := map[string]string{"/api/stream": "lobby-streamer", "/api/ws": "lobby-streamer", "/api": "lobby-api", "/": "lobby-streamer"}
			for p, svc := range want {
				if routes[p] != svc {
					t.Errorf("%s -> %q, want %q", p, routes[p], svc)
				}
			}
			if len(routes) != len(want) {
				t.Errorf("routes %v", routes)
			}
			if (len(in.Spec.TLS) == 1 && in.Spec.TLS[0].SecretName == "chat-tls" && in.Spec.TLS[0].Hosts[0] == "chat.example.com") != tc.tls {
				t.Errorf("tls %+v", in.Spec.TLS)
			}
			if (in.Spec.IngressClassName != nil) != (tc.ingress.ClassName != nil) {
				t.Errorf("class %v", in.Spec.IngressClassName)
			}
			for k, v := range tc.annotations {
				if in.Annotations[k] != v {
					t.Errorf("annotation %s = %q, want %q", k, in.Annotations[k], v)
				}
			}
		})
	}
}
