package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// servedComponents are the components that take traffic and so get a Service;
// the verifier only pulls jobs from Postgres.
var servedComponents = []chatrv1.Component{chatrv1.ComponentAPI, chatrv1.ComponentStreamer}

// buildService returns the ClusterIP Service of component c: "http" is what
// the Ingress routes to, "metrics" the admin port for Prometheus, and on the
// API "moderation" the moderation API (for kubectl port-forward; no Ingress
// routes to it).
func buildService(room *chatrv1.ChatRoom, c chatrv1.Component) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: objectMeta(room, room.ComponentName(c), room.ComponentLabels(c)),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: room.SelectorLabels(c),
			Ports: []corev1.ServicePort{
				{Name: portHTTPName, Port: portHTTP, TargetPort: intstr.FromString(portHTTPName), Protocol: corev1.ProtocolTCP},
				{Name: "metrics", Port: portAdmin, TargetPort: intstr.FromString(portAdminName), Protocol: corev1.ProtocolTCP},
			},
		},
	}
	if c == chatrv1.ComponentAPI {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: portModerationName, Port: portModeration,
			TargetPort: intstr.FromString(portModerationName), Protocol: corev1.ProtocolTCP})
	}
	return svc
}

// buildServiceAccount returns the room's ServiceAccount. The components never
// talk to the Kubernetes API, so no token is mounted (here and in the pods):
// a compromised pod holds no credential.
func buildServiceAccount(room *chatrv1.ChatRoom) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		ObjectMeta:                   objectMeta(room, room.ServiceAccountName(), room.CommonLabels()),
		AutomountServiceAccountToken: ptr(false),
	}
}
