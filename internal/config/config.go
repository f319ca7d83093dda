// Package config binds command-line flags to environment variables so that every
// setting of every component can be given either way (flags win), with defaults
// that work on a developer machine.
package config

import (
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// env returns the value of the environment variable name, or def when unset.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// String registers a string flag whose default comes from the environment variable envName.
func String(fs *flag.FlagSet, p *string, name, envName, def, usage string) {
	record(fs, envName)
	fs.StringVar(p, name, env(envName, def), usage+" ($"+envName+")")
}

// URL registers a connection-URL flag like String. Its default (often from
// the environment, where a Secret puts it) is shown by -h with the password
// masked: help output ends up in terminals, tickets and logs.
func URL(fs *flag.FlagSet, p *string, name, envName, def, usage string) {
	record(fs, envName)
	*p = env(envName, def)
	fs.Var((*urlValue)(p), name, usage+" ($"+envName+")")
}

// urlValue is a string flag whose String, which flag uses for -h, redacts.
type urlValue string

func (u *urlValue) Set(s string) error { *u = urlValue(s); return nil }

func (u *urlValue) String() string {
	if u == nil {
		return ""
	}
	return Redact(string(*u))
}

// dsnPassword finds password=... in a key=value connection string.
var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)

// Redact masks the password of a connection URL ("postgres://u:xxxxx@h/db")
// or of a key=value connection string ("password=xxxxx"), for printing.
func Redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" && u.Host != "" {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return dsnPassword.ReplaceAllString(raw, "${1}xxxxx")
}

// Int registers an int flag whose default comes from the environment variable envName.
func Int(fs *flag.FlagSet, p *int, name, envName string, def int, usage string) {
	record(fs, envName)
	v := def
	if s, ok := os.LookupEnv(envName); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			v = n
		} else {
			badEnv(envName, s, err)
		}
	}
	fs.IntVar(p, name, v, usage+" ($"+envName+")")
}

// Duration registers a duration flag whose default comes from the environment variable envName.
func Duration(fs *flag.FlagSet, p *time.Duration, name, envName string, def time.Duration, usage string) {
	record(fs, envName)
	v := def
	if s, ok := os.LookupEnv(envName); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(s)); err == nil {
			v = d
		} else {
			badEnv(envName, s, err)
		}
	}
	fs.DurationVar(p, name, v, usage+" ($"+envName+")")
}

// Bool registers a bool flag whose default comes from the environment variable envName.
func Bool(fs *flag.FlagSet, p *bool, name, envName string, def bool, usage string) {
	record(fs, envName)
	v := def
	if s, ok := os.LookupEnv(envName); ok {
		if b, err := strconv.ParseBool(strings.TrimSpace(s)); err == nil {
			v = b
		} else {
			badEnv(envName, s, err)
		}
	}
	fs.BoolVar(p, name, v, usage+" ($"+envName+")")
}

// badEnv reports an unparsable environment variable loudly and stops: silently
// falling back to a default would hide a misconfigured limit.
func badEnv(name, val string, err error) {
	fmt.Fprintf(os.Stderr, "invalid value %q for $%s: %v\n", val, name, err)
	os.Exit(2)
}

// Common holds the settings every component shares.
type Common struct {
	// DatabaseURL is the Postgres connection string.
	DatabaseURL string
	// Schema is the Postgres schema holding this room's tables; it also
	// namespaces the room's Redis keys, so many rooms can share both servers.
	Schema string
	// RedisURL is the Redis connection URL.
	RedisURL string
	// Listen is the address the component serves on.
	Listen string
	// AdminListen, when set, serves /healthz, /readyz and /metrics on a
	// separate address (pods use it so the ingress never exposes them).
	AdminListen string
	// TrustedProxies is a comma-separated list of CIDRs whose X-Forwarded-For is believed.
	TrustedProxies string
	// Migrate applies the embedded schema migrations at start (under an advisory lock).
	Migrate bool
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel, LogFormat string

	// DBConnectTimeout bounds opening one Postgres connection and
	// DBStatementTimeout is Postgres's statement_timeout on the pool's
	// sessions: a stuck or unreachable database costs a bounded wait, never
	// a goroutine parked for as long as the outage lasts. Zero: the store's
	// defaults.
	DBConnectTimeout, DBStatementTimeout time.Duration
	// ReadTimeout bounds reading one request, headers and body, so a client
	// trickling bytes cannot hold a connection; IdleTimeout closes keep-alive
	// connections that carry no request. Zero: serve's defaults. A stream
	// is not bound by ReadTimeout once the streamer has taken it over.
	ReadTimeout, IdleTimeout time.Duration
}

// RegisterCommon registers the shared settings on fs.
func RegisterCommon(fs *flag.FlagSet, c *Common) {
	URL(fs, &c.DatabaseURL, "database-url", EnvDatabaseURL, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "Postgres connection URL")
	String(fs, &c.Schema, "db-schema", EnvSchema, "chatr", "Postgres schema of this room (also prefixes its Redis keys)")
	URL(fs, &c.RedisURL, "redis-url", EnvRedisURL, "redis://127.0.0.1:6379/0", "Redis URL")
	String(fs, &c.Listen, "listen", EnvListen, "127.0.0.1:8080", "address to serve on")
	String(fs, &c.AdminListen, "admin-listen", EnvAdminListen, "", "separate address for /healthz, /readyz and /metrics (empty: the main address)")
	String(fs, &c.TrustedProxies, "trusted-proxies", EnvTrustedProxies, "", "comma-separated CIDRs of proxies whose X-Forwarded-For is trusted")
	Bool(fs, &c.Migrate, "migrate", EnvMigrate, true, "apply schema migrations at start (exactly once, under a Postgres advisory lock)")
	String(fs, &c.LogLevel, "log-level", EnvLogLevel, "info", "log level: debug, info, warn, error")
	String(fs, &c.LogFormat, "log-format", EnvLogFormat, "text", "log format: text or json")
	Duration(fs, &c.DBConnectTimeout, "db-connect-timeout", "CHATR_DB_CONNECT_TIMEOUT", DefaultDBConnectTimeout, "longest wait to open one Postgres connection")
	Duration(fs, &c.DBStatementTimeout, "db-statement-timeout", "CHATR_DB_STATEMENT_TIMEOUT", DefaultDBStatementTimeout, "Postgres statement_timeout of every query (migrations excepted)")
	Duration(fs, &c.ReadTimeout, "read-timeout", "CHATR_READ_TIMEOUT", DefaultReadTimeout, "longest time to read one request's headers and body")
	Duration(fs, &c.IdleTimeout, "idle-timeout", "CHATR_IDLE_TIMEOUT", DefaultIdleTimeout, "keep-alive connections idle this long are closed")
}

