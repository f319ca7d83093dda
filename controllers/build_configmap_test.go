package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/config"
)

// defaultedRoom returns a room named "lobby" in namespace "team-a", changed
// by mod and then defaulted as the API server would.
func defaultedRoom(mod func(*chatrv1.ChatRoom)) *chatrv1.ChatRoom {
	r := &chatrv1.ChatRoom{
		ObjectMeta: metav1.ObjectMeta{Name: "lobby", Namespace: "team-a", UID: "uid-1"},
		Spec: chatrv1.ChatRoomSpec{
			Image:    "ghcr.io/chatr-ai/chatr:1.0",
			Postgres: chatrv1.PostgresSpec{SecretName: "pg"},
			Redis:    chatrv1.RedisSpec{SecretName: "redis"},
		},
	}
	if mod != nil {
		mod(r)
	}
	r.SetDefaults()
	return r
}

func TestBuildConfigMap(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*chatrv1.ChatRoom)
		want map[string]string
	}{
		{"defaults are the contract's", nil, map[string]string{
			config.EnvSchema: "team_a__lobby", config.EnvListen: ":8080", config.EnvAdminListen: ":9090", config.EnvMigrate: "true",
			config.EnvTrustedProxies: "", config.EnvLogLevel: "info", config.EnvLogFormat: "json",
			config.EnvMessageMaxChars: "250", config.EnvVerifiedMessages: "10", config.EnvVerifiedWindow: "1m0s",
			config.EnvUnverifiedMessages: "1", config.EnvUnverifiedWindow: "5m0s", config.EnvAllowUnverifiedLinks: "false",
			config.EnvRegistrationsPerIP: "5", config.EnvRegistrationWindow: "1h0m0s", config.EnvRequestsPerIP: "120",
			config.EnvRequestWindow: "1m0s", config.EnvStreamsPerIP: "10", config.EnvPresenceTimeout: "30m0s", config.EnvVerifyWait: "10s",
			config.EnvVerificationsPerAgent: "3", config.EnvVerificationWindow: "10m0s",
			config.EnvMaxConnections: "20000", config.EnvDrainTime: "30s", config.EnvPublicURL: "",
			config.EnvMoltbookURL: "https://www.moltbook.com/api/v1", config.EnvMoltbookRPM: "100", config.EnvVerifyMaxAttempts: "8",
			config.EnvRetentionMaxAge: "0s", config.EnvRetentionMaxMessages: "0", config.EnvRetentionJobs: "168h0m0s",
		}},
		{"retention", func(r *chatrv1.ChatRoom) {
			r.Spec.Retention = chatrv1.RetentionSpec{MaxAge: &metav1.Duration{Duration: 30 * 24 * time.Hour}, MaxMessages: ptr(int32(100000)),
				FinishedJobsMaxAge: &metav1.Duration{Duration: 24 * time.Hour}}
		}, map[string]string{config.EnvRetentionMaxAge: "720h0m0s", config.EnvRetentionMaxMessages: "100000", config.EnvRetentionJobs: "24h0m0s"}},
		{"spec values", func(r *chatrv1.ChatRoom) {
			r.Spec.Postgres.Schema = "room1"
			r.Spec.TrustedProxies = []string{"10.0.0.0/8", "192.168.0.0/16"}
			r.Spec.Limits.UnverifiedMessages = ptr(int32(0))
			r.Spec.Limits.AllowUnverifiedLinks = true
			r.Spec.Limits.PresenceTimeout = &metav1.Duration{Duration: 90 * time.Second}
			r.Spec.Streamer.DrainTime = &metav1.Duration{Duration: 0}
			r.Spec.Moltbook.URL = "http://fake:9000/api/v1"
		}, map[string]string{
			config.EnvSchema: "room1", config.EnvTrustedProxies: "10.0.0.0/8,192.168.0.0/16",
			config.EnvUnverifiedMessages: "0", config.EnvAllowUnverifiedLinks: "true", config.EnvPresenceTimeout: "1m30s",
			config.EnvDrainTime: "0s", config.EnvMoltbookURL: "http://fake:9000/api/v1",
		}},
		{"the public URL is the Ingress host", func(r *chatrv1.ChatRoom) {
			r.Spec.Ingress = &chatrv1.IngressSpec{Host: "room.example.com", TLSSecretName: "tls"}
		}, map[string]string{config.EnvPublicURL: "https://room.example.com"}},
		{"plain HTTP without TLS", func(r *chatrv1.ChatRoom) {
			r.Spec.Ingress = &chatrv1.IngressSpec{Host: "room.example.com"}
		}, map[string]string{config.EnvPublicURL: "http://room.example.com"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cm := buildConfigMap(defaultedRoom(tc.mod))
			if cm.Name != "lobby-config" || cm.Namespace != "team-a" || len(cm.OwnerReferences) != 1 {
				t.Errorf("metadata %+v", cm.ObjectMeta)
			}
			for k, v := range tc.want {
				if got, ok := cm.Data[k]; !ok || got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			// Every key some component reads is in the ConfigMap.
			for _, c := range chatrv1.Components {
				for _, k := range configKeys(c) {
					if _, ok := cm.Data[k]; !ok {
						t.Errorf("%s reads %s, which the ConfigMap lacks", c, k)
					}
				}
			}
		})
	}
}

