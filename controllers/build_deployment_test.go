package controllers

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/config"
)

func envMap(env []corev1.EnvVar) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range env {
		m[e.Name] = e
	}
	return m
}

func TestBuildDeployment(t *testing.T) {
	cases := []struct {
		name      string
		c         chatrv1.Component
		mod       func(*chatrv1.ChatRoom)
		replicas  int32
		grace     *int64
		httpPort  bool
		podName   bool
		moltKey   bool
		memLimit  string
		preStop   bool
		extraEnvs []string
	}{
		{name: "api", c: chatrv1.ComponentAPI, replicas: 2, httpPort: true, memLimit: "512Mi", preStop: true,
			extraEnvs: []string{config.EnvMessageMaxChars, config.EnvVerifyWait, config.EnvStreamsPerIP}},
		{name: "api replicas and resources from the spec", c: chatrv1.ComponentAPI, mod: func(r *chatrv1.ChatRoom) {
			r.Spec.API.Replicas = ptr(int32(5))
			r.Spec.API.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}}
		}, replicas: 5, httpPort: true, memLimit: "2Gi", preStop: true},
		{name: "streamer starts at minReplicas, grace covers the drain", c: chatrv1.ComponentStreamer, mod: func(r *chatrv1.ChatRoom) {
			r.Spec.Streamer.Autoscaling.MinReplicas = 4
			r.Spec.Streamer.DrainTime = &metav1.Duration{Duration: 45 * time.Second}
		}, replicas: 4, grace: ptr(preStopSleep + 45 + graceMargin), httpPort: true, podName: true, memLimit: "1Gi", preStop: true,
			extraEnvs: []string{config.EnvMaxConnections, config.EnvDrainTime, config.EnvStreamsPerIP}},
		{name: "streamer with no drain", c: chatrv1.ComponentStreamer, mod: func(r *chatrv1.ChatRoom) {
			r.Spec.Streamer.DrainTime = &metav1.Duration{}
		}, replicas: 2, grace: ptr(preStopSleep + graceMargin), httpPort: true, podName: true, memLimit: "1Gi", preStop: true},
		{name: "verifier without a Moltbook key", c: chatrv1.ComponentVerifier, replicas: 1, memLimit: "256Mi",
			extraEnvs: []string{config.EnvMoltbookURL, config.EnvMoltbookRPM, config.EnvVerifyMaxAttempts}},
		{name: "verifier with a Moltbook key", c: chatrv1.ComponentVerifier, mod: func(r *chatrv1.ChatRoom) {
			r.Spec.Moltbook.APIKeySecretName = "molt"
		}, replicas: 1, moltKey: true, memLimit: "256Mi"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			room := defaultedRoom(tc.mod)
			d := buildDeployment(room, tc.c, podHashes{Config: "c1", Secrets: "s1"})
			if d.Name != "lobby-"+string(tc.c) || *d.Spec.Replicas != tc.replicas {
				t.Errorf("name %s replicas %d", d.Name, *d.Spec.Replicas)
			}
			if d.Spec.Selector.MatchLabels[chatrv1.LabelInstance] != "lobby" || d.Spec.Selector.MatchLabels[chatrv1.LabelComponent] != string(tc.c) {
				t.Errorf("selector %v", d.Spec.Selector.MatchLabels)
			}
			for k, v := range d.Spec.Selector.MatchLabels {
				if d.Spec.Template.Labels[k] != v {
					t.Errorf("pod labels %v do not match the selector", d.Spec.Template.Labels)
				}
			}
			if a := d.Spec.Template.Annotations; a[annotationConfigHash] != "c1" || a[annotationSecretsHash] != "s1" {
				t.Errorf("pod annotations %v", a)
			}
			if mu := d.Spec.Strategy.RollingUpdate.MaxUnavailable; mu.IntValue() != 0 {
				t.Errorf("maxUnavailable %v", mu)
			}
			pod := d.Spec.Template.Spec
			if *pod.AutomountServiceAccountToken || pod.ServiceAccountName != "lobby-chatr" || *pod.EnableServiceLinks {
				t.Errorf("service account %s automount %v", pod.ServiceAccountName, *pod.AutomountServiceAccountToken)
			}
			if !*pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod security context %+v", pod.SecurityContext)
			}
			if (tc.grace == nil) != (pod.TerminationGracePeriodSeconds == nil) || (tc.grace != nil && *tc.grace != *pod.TerminationGracePeriodSeconds) {
				t.Errorf("grace period %v, want %v", pod.TerminationGracePeriodSeconds, tc.grace)
			}

			ctr := pod.Containers[0]
			if strings.Join(ctr.Command, " ") != "/chatrd "+string(tc.c) || ctr.Image != "ghcr.io/chatr-ai/chatr:1.0" {
				t.Errorf("command %v image %s", ctr.Command, ctr.Image)
			}
			sc := ctr.SecurityContext
			if *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || !*sc.RunAsNonRoot ||
				len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("container security context %+v", sc)
			}
			for probe, path := range map[*corev1.Probe]string{ctr.LivenessProbe: "/healthz", ctr.ReadinessProbe: "/readyz", ctr.StartupProbe: "/healthz"} {
				if probe.HTTPGet.Path != path || probe.HTTPGet.Port.StrVal != portAdminName {
					t.Errorf("probe %+v, want %s on the admin port", probe.HTTPGet, path)
				}
			}
			ports := map[string]int32{}
			for _, p := range ctr.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if ports[portAdminName] != 9090 || (ports[portHTTPName] == 8080) != tc.httpPort {
				t.Errorf("ports %v", ports)
			}
			if got := ctr.Resources.Limits.Memory().String(); got != tc.memLimit {
				t.Errorf("memory limit %s, want %s", got, tc.memLimit)
			}
			if (ctr.Lifecycle != nil && ctr.Lifecycle.PreStop.Sleep.Seconds == preStopSleep) != tc.preStop {
				t.Errorf("preStop %+v", ctr.Lifecycle)
			}

			env := envMap(ctr.Env)
			if e := env[config.EnvDatabaseURL]; e.ValueFrom.SecretKeyRef.Name != "pg" || e.ValueFrom.SecretKeyRef.Key != "url" {
				t.Errorf("database URL from %+v", e.ValueFrom)
			}
			if e := env[config.EnvRedisURL]; e.ValueFrom.SecretKeyRef.Name != "redis" || e.ValueFrom.SecretKeyRef.Key != "url" {
				t.Errorf("redis URL from %+v", e.ValueFrom)
			}
			if e, ok := env[config.EnvPodName]; ok != tc.podName || (ok && e.ValueFrom.FieldRef.FieldPath != "metadata.name") {
				t.Errorf("pod name env %+v", e)
			}
			if e, ok := env[config.EnvMoltbookAPIKey]; ok != tc.moltKey || (ok && (e.ValueFrom.SecretKeyRef.Name != "molt" || e.ValueFrom.SecretKeyRef.Key != "apiKey")) {
				t.Errorf("moltbook key env %+v", e)
			}
			for _, k := range append(append([]string{}, commonKeys...), tc.extraEnvs...) {
				e, ok := env[k]
				if !ok || e.ValueFrom.ConfigMapKeyRef.Name != "lobby-config" || e.ValueFrom.ConfigMapKeyRef.Key != k {
					t.Errorf("%s not from the ConfigMap: %+v", k, e)
				}
			}
		})
	}
}

