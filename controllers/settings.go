package controllers

import (
	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/config"
)

// The settings contract between the operator and the pods. Every CHATR_*
// setting a component reads is one of three kinds:
//
//   - written from the ChatRoom into the room's ConfigMap (configKeys);
//   - set on the pod from a Secret or the downward API (podEnv);
//   - left at the component's default, for the reason notFromRoom gives.
//
// TestSettingsContract holds both sides to it: a new component setting
// fails the test until it is written or listed here, and a key the
// operator writes must be one the component reads (a misspelt name would
// otherwise be ignored by the pods without a word).

// podEnv are the settings a component's pods get from Secrets or the
// downward API, never from the ConfigMap.
func podEnv(c chatrv1.Component) []string {
	env := []string{config.EnvDatabaseURL, config.EnvRedisURL}
	switch c {
	case chatrv1.ComponentStreamer:
		env = append(env, config.EnvPodName)
	case chatrv1.ComponentVerifier:
		env = append(env, config.EnvMoltbookAPIKey)
	case chatrv1.ComponentAPI:
		env = append(env, config.EnvModerationToken)
	}
	return env
}

// notFromRoom are the component settings the ChatRoom does not set, and why;
// a key is a setting's name, or "component/NAME" for one component only.
var notFromRoom = map[string]string{
	// Time bounds every component shares: the defaults (docs/runtime.md,
	// "Time bounds") are the contract's promises; a room has no reason to
	// loosen them.
	"CHATR_DB_CONNECT_TIMEOUT":   "a shared time bound; the default suits any room",
	"CHATR_DB_STATEMENT_TIMEOUT": "a shared time bound; the default suits any room",
	"CHATR_READ_TIMEOUT":         "a shared time bound; the default suits any room",
	"CHATR_IDLE_TIMEOUT":         "a shared time bound; the default suits any room",

	// The API's capacity knobs: sized per process, not per room.
	"CHATR_POST_BATCH":      "group-commit tuning, per process",
	"CHATR_DB_MAX_CONNS":    "pool size per API process; scale the API's replicas instead",
	"CHATR_REQUEST_TIMEOUT": "the contract's answer time; the default suits any room",
	"CHATR_MAX_IN_FLIGHT":   "per process; scale the API's replicas instead",
	"CHATR_CONNS_PER_IP":    "per process, behind the ingress controller (a trusted proxy, exempt)",
	"CHATR_CORS_ORIGINS":    "none by default (docs/security.md); a room that serves a web client from another origin sets it in a patch of the API Deployment until the ChatRoom has a field for it",

	// The streamers' tuning: measured defaults (docs/streamer.md).
	"CHATR_STREAM_PING_INTERVAL": "streamer tuning; measured default",
	"CHATR_STREAM_RETRY":         "streamer tuning; measured default",
	"CHATR_STREAM_RING_SIZE":     "streamer tuning; measured default",
	"CHATR_STREAM_QUEUE_BYTES":   "streamer tuning; measured default",
	"CHATR_STREAM_WRITE_TIMEOUT": "streamer tuning; measured default",
	"CHATR_STREAM_GAP_WAIT":      "streamer tuning; measured default",
	"CHATR_STREAM_MAX_REPLAY":    "streamer tuning; measured default",
	"CHATR_STREAM_SHARDS":        "one per CPU the pod is given, which the pod's resources set",
	"CHATR_STREAM_SNDBUF":        "the kernel's autotuning is right unless measured otherwise",
	"CHATR_STREAM_WRITES":        "auto picks io_uring where the pod's seccomp profile allows it and writev otherwise; forcing writev is for measurements",

	// The verifier's job mechanics.
	"CHATR_MOLTBOOK_TIMEOUT":     "verifier tuning; the lease is checked against it at start",
	"CHATR_VERIFY_POST_ATTEMPTS": "verifier tuning",
	"CHATR_VERIFY_LEASE":         "verifier tuning",
	"CHATR_VERIFY_POLL_INTERVAL": "verifier tuning",
	"CHATR_VERIFY_CONCURRENCY":   "per replica; scale the verifier's replicas instead",
	"CHATR_VERIFY_BACKOFF":       "verifier tuning",
	"CHATR_VERIFY_BACKOFF_MAX":   "verifier tuning",
	"CHATR_RETENTION_INTERVAL":   "retention tuning: a pass a minute suits any room",
	"CHATR_RETENTION_BATCH":      "retention tuning: the batch that keeps each statement short",
	// The verifier's worker id defaults to the host name, which Kubernetes
	// sets to the pod's name.
	string(chatrv1.ComponentVerifier) + "/" + config.EnvPodName: "the verifier's worker id; its default, the host name, is the pod name",
}

// notFromRoomReason is why component c's setting k is not set from the room
// ("" when it is not listed).
func notFromRoomReason(c chatrv1.Component, k string) string {
	if why, ok := notFromRoom[string(c)+"/"+k]; ok {
		return why
	}
	return notFromRoom[k]
}