// TestConfigHashesFollowWhatEachComponentReads: the point of per-component
// hashes is that a setting rolls only the pods that read it.
func TestConfigHashesFollowWhatEachComponentReads(t *testing.T) {
	hashes := func(mod func(*chatrv1.ChatRoom)) map[chatrv1.Component]string {
		cm := buildConfigMap(defaultedRoom(mod))
		out := map[chatrv1.Component]string{}
		for _, c := range chatrv1.Components {
			out[c] = hashKeys(cm.Data, configKeys(c))
		}
		return out
	}
	base := hashes(nil)
	cases := []struct {
		name  string
		mod   func(*chatrv1.ChatRoom)
		rolls []chatrv1.Component
	}{
		// The limits reach the streamers too: their guide (/skills.md) states
		// them, and they count who is online by the presence timeout.
		{"message limit", func(r *chatrv1.ChatRoom) { r.Spec.Limits.MessageMaxChars = 500 }, []chatrv1.Component{chatrv1.ComponentAPI, chatrv1.ComponentStreamer}},
		{"streams per IP", func(r *chatrv1.ChatRoom) { r.Spec.Limits.StreamsPerIP = 3 }, []chatrv1.Component{chatrv1.ComponentAPI, chatrv1.ComponentStreamer}},
		{"drain time", func(r *chatrv1.ChatRoom) { r.Spec.Streamer.DrainTime = &metav1.Duration{Duration: time.Minute} }, []chatrv1.Component{chatrv1.ComponentStreamer}},
		{"moltbook rate", func(r *chatrv1.ChatRoom) { r.Spec.Moltbook.RequestsPerMinute = 5 }, []chatrv1.Component{chatrv1.ComponentVerifier}},
		{"verification attempts", func(r *chatrv1.ChatRoom) { r.Spec.Limits.VerificationsPerAgent = ptr(int32(1)) }, []chatrv1.Component{chatrv1.ComponentAPI, chatrv1.ComponentStreamer}},
		{"public host", func(r *chatrv1.ChatRoom) { r.Spec.Ingress = &chatrv1.IngressSpec{Host: "room.example.com"} }, []chatrv1.Component{chatrv1.ComponentStreamer}},
		{"verify wait", func(r *chatrv1.ChatRoom) { r.Spec.Moltbook.VerifyWait = &metav1.Duration{Duration: time.Second} }, []chatrv1.Component{chatrv1.ComponentAPI}},
		{"retention", func(r *chatrv1.ChatRoom) { r.Spec.Retention.MaxMessages = ptr(int32(500)) }, []chatrv1.Component{chatrv1.ComponentVerifier}},
		{"log level", func(r *chatrv1.ChatRoom) { r.Spec.Logging.Level = "debug" }, chatrv1.Components},
		{"autoscaling target", func(r *chatrv1.ChatRoom) { r.Spec.Streamer.Autoscaling.TargetConnectionsPerPod = 100 }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := hashes(tc.mod)
			for _, c := range chatrv1.Components {
				rolled := got[c] != base[c]
				want := false
				for _, r := range tc.rolls {
					want = want || r == c
				}
				if rolled != want {
					t.Errorf("%s rolls: %v, want %v", c, rolled, want)
				}
			}
		})
	}
}
