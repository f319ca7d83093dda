package api

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/ratelimit"
)

// Config is everything the API server needs. Zero values of the API's own
// knobs mean their defaults, so tests can fill in only Common and Limits.
type Config struct {
	Common config.Common
	Limits config.Limits
	// VerifyWait bounds how long POST /api/verify/complete waits for the
	// verifier's result before answering 202 pending.
	VerifyWait time.Duration
	// MaxBatch caps how many concurrent posts one Postgres transaction (and
	// one pipelined publish) carries; see writer.go.
	MaxBatch int
	// DBMaxConns caps the Postgres pool (0: default).
	DBMaxConns int
	// RequestTimeout is every request's deadline: what has not been
	// answered by then is answered 503 with Retry-After, and everything the
	// request waits on (Postgres, Redis, the post writer) gives up with it.
	// verify/complete gets VerifyWait on top.
	RequestTimeout time.Duration
	// MaxInFlight caps the requests one process works on at once; the ones
	// beyond are shed at once with 503 instead of piling up while a
	// dependency is slow.
	MaxInFlight int
	// ConnsPerIP caps the open connections of one client address (the TCP
	// peer; trusted proxies are exempt). Applied by serve's listener.
	ConnsPerIP int
	// CORSOrigins lists the origins whose pages may call the writing
	// endpoints from a browser (comma-separated, or "*"); none by default.
	// Reads are open to every origin (cors.go).
	CORSOrigins string
	// ModerationToken is the room's moderator token (moderation.go); empty:
	// the room has no moderation. New keeps only its hash.
	ModerationToken string
	// ModerationListen is the address of the moderation API, a listener of
	// its own that the Ingress never routes to (empty: not served).
	ModerationListen string

	// mod is the moderation state withDefaults derives from ModerationToken.
	mod    *moderation
	modErr error
}

// Defaults of the API's own knobs.
const (
	defaultVerifyWait = 10 * time.Second
	defaultMaxBatch   = 256
	defaultDBMaxConns = 12
	// DefaultRequestTimeout, DefaultMaxInFlight and DefaultConnsPerIP are
	// the time and load bounds of the API (docs/runtime.md, "Time bounds").
	DefaultRequestTimeout = 5 * time.Second
	DefaultMaxInFlight    = 256
	DefaultConnsPerIP     = 64
)

// RegisterFlags binds every setting to a flag and its environment variable.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	config.RegisterCommon(fs, &c.Common)
	config.RegisterLimits(fs, &c.Limits)
	config.Duration(fs, &c.VerifyWait, "verify-wait", config.EnvVerifyWait, defaultVerifyWait, "how long verify/complete waits for the verifier before answering 202")
	config.Int(fs, &c.MaxBatch, "post-batch", "CHATR_POST_BATCH", defaultMaxBatch, "most posts committed together in one Postgres transaction")
	config.Int(fs, &c.DBMaxConns, "db-max-conns", "CHATR_DB_MAX_CONNS", defaultDBMaxConns, "Postgres connections per API process")
	config.Duration(fs, &c.RequestTimeout, "request-timeout", "CHATR_REQUEST_TIMEOUT", DefaultRequestTimeout, "deadline of every request (503 with Retry-After beyond)")
	config.Int(fs, &c.MaxInFlight, "max-in-flight", "CHATR_MAX_IN_FLIGHT", DefaultMaxInFlight, "requests one process works on at once (503 beyond)")
	config.String(fs, &c.CORSOrigins, "cors-origins", config.EnvCORSOrigins, "", "origins whose web pages may register, post and verify from a browser (comma-separated, or *; reads are open to all)")
	config.String(fs, &c.ModerationToken, "moderation-token", config.EnvModerationToken, "", "the room's moderator token, at least 16 characters (empty: no moderation; in pods it comes from a Secret)")
	config.String(fs, &c.ModerationListen, "moderation-listen", config.EnvModerationListen, "", "address of the moderation API, apart from the public one (empty: not served)")
	config.Int(fs, &c.ConnsPerIP, "conns-per-ip", "CHATR_CONNS_PER_IP", DefaultConnsPerIP, "open connections per client address, trusted proxies exempt (429 beyond)")
}

// withDefaults fills the zero values.
func (c Config) withDefaults() Config {
	if c.VerifyWait <= 0 {
		c.VerifyWait = defaultVerifyWait
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = defaultMaxBatch
	}
	if c.DBMaxConns <= 0 {
		c.DBMaxConns = defaultDBMaxConns
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.ConnsPerIP <= 0 {
		c.ConnsPerIP = DefaultConnsPerIP
	}
	if c.mod == nil && c.modErr == nil {
		// Only the token's hash is kept from here on.
		c.mod, c.modErr = newModeration(c.ModerationToken)
		c.ModerationToken = ""
	}
	return c
}

// validate refuses limits that cannot be enforced, loudly at start rather
// than with a 500 on the first request.
func (c Config) validate() error {
	l := c.Limits
	var errs []error
	if c.modErr != nil {
		errs = append(errs, c.modErr)
	}
	if l.MessageMaxChars < 1 {
		errs = append(errs, fmt.Errorf("message-max-chars %d: must be at least 1", l.MessageMaxChars))
	}
	if l.PresenceTimeout <= 0 {
		errs = append(errs, fmt.Errorf("presence-timeout %s: must be positive", l.PresenceTimeout))
	}
	for name, r := range map[string]ratelimit.Rule{
		"verified-messages/verified-window":        {Limit: l.VerifiedMessages, Window: l.VerifiedWindow},
		"unverified-messages/unverified-window":    {Limit: l.UnverifiedMessages, Window: l.UnverifiedWindow},
		"registrations-per-ip/registration-window": {Limit: l.RegistrationsPerIP, Window: l.RegistrationWindow},
		"requests-per-ip/request-window":           {Limit: l.RequestsPerIP, Window: l.RequestWindow},
	} {
		if err := r.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
