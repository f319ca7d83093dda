package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/config"
)

// podHashes are the hashes stamped on a component's pod template so that a
// change of what the pods read at start (ConfigMap keys, Secret keys) rolls them.
type podHashes struct {
	Config  string
	Secrets string
}

// buildDeployment returns the Deployment of component c. room must be
// defaulted. The streamer's replicas are autoscaling.minReplicas: the
// reconciler uses that only when it creates the Deployment and leaves the
// field alone afterwards, because the streamer autoscaler owns it.
func buildDeployment(room *chatrv1.ChatRoom, c chatrv1.Component, h podHashes) *appsv1.Deployment {
	labels := room.ComponentLabels(c)
	selector := room.SelectorLabels(c)

	var replicas int32
	switch c {
	case chatrv1.ComponentAPI:
		replicas = *room.Spec.API.Replicas
	case chatrv1.ComponentStreamer:
		replicas = room.Spec.Streamer.Autoscaling.MinReplicas
	case chatrv1.ComponentVerifier:
		replicas = *room.Spec.Verifier.Replicas
	}

	pod := corev1.PodSpec{
		ServiceAccountName:           room.ServiceAccountName(),
		AutomountServiceAccountToken: ptr(false),
		EnableServiceLinks:           ptr(false),
		ImagePullSecrets:             room.Spec.ImagePullSecrets,
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr(true),
			RunAsUser:      ptr(nonRootUID),
			RunAsGroup:     ptr(nonRootUID),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{buildContainer(room, c)},
		Volumes: []corev1.Volume{{
			Name: tmpVolume,
			VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
				SizeLimit: ptr(resource.MustParse("64Mi")),
			}},
		}},
		// Spread a component's pods over nodes so one node's loss takes few of them.
		TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
			MaxSkew:           1,
			TopologyKey:       corev1.LabelHostname,
			WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector:     &metav1.LabelSelector{MatchLabels: selector},
		}},
	}
	if c == chatrv1.ComponentStreamer {
		drain := int64(room.Spec.Streamer.DrainTime.Seconds())
		if room.Spec.Streamer.DrainTime.Duration > 0 && drain == 0 {
			drain = 1
		}
		pod.TerminationGracePeriodSeconds = ptr(preStopSleep + drain + graceMargin)
	}

	// maxUnavailable 0: a rollout starts new pods (which migrate the schema
	// and turn ready) before it stops old ones, so the room never has fewer
	// serving pods than asked for.
	maxSurge := intstr.FromString("25%")
	maxUnavailable := intstr.FromInt32(0)
	return &appsv1.Deployment{
		ObjectMeta: objectMeta(room, room.ComponentName(c), labels),
		Spec: appsv1.DeploymentSpec{
			Replicas:                &replicas,
			Selector:                &metav1.LabelSelector{MatchLabels: selector},
			RevisionHistoryLimit:    ptr(int32(5)),
			ProgressDeadlineSeconds: ptr(int32(600)),
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge:       &maxSurge,
					MaxUnavailable: &maxUnavailable,
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: labels,
					Annotations: map[string]string{
						annotationConfigHash:                      h.Config,
						annotationSecretsHash:                     h.Secrets,
						"kubectl.kubernetes.io/default-container": string(c),
					},
				},
				Spec: pod,
			},
		},
	}
}

