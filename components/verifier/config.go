package verifier

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/moltbook"
)

// Config is the verifier's configuration. Every field has a flag and an
// environment variable (RegisterFlags); the defaults work on a laptop
// against the real Moltbook, and tests shorten the durations.
type Config struct {
	Common config.Common

	// MoltbookURL is the Moltbook API root (the www host: the bare host's
	// redirect drops the Authorization header).
	MoltbookURL string
	// MoltbookAPIKey is optional; reads need none.
	MoltbookAPIKey string
	// MoltbookRPM is the request budget per minute of ALL the room's
	// verifier replicas together (Moltbook allows about 100 per client).
	MoltbookRPM int
	// MoltbookTimeout bounds one Moltbook request.
	MoltbookTimeout time.Duration

	// MaxAttempts is how many Moltbook calls a job gets before it fails for
	// good (the agent then gets the contract's 502).
	MaxAttempts int
	// PostAttempts is how many calls may find no post with the code before
	// the job answers "Verification POST not found": owners post late, and
	// a new post can take a moment to show in recentPosts.
	PostAttempts int
	// Lease is how long a claimed job is a worker's; a crashed worker's job
	// is taken again after it. It must exceed MoltbookTimeout.
	Lease time.Duration
	// PollInterval is the longest an idle worker sleeps without a
	// notification (the fallback when NOTIFY is lost), and how often
	// expired leases are requeued and the queue depth measured.
	PollInterval time.Duration
	// Concurrency is how many jobs one replica works on at once.
	Concurrency int
	// BackoffBase and BackoffMax shape the exponential backoff (with
	// jitter) between attempts.
	BackoffBase, BackoffMax time.Duration
	// WorkerID names this replica in leases and logs (default: the pod name
	// or host name, plus a random suffix).
	WorkerID string

	// RetentionMaxAge and RetentionMaxMessages are what the room keeps
	// (zero: every message, as the original chatr.ai does); RetentionJobs
	// is how long finished verification jobs are kept. The verifier applies
	// them every RetentionInterval, RetentionBatch rows per statement
	// (retention.go).
	RetentionMaxAge      time.Duration
	RetentionMaxMessages int
	RetentionJobs        time.Duration
	RetentionInterval    time.Duration
	RetentionBatch       int
}

// RegisterFlags registers the shared settings and the verifier's own on fs.
func RegisterFlags(fs *flag.FlagSet, c *Config) {
	config.RegisterCommon(fs, &c.Common)
	config.String(fs, &c.MoltbookURL, "moltbook-url", config.EnvMoltbookURL, moltbook.DefaultBaseURL, "Moltbook API base URL")
	config.String(fs, &c.MoltbookAPIKey, "moltbook-api-key", config.EnvMoltbookAPIKey, "", "optional Moltbook API key (sent as Bearer)")
	config.Int(fs, &c.MoltbookRPM, "moltbook-rpm", config.EnvMoltbookRPM, 100, "Moltbook requests per minute, for all verifier replicas together")
	config.Duration(fs, &c.MoltbookTimeout, "moltbook-timeout", "CHATR_MOLTBOOK_TIMEOUT", 10*time.Second, "timeout of one Moltbook request")
	config.Int(fs, &c.MaxAttempts, "verify-max-attempts", config.EnvVerifyMaxAttempts, 8, "Moltbook calls per job before it fails for good")
	config.Int(fs, &c.PostAttempts, "verify-post-attempts", "CHATR_VERIFY_POST_ATTEMPTS", 3, "calls that may find no post with the code before answering 'Verification POST not found'")
	config.Duration(fs, &c.Lease, "verify-lease", "CHATR_VERIFY_LEASE", 60*time.Second, "how long a claimed job belongs to a worker (a crashed worker's job is taken again after it)")
	config.Duration(fs, &c.PollInterval, "verify-poll-interval", "CHATR_VERIFY_POLL_INTERVAL", 5*time.Second, "longest idle sleep without a notification; also how often expired leases are requeued")
	config.Int(fs, &c.Concurrency, "verify-concurrency", "CHATR_VERIFY_CONCURRENCY", 4, "jobs one replica works on at once")
	config.Duration(fs, &c.BackoffBase, "verify-backoff", "CHATR_VERIFY_BACKOFF", 2*time.Second, "first retry delay (doubles each attempt, with jitter)")
	config.Duration(fs, &c.BackoffMax, "verify-backoff-max", "CHATR_VERIFY_BACKOFF_MAX", 5*time.Minute, "longest retry delay")
	config.String(fs, &c.WorkerID, "worker-id", config.EnvPodName, "", "name of this replica in leases and logs (default: host name)")
	config.Duration(fs, &c.RetentionMaxAge, "retention-max-age", config.EnvRetentionMaxAge, 0, "delete messages older than this (0: keep them)")
	config.Int(fs, &c.RetentionMaxMessages, "retention-max-messages", config.EnvRetentionMaxMessages, 0, "keep only the newest this many messages (0: all)")
	config.Duration(fs, &c.RetentionJobs, "retention-jobs", config.EnvRetentionJobs, 7*24*time.Hour, "delete finished verification jobs this long after they finished (0: keep them)")
	config.Duration(fs, &c.RetentionInterval, "retention-interval", "CHATR_RETENTION_INTERVAL", time.Minute, "how often the retention runs")
	config.Int(fs, &c.RetentionBatch, "retention-batch", "CHATR_RETENTION_BATCH", 1000, "rows one retention statement deletes at most")
}

// Validate reports settings the verifier cannot work with.
func (c *Config) Validate() error {
	var errs []error
	if c.MoltbookRPM < 1 {
		errs = append(errs, fmt.Errorf("moltbook-rpm %d: must be at least 1", c.MoltbookRPM))
	}
	if c.MoltbookTimeout <= 0 {
		errs = append(errs, fmt.Errorf("moltbook-timeout %s: must be positive", c.MoltbookTimeout))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("verify-max-attempts %d: must be at least 1", c.MaxAttempts))
	}
	if c.PostAttempts < 1 {
		errs = append(errs, fmt.Errorf("verify-post-attempts %d: must be at least 1", c.PostAttempts))
	}
	if c.Lease <= c.MoltbookTimeout {
		errs = append(errs, fmt.Errorf("verify-lease %s: must exceed moltbook-timeout %s, or slow answers would lose their lease", c.Lease, c.MoltbookTimeout))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("verify-poll-interval %s: must be positive", c.PollInterval))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("verify-concurrency %d: must be at least 1", c.Concurrency))
	}
	if c.RetentionMaxAge < 0 {
		errs = append(errs, fmt.Errorf("retention-max-age %s: must not be negative (0 keeps every message)", c.RetentionMaxAge))
	}
	if c.RetentionMaxMessages < 0 || c.RetentionMaxMessages > 0 && c.RetentionMaxMessages < minKeptMessages {
		errs = append(errs, fmt.Errorf("retention-max-messages %d: must be 0 (keep all) or at least %d, the history a new stream shows", c.RetentionMaxMessages, minKeptMessages))
	}
	if c.RetentionJobs < 0 {
		errs = append(errs, fmt.Errorf("retention-jobs %s: must not be negative (0 keeps finished jobs)", c.RetentionJobs))
	}
	if c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase {
		errs = append(errs, fmt.Errorf("verify-backoff %s / verify-backoff-max %s: want 0 < backoff <= backoff-max", c.BackoffBase, c.BackoffMax))
	}
	return errors.Join(errs...)
}
