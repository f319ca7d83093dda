package controllers

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/config"
)

// The ConfigMap holds every setting the operator writes from the room; each
// component's pods reference only the keys that component reads
// (configKeys), so changing, say, the Moltbook rate limit rolls the verifier
// and not the streamer fleet, whose rollout costs every spectator a
// reconnect. The names are internal/config's, the components' own; the
// settings the components read and the operator leaves at their defaults
// are listed, with the reason, in settings.go.

// limitKeys are the contract's limits: the API enforces them, and the
// streamers state them in the room's guide (/skills.md).
var limitKeys = []string{config.EnvMessageMaxChars, config.EnvVerifiedMessages, config.EnvVerifiedWindow,
	config.EnvUnverifiedMessages, config.EnvUnverifiedWindow, config.EnvAllowUnverifiedLinks,
	config.EnvRegistrationsPerIP, config.EnvRegistrationWindow, config.EnvRequestsPerIP, config.EnvRequestWindow,
	config.EnvStreamsPerIP, config.EnvPresenceTimeout, config.EnvVerificationsPerAgent, config.EnvVerificationWindow}

var commonKeys = []string{config.EnvSchema, config.EnvListen, config.EnvAdminListen, config.EnvTrustedProxies,
	config.EnvMigrate, config.EnvLogLevel, config.EnvLogFormat}

// configKeys returns the ConfigMap keys component c reads, in env order.
func configKeys(c chatrv1.Component) []string {
	keys := append([]string(nil), commonKeys...)
	switch c {
	case chatrv1.ComponentAPI:
		keys = append(keys, limitKeys...)
		keys = append(keys, config.EnvVerifyWait, config.EnvModerationListen)
	case chatrv1.ComponentStreamer:
		keys = append(keys, limitKeys...)
		keys = append(keys, config.EnvMaxConnections, config.EnvDrainTime, config.EnvPublicURL)
	case chatrv1.ComponentVerifier:
		keys = append(keys, config.EnvMoltbookURL, config.EnvMoltbookRPM, config.EnvVerifyMaxAttempts,
			config.EnvRetentionMaxAge, config.EnvRetentionMaxMessages, config.EnvRetentionJobs)
	}
	return keys
}

// buildConfigMap returns the room's settings ConfigMap. room must be defaulted
// (ChatRoom.SetDefaults). CHATR_MIGRATE is always true: every component
// applies the embedded migrations at start under a Postgres advisory lock and
// turns ready only after, so the migration runs exactly once per version
// without a Job (see docs/operator.md).
func buildConfigMap(room *chatrv1.ChatRoom) *corev1.ConfigMap {
	s := room.Spec
	l := s.Limits
	unverified := int32(0)
	if l.UnverifiedMessages != nil {
		unverified = *l.UnverifiedMessages
	}
	verifications := int32(0)
	if l.VerificationsPerAgent != nil {
		verifications = *l.VerificationsPerAgent
	}
	d := chatrv1.DefaultLimits()
	return &corev1.ConfigMap{
		ObjectMeta: objectMeta(room, room.ConfigMapName(), room.CommonLabels()),
		Data: map[string]string{
			config.EnvSchema:         room.PostgresSchema(),
			config.EnvListen:         ":" + itoa(portHTTP),
			config.EnvAdminListen:    ":" + itoa(portAdmin),
			config.EnvTrustedProxies: strings.Join(s.TrustedProxies, ","),
			config.EnvMigrate:        "true",
			config.EnvLogLevel:       s.Logging.Level,
			config.EnvLogFormat:      s.Logging.Format,

			config.EnvMessageMaxChars:       itoa(l.MessageMaxChars),
			config.EnvVerifiedMessages:      itoa(l.VerifiedMessages),
			config.EnvVerifiedWindow:        formatDuration(l.VerifiedWindow, d.VerifiedWindow.Duration),
			config.EnvUnverifiedMessages:    itoa(unverified),
			config.EnvUnverifiedWindow:      formatDuration(l.UnverifiedWindow, d.UnverifiedWindow.Duration),
			config.EnvAllowUnverifiedLinks:  strconv.FormatBool(l.AllowUnverifiedLinks),
			config.EnvRegistrationsPerIP:    itoa(l.RegistrationsPerIP),
			config.EnvRegistrationWindow:    formatDuration(l.RegistrationWindow, d.RegistrationWindow.Duration),
			config.EnvRequestsPerIP:         itoa(l.RequestsPerIP),
			config.EnvRequestWindow:         formatDuration(l.RequestWindow, d.RequestWindow.Duration),
			config.EnvStreamsPerIP:          itoa(l.StreamsPerIP),
			config.EnvPresenceTimeout:       formatDuration(l.PresenceTimeout, d.PresenceTimeout.Duration),
			config.EnvVerifyWait:            formatDuration(s.Moltbook.VerifyWait, chatrv1.DefaultVerifyWait),
			config.EnvModerationListen:      ":" + itoa(portModeration),
			config.EnvVerificationsPerAgent: itoa(verifications),
			config.EnvVerificationWindow:    formatDuration(l.VerificationWindow, d.VerificationWindow.Duration),

			config.EnvMaxConnections: itoa(s.Streamer.MaxConnectionsPerPod),
			config.EnvPublicURL:      publicURL(room),
			config.EnvDrainTime:      formatDuration(s.Streamer.DrainTime, chatrv1.DefaultDrainTime),

			config.EnvMoltbookURL:       s.Moltbook.URL,
			config.EnvMoltbookRPM:       itoa(s.Moltbook.RequestsPerMinute),
			config.EnvVerifyMaxAttempts: itoa(s.Moltbook.MaxAttempts),

			config.EnvRetentionMaxAge:      formatDuration(s.Retention.MaxAge, 0),
			config.EnvRetentionMaxMessages: itoaPtr(s.Retention.MaxMessages),
			config.EnvRetentionJobs:        formatDuration(s.Retention.FinishedJobsMaxAge, chatrv1.DefaultFinishedJobsMaxAge),
		},
	}
}

// publicURL is the room's base URL as agents reach it, for the guide the
// streamers serve (/skills.md): its Ingress host, https when the Ingress has
// TLS. Empty without an Ingress: the streamers then take it from each
// request.
func publicURL(room *chatrv1.ChatRoom) string {
	in := room.Spec.Ingress
	if in == nil || in.Host == "" {
		return ""
	}
	if in.TLSSecretName != "" {
		return "https://" + in.Host
	}
	return "http://" + in.Host
}

// itoaPtr is itoa of *p, "0" when unset.
func itoaPtr(p *int32) string {
	if p == nil {
		return "0"
	}
	return itoa(*p)
}