// buildContainer returns the one container of component c.
func buildContainer(room *chatrv1.ChatRoom, c chatrv1.Component) corev1.Container {
	resources := chatrv1.DefaultResources(c)
	switch c {
	case chatrv1.ComponentAPI:
		if !isEmptyResources(room.Spec.API.Resources) {
			resources = room.Spec.API.Resources
		}
	case chatrv1.ComponentStreamer:
		if !isEmptyResources(room.Spec.Streamer.Resources) {
			resources = room.Spec.Streamer.Resources
		}
	case chatrv1.ComponentVerifier:
		if !isEmptyResources(room.Spec.Verifier.Resources) {
			resources = room.Spec.Verifier.Resources
		}
	}

	ports := []corev1.ContainerPort{{Name: portAdminName, ContainerPort: portAdmin, Protocol: corev1.ProtocolTCP}}
	if c != chatrv1.ComponentVerifier {
		ports = append([]corev1.ContainerPort{{Name: portHTTPName, ContainerPort: portHTTP, Protocol: corev1.ProtocolTCP}}, ports...)
	}
	if c == chatrv1.ComponentAPI {
		ports = append(ports, corev1.ContainerPort{Name: portModerationName, ContainerPort: portModeration, Protocol: corev1.ProtocolTCP})
	}

	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString(portAdminName), Scheme: corev1.URISchemeHTTP,
			}},
			PeriodSeconds:    period,
			TimeoutSeconds:   2,
			FailureThreshold: failures,
			SuccessThreshold: 1,
		}
	}

	ctr := corev1.Container{
		Name:            string(c),
		Image:           room.Spec.Image,
		ImagePullPolicy: room.Spec.ImagePullPolicy,
		Command:         []string{chatrdPath, string(c)},
		Env:             buildEnv(room, c),
		Ports:           ports,
		Resources:       resources,
		// A pod migrating the schema, or waiting for another pod's migration
		// lock, is alive but not ready: the startup probe gives it five
		// minutes before liveness checks may restart it.
		StartupProbe:   probe("/healthz", 5, 60),
		LivenessProbe:  probe("/healthz", 10, 3),
		ReadinessProbe: probe("/readyz", 5, 2),
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr(true),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           containerSeccomp(room, c),
		},
		VolumeMounts:             []corev1.VolumeMount{{Name: tmpVolume, MountPath: "/tmp"}},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if c != chatrv1.ComponentVerifier {
		// The pause before SIGTERM lets the endpoint removal reach kube-proxy
		// and the ingress, so no new request or stream lands on a pod that
		// has stopped listening (on a real node, an API pod without it cost a
		// 502 during every rollout); then the streamer drains over drainTime.
		// The API's in-flight requests finish well inside the default grace.
		ctr.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
			Sleep: &corev1.SleepAction{Seconds: preStopSleep},
		}}
	}
	return ctr
}

// buildEnv returns the environment of component c: connection URLs from the
// room's Secrets, the pod name from the downward API, and every other setting
// from the room's ConfigMap, one key at a time.
func buildEnv(room *chatrv1.ChatRoom, c chatrv1.Component) []corev1.EnvVar {
	secret := func(env, name, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: env, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: name},
				Key:                  key,
			},
		}}
	}
	env := []corev1.EnvVar{
		secret(config.EnvDatabaseURL, room.Spec.Postgres.SecretName, room.Spec.Postgres.SecretKey),
		secret(config.EnvRedisURL, room.Spec.Redis.SecretName, room.Spec.Redis.SecretKey),
	}
	if c == chatrv1.ComponentVerifier && room.Spec.Moltbook.APIKeySecretName != "" {
		env = append(env, secret(config.EnvMoltbookAPIKey, room.Spec.Moltbook.APIKeySecretName, room.Spec.Moltbook.APIKeySecretKey))
	}
	if t := room.Spec.Moderation.TokenSecretRef; c == chatrv1.ComponentAPI && t != nil {
		// The moderators' token: from its Secret, never the ConfigMap.
		env = append(env, secret(config.EnvModerationToken, t.Name, t.Key))
	}
	if c == chatrv1.ComponentStreamer {
		env = append(env, corev1.EnvVar{Name: config.EnvPodName, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"},
		}})
	}
	for _, k := range configKeys(c) {
		env = append(env, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{
			ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: room.ConfigMapName()},
				Key:                  k,
			},
		}})
	}
	return env
}

// isEmptyResources reports whether the spec left resources unset, so the
// operator's defaults apply (a room without requests would be scheduled blind).
func isEmptyResources(r corev1.ResourceRequirements) bool {
	return len(r.Limits) == 0 && len(r.Requests) == 0 && len(r.Claims) == 0
}

// containerSeccomp is a container's seccomp profile: the runtime's default,
// or for the streamer the profile its spec names (a Localhost profile that
// allows io_uring, for its batched writes).
func containerSeccomp(room *chatrv1.ChatRoom, c chatrv1.Component) *corev1.SeccompProfile {
	if sp := room.Spec.Streamer.SeccompProfile; c == chatrv1.ComponentStreamer && sp != nil && sp.Type == corev1.SeccompProfileTypeLocalhost {
		return &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr(sp.LocalhostProfile)}
	}
	return &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
}
