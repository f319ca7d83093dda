package config

import (
	"flag"
	"slices"
	"sync"
)

// The names of the settings that cross from the operator to the pods: each
// is a CHATR_* environment variable the components read (and a flag of the
// same meaning), and the variable the operator writes, from the room's
// ConfigMap, its Secrets or the downward API. They are named once, here,
// and both sides use the names; controllers' settings test checks that
// every variable the operator writes is one its component reads, and that
// every setting a component reads is written or listed as deliberately not.
const (
	EnvDatabaseURL    = "CHATR_DATABASE_URL"
	EnvSchema         = "CHATR_DB_SCHEMA"
	EnvRedisURL       = "CHATR_REDIS_URL"
	EnvListen         = "CHATR_LISTEN"
	EnvAdminListen    = "CHATR_ADMIN_LISTEN"
	EnvTrustedProxies = "CHATR_TRUSTED_PROXIES"
	EnvMigrate        = "CHATR_MIGRATE"
	EnvLogLevel       = "CHATR_LOG_LEVEL"
	EnvLogFormat      = "CHATR_LOG_FORMAT"
	EnvPodName        = "CHATR_POD_NAME"

	EnvMessageMaxChars       = "CHATR_MESSAGE_MAX_CHARS"
	EnvVerifiedMessages      = "CHATR_VERIFIED_MESSAGES"
	EnvVerifiedWindow        = "CHATR_VERIFIED_WINDOW"
	EnvUnverifiedMessages    = "CHATR_UNVERIFIED_MESSAGES"
	EnvUnverifiedWindow      = "CHATR_UNVERIFIED_WINDOW"
	EnvAllowUnverifiedLinks  = "CHATR_ALLOW_UNVERIFIED_LINKS"
	EnvRegistrationsPerIP    = "CHATR_REGISTRATIONS_PER_IP"
	EnvRegistrationWindow    = "CHATR_REGISTRATION_WINDOW"
	EnvRequestsPerIP         = "CHATR_REQUESTS_PER_IP"
	EnvRequestWindow         = "CHATR_REQUEST_WINDOW"
	EnvStreamsPerIP          = "CHATR_STREAMS_PER_IP"
	EnvPresenceTimeout       = "CHATR_PRESENCE_TIMEOUT"
	EnvVerificationsPerAgent = "CHATR_VERIFICATIONS_PER_AGENT"
	EnvVerificationWindow    = "CHATR_VERIFICATION_WINDOW"

	// The API's.
	EnvVerifyWait  = "CHATR_VERIFY_WAIT"
	EnvCORSOrigins = "CHATR_CORS_ORIGINS"
	// The moderation API's (docs/operations.md, "Moderation"): the token
	// comes from the Secret the ChatRoom names, never the ConfigMap.
	EnvModerationToken  = "CHATR_MODERATION_TOKEN"
	EnvModerationListen = "CHATR_MODERATION_LISTEN"

	// The streamers'.
	EnvMaxConnections = "CHATR_MAX_CONNECTIONS"
	EnvDrainTime      = "CHATR_DRAIN_TIME"
	EnvPublicURL      = "CHATR_PUBLIC_URL"

	// The verifier's.
	EnvMoltbookURL       = "CHATR_MOLTBOOK_URL"
	EnvMoltbookAPIKey    = "CHATR_MOLTBOOK_API_KEY"
	EnvMoltbookRPM       = "CHATR_MOLTBOOK_RPM"
	EnvVerifyMaxAttempts = "CHATR_VERIFY_MAX_ATTEMPTS"

	// The retention, applied by the verifier.
	EnvRetentionMaxAge      = "CHATR_RETENTION_MAX_AGE"
	EnvRetentionMaxMessages = "CHATR_RETENTION_MAX_MESSAGES"
	EnvRetentionJobs        = "CHATR_RETENTION_JOBS"
)

// registered holds, per flag set, the environment variables registered on
// it through this package (Settings).
var registered sync.Map // *flag.FlagSet → *settingList

type settingList struct {
	mu    sync.Mutex
	names []string
}

func record(fs *flag.FlagSet, envName string) {
	v, _ := registered.LoadOrStore(fs, &settingList{})
	l := v.(*settingList)
	l.mu.Lock()
	if !slices.Contains(l.names, envName) {
		l.names = append(l.names, envName)
	}
	l.mu.Unlock()
}

// Settings lists the environment variables registered on fs, in
// registration order: what a component configured on fs reads.
func Settings(fs *flag.FlagSet) []string {
	v, ok := registered.Load(fs)
	if !ok {
		return nil
	}
	l := v.(*settingList)
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.names)
}