// spec.streamer.seccompProfile reaches the streamer container only: a
// Localhost profile (io_uring allowed) there, the runtime's default for the
// pod and for the other components.
func TestStreamerSeccompProfile(t *testing.T) {
	for _, tc := range []struct {
		name string
		sp   *chatrv1.SeccompProfile
		want corev1.SeccompProfile
	}{
		{"unset", nil, corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		{"runtime default", &chatrv1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		{"localhost", &chatrv1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: "chatr/chatr-streamer.json"},
			corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr("chatr/chatr-streamer.json")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			room := defaultedRoom(func(r *chatrv1.ChatRoom) { r.Spec.Streamer.SeccompProfile = tc.sp })
			for _, c := range []chatrv1.Component{chatrv1.ComponentAPI, chatrv1.ComponentStreamer, chatrv1.ComponentVerifier} {
				pod := buildDeployment(room, c, podHashes{}).Spec.Template.Spec
				if got := *pod.SecurityContext.SeccompProfile; got.Type != corev1.SeccompProfileTypeRuntimeDefault || got.LocalhostProfile != nil {
					t.Errorf("%s: pod profile %+v, want RuntimeDefault", c, got)
				}
				want := corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
				if c == chatrv1.ComponentStreamer {
					want = tc.want
				}
				if got := *pod.Containers[0].SecurityContext.SeccompProfile; !reflect.DeepEqual(got, want) {
					t.Errorf("%s: container profile %+v, want %+v", c, got, want)
				}
			}
		})
	}
}
