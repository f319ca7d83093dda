package controllers

import (
	networkingv1 "k8s.io/api/networking/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// streamAnnotations make ingress-nginx pass Server-Sent Events through as
// they are written (no response buffering) and keep idle streams open for an
// hour (the default 60 s read timeout would cut every quiet stream). The
// streamers send keep-alive comments well within that.
var streamAnnotations = map[string]string{
	"nginx.ingress.kubernetes.io/proxy-buffering":    "off",
	"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
	"nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
	"nginx.ingress.kubernetes.io/proxy-http-version": "1.1",
}

// buildIngress returns the room's Ingress, or nil when spec.ingress is unset.
// The stream endpoints and the spectator page (/) go to the streamers, the
// rest of /api to the API; Prefix paths match the longest prefix first.
func buildIngress(room *chatrv1.ChatRoom) *networkingv1.Ingress {
	spec := room.Spec.Ingress
	if spec == nil {
		return nil
	}
	backend := func(c chatrv1.Component) networkingv1.IngressBackend {
		return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: room.ComponentName(c),
			Port: networkingv1.ServiceBackendPort{Name: portHTTPName},
		}}
	}
	prefix := networkingv1.PathTypePrefix
	path := func(p string, c chatrv1.Component) networkingv1.HTTPIngressPath {
		return networkingv1.HTTPIngressPath{Path: p, PathType: &prefix, Backend: backend(c)}
	}

	annotations := map[string]string{}
	for k, v := range streamAnnotations {
		annotations[k] = v
	}
	for k, v := range spec.Annotations {
		annotations[k] = v
	}

	in := &networkingv1.Ingress{
		ObjectMeta: objectMeta(room, room.IngressName(), room.CommonLabels()),
		Spec: networkingv1.IngressSpec{
			IngressClassName: spec.ClassName,
			Rules: []networkingv1.IngressRule{{
				Host: spec.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{
						path("/api/stream", chatrv1.ComponentStreamer),
						path("/api/ws", chatrv1.ComponentStreamer),
						path("/api", chatrv1.ComponentAPI),
						path("/", chatrv1.ComponentStreamer),
					},
				}},
			}},
		},
	}
	in.Annotations = annotations
	if spec.TLSSecretName != "" {
		in.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{spec.Host}, SecretName: spec.TLSSecretName}}
	}
	return in
}
