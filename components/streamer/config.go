package streamer

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/chatr-ai/chatr/internal/config"
)

// Config is the streamer's configuration. The zero values of the tuning
// fields mean "the default", so tests set only what they care about.
type Config struct {
	Common config.Common
	Limits config.Limits

	// PodName names this pod's connection-count key and its per-IP entries
	// in Redis (the downward API's metadata.name; default: the hostname).
	PodName string
	// PublicURL is the room's base URL as agents reach it, stated by the
	// guide (/skills.md, /llms.txt); empty: the URL each request came to.
	PublicURL string
	// MaxConnections caps this pod's open streams; beyond it new streams get 503.
	MaxConnections int
	// DrainTime is how long a stopping pod takes to close its streams, gradually.
	DrainTime time.Duration

	// PingInterval is how often an idle stream gets a ": ping" comment (SSE) or
	// a ping frame (WebSocket). It must stay under 15 s (the contract), and it
	// is also how quickly a vanished client is noticed: at the next write.
	PingInterval time.Duration
	// StatsInterval is how often the stats event goes out (the contract: 10 s).
	StatsInterval time.Duration
	// RetryHint is the reconnection delay the stream's "retry:" field suggests.
	RetryHint time.Duration
	// RingSize is how many recent messages the pod keeps in memory to serve
	// history and resumes without Postgres (at least 100).
	RingSize int
	// QueueBytes bounds what may wait for one slow client beyond its initial
	// backlog; a client that falls further behind is disconnected (it resumes).
	QueueBytes int
	// WriteTimeout is how long a client may leave bytes unread before it is
	// disconnected: the deadline of every write.
	WriteTimeout time.Duration
	// GapWait is how long an out-of-order message waits for the ones before it
	// before the gap is filled from Postgres.
	GapWait time.Duration
	// MaxReplay caps how many missed messages a resume replays from Postgres;
	// a client further behind gets the history instead.
	MaxReplay int
	// Shards is the number of hub writers (0: one per CPU).
	Shards int
	// SendBuffer, when positive, sets SO_SNDBUF on stream sockets (bytes).
	SendBuffer int
	// Writes is how the shards write to sockets: "auto" (or empty) sends
	// each pass's writes in batches through io_uring where the kernel and
	// the pod's seccomp profile allow it, else one writev per connection;
	// "writev" always writes one writev per connection.
	Writes string

	// ReportInterval and ReportTTL are the connection-count report's period
	// and key TTL (docs/runtime.md: 5 s and 15 s). IPHeartbeat is how often the
	// pod renews its per-IP entries; IPTTL is how long a dead pod's entries
	// keep counting. Tests shorten them.
	ReportInterval, ReportTTL time.Duration
	IPHeartbeat, IPTTL        time.Duration
}

// Defaults of the tuning fields.
const (
	defaultPingInterval   = 10 * time.Second
	defaultStatsInterval  = 10 * time.Second
	defaultRetryHint      = 2 * time.Second
	defaultRingSize       = 2048
	defaultQueueBytes     = 256 << 10
	defaultWriteTimeout   = 10 * time.Second
	defaultGapWait        = 250 * time.Millisecond
	defaultMaxReplay      = 10000
	defaultReportInterval = 5 * time.Second
	defaultReportTTL      = 15 * time.Second
	defaultIPHeartbeat    = 10 * time.Second
	defaultIPTTL          = 30 * time.Second
	// historySize is the contract's history length.
	historySize = 100
)

