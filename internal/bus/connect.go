package bus

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Time bounds of every Redis call (docs/runtime.md, "Time bounds"). Redis
// answers in well under a millisecond when it is well, so a call that has
// waited this long is waiting for a server that is gone or frozen.
const (
	DialTimeout = 2 * time.Second
	// IOTimeout bounds one read or write of a call whose context has no
	// deadline; a context deadline, when earlier, wins (ContextTimeoutEnabled).
	IOTimeout = 2 * time.Second
	// MaxRetries: one more try for a connection that broke under a call,
	// within the caller's deadline; never a loop of retries past it.
	MaxRetries = 1
)

// Topology is how the Redis of a URL is deployed.
type Topology string

const (
	// Standalone is one server: redis://, rediss:// or unix://.
	Standalone Topology = "standalone"
	// Sentinel is a master that Redis Sentinels watch and fail over:
	// redis-sentinel:// or rediss-sentinel://, listing the Sentinels.
	Sentinel Topology = "sentinel"
	// Cluster is a Redis Cluster: redis-cluster:// or rediss-cluster://,
	// listing some of its nodes (the rest are discovered).
	Cluster Topology = "cluster"
)

// Connect opens a Redis client from a URL, with time bounds a request can
// rely on: go-redis's defaults (3 s per read, three retries with backoff,
// contexts' deadlines ignored) turned a frozen Redis into a 20 s wait. Here
// every call ends by its context's deadline, or IOTimeout. Subscriptions are
// not affected: their reads wait as long as their caller says
// (PubSub.ReceiveTimeout).
//
// The URL's forms (docs/runtime.md, "Redis"):
//
//	redis://[user:pass@]host:6379/0        one server (rediss:// for TLS, unix:// a socket)
//	redis-sentinel://[user:pass@]s1:26379,s2:26379,s3:26379/0?master_name=mymaster
//	redis-cluster://[user:pass@]n1:6379,n2:6379,n3:6379
//
// A URL's credentials are the data servers' (the master's, the cluster
// nodes'); Sentinels that need their own take sentinel_username and
// sentinel_password query parameters. Other query parameters are go-redis's
// own (dial_timeout, pool_size, ...), and override the bounds above.
//
// Errors never quote the URL: it usually holds a password.
func Connect(rawURL string) (redis.UniversalClient, error) {
	return ConnectWith(rawURL, Bounds{Dial: DialTimeout, IO: IOTimeout})
}

// Bounds are a client's time bounds and size, where its URL does not set them.
type Bounds struct {
	Dial, IO time.Duration
	// PoolSize is the connections per server; 0 is go-redis's default.
	PoolSize int
}

// ConnectWith is Connect with other bounds (the operator's small clients
// that only read connection counts).
func ConnectWith(rawURL string, b Bounds) (redis.UniversalClient, error) {
	topo, u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch topo {
	case Sentinel:
		return connectSentinel(u, b)
	case Cluster:
		return connectCluster(u, b)
	}
	opt, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, parseError(err)
	}
	opt.ContextTimeoutEnabled = true
	b.apply(u, &opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries, &opt.PoolSize)
	return redis.NewClient(opt), nil
}

// TopologyOf says how the Redis of a URL is deployed, or why the URL is not
// one Connect takes.
func TopologyOf(rawURL string) (Topology, error) {
	topo, _, err := parseURL(rawURL)
	return topo, err
}

