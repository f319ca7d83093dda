package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/config"
)

// TestInvalidSpecsAreRejected sends bad rooms to the real API server: each
// must be refused as Invalid with a message that names the problem. These
// rules live in the CRD schema (markers in api/v1alpha1), so this proves
// the generated CRD carries them.
func TestInvalidSpecsAreRejected(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	d := func(s string) *metav1.Duration {
		v, err := time.ParseDuration(s)
		must(err)
		return &metav1.Duration{Duration: v}
	}
	cases := []struct {
		name   string
		room   string
		change func(*chatrv1.ChatRoom)
		want   string
	}{
		{"min above max streamers", "r1", func(r *chatrv1.ChatRoom) {
			r.Spec.Streamer.Autoscaling.MinReplicas, r.Spec.Streamer.Autoscaling.MaxReplicas = 5, 3
		}, "minReplicas must be less than or equal to maxReplicas"},
		{"target above the per-pod cap", "r2", func(r *chatrv1.ChatRoom) {
			r.Spec.Streamer.Autoscaling.TargetConnectionsPerPod, r.Spec.Streamer.MaxConnectionsPerPod = 30000, 20000
		}, "targetConnectionsPerPod must not exceed streamer.maxConnectionsPerPod"},
		{"drain time too long", "r3", func(r *chatrv1.ChatRoom) { r.Spec.Streamer.DrainTime = d("2h") },
			"streamer.drainTime must be between 0s and 1h"},
		{"window too short", "r4", func(r *chatrv1.ChatRoom) { r.Spec.Limits.VerifiedWindow = d("100ms") },
			"limits.verifiedWindow must be between 1s and 168h"},
		{"negative retention age", "r4a", func(r *chatrv1.ChatRoom) { r.Spec.Retention.MaxAge = d("-1h") },
			"retention.maxAge must be at least 1h"},
		{"retention below the history", "r4b", func(r *chatrv1.ChatRoom) { r.Spec.Retention.MaxMessages = ptr(int32(50)) },
			"spec.retention.maxMessages"},
		{"api replicas out of range", "r5", func(r *chatrv1.ChatRoom) { r.Spec.API.Replicas = ptr(int32(0)) },
			"spec.api.replicas: Invalid value: 0: spec.api.replicas in body should be greater than or equal to 1"},
		{"message size out of range", "r6", func(r *chatrv1.ChatRoom) { r.Spec.Limits.MessageMaxChars = 1000001 },
			"spec.limits.messageMaxChars"},
		{"trusted proxy not a CIDR", "r7", func(r *chatrv1.ChatRoom) { r.Spec.TrustedProxies = []string{"10.0.0.1"} },
			"trustedProxies must be CIDRs"},
		{"reserved schema", "r8", func(r *chatrv1.ChatRoom) { r.Spec.Postgres.Schema = "pg_room" },
			"must not start with pg_"},
		{"schema not an identifier", "r9", func(r *chatrv1.ChatRoom) { r.Spec.Postgres.Schema = "Room-1" },
			"spec.postgres.schema in body should match"},
		{"unknown log level", "r10", func(r *chatrv1.ChatRoom) { r.Spec.Logging.Level = "loud" },
			`spec.logging.level: Unsupported value: "loud"`},
		{"moltbook url not http", "r11", func(r *chatrv1.ChatRoom) { r.Spec.Moltbook.URL = "ftp://x" },
			"moltbook.url must be an http or https URL"},
		{"no image", "r12", func(r *chatrv1.ChatRoom) { r.Spec.Image = "" }, "spec.image"},
		{"secret name not a name", "r13", func(r *chatrv1.ChatRoom) { r.Spec.Postgres.SecretName = "Not_A_Name" },
			"spec.postgres.secretName"},
		{"room name too long for its Services", strings.Repeat("a", 51), func(*chatrv1.ChatRoom) {},
			"at most 50 characters"},
		{"room name with a dot", "a.b", func(*chatrv1.ChatRoom) {}, "starting with a letter"},
		{"seccomp Unconfined", "r15", func(r *chatrv1.ChatRoom) {
			r.Spec.Streamer.SeccompProfile = &chatrv1.SeccompProfile{Type: "Unconfined"}
		}, `spec.streamer.seccompProfile.type: Unsupported value: "Unconfined"`},
		{"seccomp Localhost without a file", "r16", func(r *chatrv1.ChatRoom) {
			r.Spec.Streamer.SeccompProfile = &chatrv1.SeccompProfile{Type: "Localhost"}
		}, "seccompProfile.localhostProfile is required with type Localhost"},
		{"seccomp file with the runtime default", "r17", func(r *chatrv1.ChatRoom) {
			r.Spec.Streamer.SeccompProfile = &chatrv1.SeccompProfile{Type: "RuntimeDefault", LocalhostProfile: "a.json"}
		}, "not allowed otherwise"},
		{"seccomp file outside the kubelet's folder", "r18", func(r *chatrv1.ChatRoom) {
			r.Spec.Streamer.SeccompProfile = &chatrv1.SeccompProfile{Type: "Localhost", LocalhostProfile: "chatr/../../etc/x.json"}
		}, "without . or .."},
		{"seccomp file an absolute path", "r19", func(r *chatrv1.ChatRoom) {
			r.Spec.Streamer.SeccompProfile = &chatrv1.SeccompProfile{Type: "Localhost", LocalhostProfile: "/etc/x.json"}
		}, "spec.streamer.seccompProfile.localhostProfile in body should match"},
		{"ingress host not a host", "r14", func(r *chatrv1.ChatRoom) { r.Spec.Ingress = &chatrv1.IngressSpec{Host: "https://x"} },
			"spec.ingress.host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoom(ns, tc.room, "s")
			tc.change(r)
			err := k8s.Create(context.Background(), r)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("created or failed otherwise: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestSchemaCannotChange: moving a room to another schema would silently
// start an empty room, so the API server refuses it.
func TestSchemaCannotChange(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	fixed := newRoom(ns, "fixed", "s")
	fixed.Spec.Postgres.Schema = "room_one"
	derived := newRoom(ns, "derived", "s")
	for _, r := range []*chatrv1.ChatRoom{fixed, derived} {
		must(k8s.Create(ctx, r))
	}
	for name, change := range map[string]func(){
		"changed": func() { must(get(fixed)); fixed.Spec.Postgres.Schema = "room_two" },
		"removed": func() { must(get(fixed)); fixed.Spec.Postgres.Schema = "" },
	} {
		change()
		err := k8s.Update(ctx, fixed)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "postgres.schema cannot be added, changed or removed") {
			t.Errorf("schema %s: %v", name, err)
		}
	}
	must(get(derived))
	derived.Spec.Postgres.Schema = "set_later"
	if err := k8s.Update(ctx, derived); !apierrors.IsInvalid(err) {
		t.Errorf("schema added after creation: %v", err)
	}
	// Other changes still go through.
	must(get(fixed))
	fixed.Spec.Image = "ghcr.io/chatr-ai/chatr:v2"
	if err := k8s.Update(ctx, fixed); err != nil {
		t.Errorf("an unrelated change was refused: %v", err)
	}
}

// TestCRDDefaultsMatchSetDefaults creates a minimal room and checks that
// the API server filled in exactly what ChatRoom.SetDefaults fills in (the
// builders rely on SetDefaults), and that the limits are the contract's
// (internal/config.DefaultLimits, what the components use without the operator).
func TestCRDDefaultsMatchSetDefaults(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	r := newRoom(ns, "minimal", "s")
	must(k8s.Create(context.Background(), r))
	must(get(r))

	want := newRoom(ns, "minimal", "s")
	want.SetDefaults()
	if got, exp := hashOf(r.Spec), hashOf(want.Spec); got != exp {
		t.Errorf("API server defaults differ from SetDefaults:\n server: %+v\n go:     %+v", r.Spec, want.Spec)
	}

	l, c := r.Spec.Limits, config.DefaultLimits()
	pairs := [][2]any{
		{int(l.MessageMaxChars), c.MessageMaxChars}, {int(l.VerifiedMessages), c.VerifiedMessages},
		{l.VerifiedWindow.Duration, c.VerifiedWindow}, {int(*l.UnverifiedMessages), c.UnverifiedMessages},
		{l.UnverifiedWindow.Duration, c.UnverifiedWindow}, {l.AllowUnverifiedLinks, c.AllowUnverifiedLinks},
		{int(l.RegistrationsPerIP), c.RegistrationsPerIP}, {l.RegistrationWindow.Duration, c.RegistrationWindow},
		{int(l.RequestsPerIP), c.RequestsPerIP}, {l.RequestWindow.Duration, c.RequestWindow},
		{int(l.StreamsPerIP), c.StreamsPerIP}, {l.PresenceTimeout.Duration, c.PresenceTimeout},
		{int(*l.VerificationsPerAgent), c.VerificationsPerAgent}, {l.VerificationWindow.Duration, c.VerificationWindow},
	}
	for i, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("limit %d: CRD default %v, contract default %v", i, p[0], p[1])
		}
	}
}

// TestCRDShape checks what kubectl shows and what the autoscaler needs:
// the printer columns, the status subresource and the short name.
func TestCRDShape(t *testing.T) {
	needEnv(t)
	var crd apiextensionsv1.CustomResourceDefinition
	must(k8s.Get(context.Background(), client.ObjectKey{Name: "chatrooms.chatr.ai"}, &crd))
	v := crd.Spec.Versions[0]
	if v.Name != "v1alpha1" || v.Subresources == nil || v.Subresources.Status == nil {
		t.Fatalf("version %s, subresources %+v", v.Name, v.Subresources)
	}
	cols := map[string]string{}
	for _, c := range v.AdditionalPrinterColumns {
		cols[c.Name] = c.JSONPath
	}
	want := map[string]string{
		"Ready":       `.status.conditions[?(@.type=="Available")].status`,
		"Streamers":   ".status.streamers",
		"Connections": ".status.connections",
		"Age":         ".metadata.creationTimestamp",
	}
	for name, path := range want {
		if cols[name] != path {
			t.Errorf("printer column %s = %q, want %q", name, cols[name], path)
		}
	}
	if len(crd.Spec.Names.ShortNames) == 0 || crd.Spec.Names.ShortNames[0] != "room" {
		t.Errorf("short names %v", crd.Spec.Names.ShortNames)
	}
}