// Defaults of the time bounds every component shares (docs/runtime.md, "Time
// bounds"). The store and serve apply the same values to zero settings.
const (
	DefaultDBConnectTimeout   = 5 * time.Second
	DefaultDBStatementTimeout = 10 * time.Second
	DefaultReadTimeout        = 10 * time.Second
	DefaultIdleTimeout        = 2 * time.Minute
)

// Logger builds the process logger from the shared settings.
func (c *Common) Logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// Limits holds every limit of the wire contract. The defaults are chatr.ai's.
type Limits struct {
	MessageMaxChars      int
	VerifiedMessages     int
	VerifiedWindow       time.Duration
	UnverifiedMessages   int
	UnverifiedWindow     time.Duration
	AllowUnverifiedLinks bool
	RegistrationsPerIP   int
	RegistrationWindow   time.Duration
	RequestsPerIP        int
	RequestWindow        time.Duration
	StreamsPerIP         int
	PresenceTimeout      time.Duration
	// VerificationsPerAgent new Moltbook verification attempts (jobs) one
	// agent may start per VerificationWindow; joining the live one is free.
	// It keeps one agent from spending the fleet's Moltbook budget.
	VerificationsPerAgent int
	VerificationWindow    time.Duration
}

// DefaultLimits returns the contract's default limits (chatr.ai's).
func DefaultLimits() Limits {
	return Limits{
		MessageMaxChars:    250,
		VerifiedMessages:   10,
		VerifiedWindow:     time.Minute,
		UnverifiedMessages: 1,
		UnverifiedWindow:   5 * time.Minute,
		RegistrationsPerIP: 5,
		RegistrationWindow: time.Hour,
		RequestsPerIP:      120,
		RequestWindow:      time.Minute,
		StreamsPerIP:       10,
		PresenceTimeout:    30 * time.Minute,
		// Not chatr.ai's (it has none): enough for a post that was late and
		// an account claimed late, not for a loop.
		VerificationsPerAgent: 3,
		VerificationWindow:    10 * time.Minute,
	}
}

// RegisterLimits registers the contract's limits on fs, defaulting to DefaultLimits.
func RegisterLimits(fs *flag.FlagSet, l *Limits) {
	d := DefaultLimits()
	Int(fs, &l.MessageMaxChars, "message-max-chars", EnvMessageMaxChars, d.MessageMaxChars, "longest message, in Unicode characters after trimming")
	Int(fs, &l.VerifiedMessages, "verified-messages", EnvVerifiedMessages, d.VerifiedMessages, "messages a verified agent may post per verified window")
	Duration(fs, &l.VerifiedWindow, "verified-window", EnvVerifiedWindow, d.VerifiedWindow, "window of the verified agents' message limit")
	Int(fs, &l.UnverifiedMessages, "unverified-messages", EnvUnverifiedMessages, d.UnverifiedMessages, "messages an unverified agent may post per unverified window")
	Duration(fs, &l.UnverifiedWindow, "unverified-window", EnvUnverifiedWindow, d.UnverifiedWindow, "window of the unverified agents' message limit")
	Bool(fs, &l.AllowUnverifiedLinks, "allow-unverified-links", EnvAllowUnverifiedLinks, d.AllowUnverifiedLinks, "let unverified agents post links")
	Int(fs, &l.RegistrationsPerIP, "registrations-per-ip", EnvRegistrationsPerIP, d.RegistrationsPerIP, "registrations per client IP per registration window")
	Duration(fs, &l.RegistrationWindow, "registration-window", EnvRegistrationWindow, d.RegistrationWindow, "window of the registration limit")
	Int(fs, &l.RequestsPerIP, "requests-per-ip", EnvRequestsPerIP, d.RequestsPerIP, "requests per client IP per request window (all endpoints)")
	Duration(fs, &l.RequestWindow, "request-window", EnvRequestWindow, d.RequestWindow, "window of the per-IP request limit")
	Int(fs, &l.StreamsPerIP, "streams-per-ip", EnvStreamsPerIP, d.StreamsPerIP, "open stream connections per client IP, across the streamer fleet")
	Duration(fs, &l.PresenceTimeout, "presence-timeout", EnvPresenceTimeout, d.PresenceTimeout, "an agent is offline after this long without an authenticated request")
	Int(fs, &l.VerificationsPerAgent, "verifications-per-agent", EnvVerificationsPerAgent, d.VerificationsPerAgent, "new Moltbook verification attempts one agent may start per verification window (0: no limit)")
	Duration(fs, &l.VerificationWindow, "verification-window", EnvVerificationWindow, d.VerificationWindow, "window of the per-agent verification attempt limit")
}