// parseURL splits a URL's host list (host:port,host:port — which net/url
// does not parse, IPv6 literals least of all) into go-redis's form: the
// first host as the URL's host, the others as addr= parameters; and it
// turns the topology's scheme into redis or rediss.
func parseURL(raw string) (Topology, *url.URL, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", nil, errors.New("the Redis URL has no scheme: want redis://, rediss://, unix://, redis-sentinel:// or redis-cluster://")
	}
	var topo Topology
	switch strings.ToLower(scheme) {
	case "redis", "rediss", "unix":
		topo = Standalone
	case "redis-sentinel", "rediss-sentinel":
		topo = Sentinel
	case "redis-cluster", "rediss-cluster":
		topo = Cluster
	default:
		return "", nil, fmt.Errorf("the Redis URL's scheme %q is not one of redis, rediss, unix, redis-sentinel, rediss-sentinel, redis-cluster, rediss-cluster", scheme)
	}
	base := strings.TrimSuffix(strings.ToLower(scheme), "-sentinel")
	base = strings.TrimSuffix(base, "-cluster")
	if topo == Standalone {
		u, err := url.Parse(raw)
		if err != nil {
			return "", nil, errors.New("the Redis URL is not a valid URL")
		}
		return topo, u, nil
	}

	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo, hostlist := "", authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, hostlist = authority[:at+1], authority[at+1:]
	}
	var hosts []string
	for _, h := range strings.Split(hostlist, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return "", nil, fmt.Errorf("the Redis URL's host %q is not host:port", h)
		}
		hosts = append(hosts, net.JoinHostPort(host, port))
	}
	u, err := url.Parse(base + "://" + userinfo + hosts[0] + tail)
	if err != nil {
		return "", nil, errors.New("the Redis URL is not a valid URL")
	}
	q := u.Query()
	for _, h := range hosts[1:] {
		q.Add("addr", h)
	}
	u.RawQuery = q.Encode()
	if topo == Sentinel && q.Get("master_name") == "" {
		return "", nil, errors.New("a redis-sentinel:// URL needs ?master_name=<the name the Sentinels monitor>")
	}
	return topo, u, nil
}

func connectSentinel(u *url.URL, b Bounds) (redis.UniversalClient, error) {
	// go-redis takes a failover URL's userinfo for the Sentinels; here it is
	// the master's, as in every other form, and the Sentinels' come apart.
	q := u.Query()
	sentUser, sentPass := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	user := u.User
	u2 := *u
	u2.User = nil
	u2.RawQuery = q.Encode()
	opt, err := redis.ParseFailoverURL(u2.String())
	if err != nil {
		return nil, parseError(err)
	}
	opt.SentinelUsername, opt.SentinelPassword = sentUser, sentPass
	if user != nil {
		opt.Username = user.Username()
		opt.Password, _ = user.Password()
	}
	opt.ContextTimeoutEnabled = true
	b.apply(u, &opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries, &opt.PoolSize)
	return redis.NewFailoverClient(opt), nil
}

func connectCluster(u *url.URL, b Bounds) (redis.UniversalClient, error) {
	opt, err := redis.ParseClusterURL(u.String())
	if err != nil {
		return nil, parseError(err)
	}
	opt.ContextTimeoutEnabled = true
	b.apply(u, &opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout, &opt.PoolTimeout, &opt.MaxRetries, &opt.PoolSize)
	return redis.NewClusterClient(opt), nil
}

// apply sets the bounds the URL does not set itself.
func (b Bounds) apply(u *url.URL, dial, read, write, pool *time.Duration, retries, size *int) {
	q := u.Query()
	for _, f := range []struct {
		d     *time.Duration
		v     time.Duration
		param string
	}{{dial, b.Dial, "dial_timeout"}, {read, b.IO, "read_timeout"}, {write, b.IO, "write_timeout"}, {pool, b.IO, "pool_timeout"}} {
		if !q.Has(f.param) && f.v > 0 {
			*f.d = f.v
		}
	}
	if !q.Has("max_retries") {
		*retries = MaxRetries
	}
	if !q.Has("pool_size") && b.PoolSize > 0 {
		*size = b.PoolSize
	}
}

// parseError says what go-redis found wrong without the URL, which its
// errors can quote.
func parseError(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		msg = "the Redis URL is not valid"
	}
	return fmt.Errorf("while parsing the Redis URL: %s", strings.TrimPrefix(msg, "redis: "))
}