// RegisterFlags registers every streamer setting on fs, each also readable
// from its environment variable (docs/runtime.md).
func RegisterFlags(fs *flag.FlagSet, c *Config) {
	config.RegisterCommon(fs, &c.Common)
	config.RegisterLimits(fs, &c.Limits)
	host, _ := os.Hostname()
	config.String(fs, &c.PodName, "pod-name", config.EnvPodName, host, "this pod's name (names its connection-count key in Redis)")
	config.String(fs, &c.PublicURL, "public-url", config.EnvPublicURL, "", "the room's base URL as agents reach it, for /skills.md and /llms.txt (empty: the URL of each request)")
	config.Int(fs, &c.MaxConnections, "max-connections", config.EnvMaxConnections, 20000, "per-pod stream connection cap (503 beyond)")
	config.Duration(fs, &c.DrainTime, "drain-time", config.EnvDrainTime, 30*time.Second, "on SIGTERM, close streams gradually over this long, then exit")
	config.Duration(fs, &c.PingInterval, "ping-interval", "CHATR_STREAM_PING_INTERVAL", defaultPingInterval, "keep-alive comment interval (at most 15s)")
	config.Duration(fs, &c.RetryHint, "retry-hint", "CHATR_STREAM_RETRY", defaultRetryHint, "reconnection delay suggested by the stream's retry: field")
	config.Int(fs, &c.RingSize, "ring-size", "CHATR_STREAM_RING_SIZE", defaultRingSize, "recent messages kept in memory for history and resumes")
	config.Int(fs, &c.QueueBytes, "queue-bytes", "CHATR_STREAM_QUEUE_BYTES", defaultQueueBytes, "bytes that may wait for one client before it is disconnected as too slow")
	config.Duration(fs, &c.WriteTimeout, "write-timeout", "CHATR_STREAM_WRITE_TIMEOUT", defaultWriteTimeout, "how long a client may leave bytes unread before it is disconnected")
	config.Duration(fs, &c.GapWait, "gap-wait", "CHATR_STREAM_GAP_WAIT", defaultGapWait, "how long a missing message is waited for before it is read from Postgres")
	config.Int(fs, &c.MaxReplay, "max-replay", "CHATR_STREAM_MAX_REPLAY", defaultMaxReplay, "most missed messages a resume replays from Postgres")
	config.Int(fs, &c.Shards, "shards", "CHATR_STREAM_SHARDS", 0, "hub writer goroutines (0: one per CPU)")
	config.Int(fs, &c.SendBuffer, "send-buffer", "CHATR_STREAM_SNDBUF", 0, "SO_SNDBUF of stream sockets in bytes (0: the kernel's autotuning)")
	config.String(fs, &c.Writes, "writes", "CHATR_STREAM_WRITES", "auto", "how stream sockets are written: auto (batched through io_uring where allowed, else writev) or writev")
}

// withDefaults fills unset tuning fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	defInt := func(p *int, d int) {
		if *p <= 0 {
			*p = d
		}
	}
	def(&c.PingInterval, defaultPingInterval)
	def(&c.StatsInterval, defaultStatsInterval)
	def(&c.RetryHint, defaultRetryHint)
	def(&c.WriteTimeout, defaultWriteTimeout)
	def(&c.GapWait, defaultGapWait)
	def(&c.DrainTime, 30*time.Second)
	def(&c.ReportInterval, defaultReportInterval)
	def(&c.ReportTTL, defaultReportTTL)
	def(&c.IPHeartbeat, defaultIPHeartbeat)
	def(&c.IPTTL, defaultIPTTL)
	defInt(&c.RingSize, defaultRingSize)
	defInt(&c.QueueBytes, defaultQueueBytes)
	defInt(&c.MaxReplay, defaultMaxReplay)
	defInt(&c.MaxConnections, 20000)
	switch c.Writes {
	case "":
		c.Writes = "auto"
	case "auto", "writev":
	default:
		return c, fmt.Errorf("stream writes %q: want auto or writev", c.Writes)
	}
	if c.RingSize < historySize {
		c.RingSize = historySize
	}
	if c.Limits.StreamsPerIP <= 0 {
		c.Limits.StreamsPerIP = config.DefaultLimits().StreamsPerIP
	}
	if c.PodName == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return c, errors.New("pod name is empty and the hostname is unknown: set CHATR_POD_NAME")
		}
		c.PodName = h
	}
	pub, err := parsePublicURL(c.PublicURL)
	if err != nil {
		return c, err
	}
	c.PublicURL = pub
	if c.PingInterval > 15*time.Second {
		return c, fmt.Errorf("ping interval %s is over the contract's 15s", c.PingInterval)
	}
	return c, nil
}

// DrainTimeout is how long the process should give Drain: the drain time plus
// a margin for the last slow clients to meet their write deadline.
func DrainTimeout(c Config) time.Duration {
	c, _ = c.withDefaults()
	return c.DrainTime + c.WriteTimeout + 5*time.Second
}
