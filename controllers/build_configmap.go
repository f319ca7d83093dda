package controllers

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// Settings keys: the environment variables of docs/runtime.md. The ConfigMap
// holds them all; each component's pods reference only the keys that
// component reads (configKeys), so changing, say, the Moltbook rate limit
// rolls the verifier and not the streamer fleet, whose rollout costs every
// spectator a reconnect.
const (
	envSchema         = "CHATR_DB_SCHEMA"
	envListen         = "CHATR_LISTEN"
	envAdminListen    = "CHATR_ADMIN_LISTEN"
	envTrustedProxies = "CHATR_TRUSTED_PROXIES"
	envMigrate        = "CHATR_MIGRATE"
	envLogLevel       = "CHATR_LOG_LEVEL"
	envLogFormat      = "CHATR_LOG_FORMAT"

	envMessageMaxChars       = "CHATR_MESSAGE_MAX_CHARS"
	envVerifiedMessages      = "CHATR_VERIFIED_MESSAGES"
	envVerifiedWindow        = "CHATR_VERIFIED_WINDOW"
	envUnverifiedMessages    = "CHATR_UNVERIFIED_MESSAGES"
	envUnverifiedWindow      = "CHATR_UNVERIFIED_WINDOW"
	envAllowUnverifiedLinks  = "CHATR_ALLOW_UNVERIFIED_LINKS"
	envRegistrationsPerIP    = "CHATR_REGISTRATIONS_PER_IP"
	envRegistrationWindow    = "CHATR_REGISTRATION_WINDOW"
	envRequestsPerIP         = "CHATR_REQUESTS_PER_IP"
	envRequestWindow         = "CHATR_REQUEST_WINDOW"
	envStreamsPerIP          = "CHATR_STREAMS_PER_IP"
	envPresenceTimeout       = "CHATR_PRESENCE_TIMEOUT"
	envVerifyWait            = "CHATR_VERIFY_WAIT"
	envVerificationsPerAgent = "CHATR_VERIFICATIONS_PER_AGENT"
	envVerificationWindow    = "CHATR_VERIFICATION_WINDOW"

	envMaxConnections = "CHATR_MAX_CONNECTIONS"
	envDrainTime      = "CHATR_DRAIN_TIME"

	envMoltbookURL       = "CHATR_MOLTBOOK_URL"
	envMoltbookRPM       = "CHATR_MOLTBOOK_RPM"
	envVerifyMaxAttempts = "CHATR_VERIFY_MAX_ATTEMPTS"

	// Set from Secrets and the downward API, never from the ConfigMap.
	envDatabaseURL    = "CHATR_DATABASE_URL"
	envRedisURL       = "CHATR_REDIS_URL"
	envMoltbookAPIKey = "CHATR_MOLTBOOK_API_KEY"
	envPodName        = "CHATR_POD_NAME"
)

var commonKeys = []string{envSchema, envListen, envAdminListen, envTrustedProxies, envMigrate, envLogLevel, envLogFormat}

// configKeys returns the ConfigMap keys component c reads, in env order.
func configKeys(c chatrv1.Component) []string {
	keys := append([]string(nil), commonKeys...)
	switch c {
	case chatrv1.ComponentAPI:
		keys = append(keys, envMessageMaxChars, envVerifiedMessages, envVerifiedWindow,
			envUnverifiedMessages, envUnverifiedWindow, envAllowUnverifiedLinks,
			envRegistrationsPerIP, envRegistrationWindow, envRequestsPerIP, envRequestWindow,
			envStreamsPerIP, envPresenceTimeout, envVerifyWait, envVerificationsPerAgent, envVerificationWindow)
	case chatrv1.ComponentStreamer:
		keys = append(keys, envStreamsPerIP, envMaxConnections, envDrainTime)
	case chatrv1.ComponentVerifier:
		keys = append(keys, envMoltbookURL, envMoltbookRPM, envVerifyMaxAttempts)
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
			envSchema:         room.PostgresSchema(),
			envListen:         ":" + itoa(portHTTP),
			envAdminListen:    ":" + itoa(portAdmin),
			envTrustedProxies: strings.Join(s.TrustedProxies, ","),
			envMigrate:        "true",
			envLogLevel:       s.Logging.Level,
			envLogFormat:      s.Logging.Format,

			envMessageMaxChars:       itoa(l.MessageMaxChars),
			envVerifiedMessages:      itoa(l.VerifiedMessages),
			envVerifiedWindow:        formatDuration(l.VerifiedWindow, d.VerifiedWindow.Duration),
			envUnverifiedMessages:    itoa(unverified),
			envUnverifiedWindow:      formatDuration(l.UnverifiedWindow, d.UnverifiedWindow.Duration),
			envAllowUnverifiedLinks:  strconv.FormatBool(l.AllowUnverifiedLinks),
			envRegistrationsPerIP:    itoa(l.RegistrationsPerIP),
			envRegistrationWindow:    formatDuration(l.RegistrationWindow, d.RegistrationWindow.Duration),
			envRequestsPerIP:         itoa(l.RequestsPerIP),
			envRequestWindow:         formatDuration(l.RequestWindow, d.RequestWindow.Duration),
			envStreamsPerIP:          itoa(l.StreamsPerIP),
			envPresenceTimeout:       formatDuration(l.PresenceTimeout, d.PresenceTimeout.Duration),
			envVerifyWait:            formatDuration(s.Moltbook.VerifyWait, chatrv1.DefaultVerifyWait),
			envVerificationsPerAgent: itoa(verifications),
			envVerificationWindow:    formatDuration(l.VerificationWindow, d.VerificationWindow.Duration),

			envMaxConnections: itoa(s.Streamer.MaxConnectionsPerPod),
			envDrainTime:      formatDuration(s.Streamer.DrainTime, chatrv1.DefaultDrainTime),

			envMoltbookURL:       s.Moltbook.URL,
			envMoltbookRPM:       itoa(s.Moltbook.RequestsPerMinute),
			envVerifyMaxAttempts: itoa(s.Moltbook.MaxAttempts),
		},
	}
}
