package streamer

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/bus"
)

// The per-IP stream limit holds across the whole streamer fleet. Each client
// IP has a Redis hash: field = pod name, value = that pod's open streams from
// the IP. A pod is alive while its entry in the room's pod set (a sorted set
// scored by expiry) is in the future; it renews it every IPHeartbeat. Counting
// sums the live pods' fields and forgets dead pods' ones, so a crashed pod's
// connections stop counting within IPTTL (30 s) — no key outlives its owner's
// heartbeat for long, and nothing is scanned. Every expiry is reckoned on
// Redis's own clock (TIME), never a pod's: a pod whose clock ran ahead would
// otherwise take its peers for dead and drop their counts, lifting the limit.

// redisNowMs is the Lua prelude that reads Redis's clock in milliseconds
// (TIME before a write needs Redis 5 or later: effects replication).
const redisNowMs = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// acquireScript: KEYS[1] the IP's hash, KEYS[2] the pod set; ARGV pod, limit,
// ttl (ms). Returns 1 when a slot was taken, 0 when the IP is full.
var acquireScript = redis.NewScript(redisNowMs + `
local total = 0
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  local pod, n = h[i], tonumber(h[i+1])
  if pod ~= ARGV[1] then
    local exp = tonumber(redis.call('ZSCORE', KEYS[2], pod))
    if exp == nil or exp < now then
      redis.call('HDEL', KEYS[1], pod)
      n = 0
    end
  end
  total = total + n
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[3]))
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1
`)

// renewScript: KEYS[1] the pod set; ARGV pod, ttl (ms). Renews the pod's
// liveness and drops the pods that have expired.
var renewScript = redis.NewScript(redisNowMs + `
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
return now
`)

// releaseScript: KEYS[1] the IP's hash; ARGV pod, count.
var releaseScript = redis.NewScript(`
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
`)

// limiter counts this pod's streams per IP locally and fleet-wide in Redis.
type limiter struct {
	s        *Server
	rdb      redis.UniversalClient
	schema   string
	pod      string
	podsKey  string
	limit    int
	mu       sync.Mutex
	local    map[netip.Addr]int // streams from each IP whose slot Redis holds
	releases chan netip.Addr
}

func newLimiter(s *Server) *limiter {
	return &limiter{s: s, rdb: s.rdb, schema: s.cfg.Common.Schema, pod: s.cfg.PodName,
		podsKey: bus.Key(s.cfg.Common.Schema, "streamer", "pods"), limit: s.cfg.Limits.StreamsPerIP,
		local: map[netip.Addr]int{}, releases: make(chan netip.Addr, 65536)}
}

func (l *limiter) ipKey(ip netip.Addr) string {
	return bus.Key(l.schema, "streamer", "ip", ip.String())
}

// acquire takes a slot for ip. When Redis cannot answer it falls back to
// this pod's own count, so an outage neither locks everyone out nor lifts
// the limit altogether.
func (l *limiter) acquire(ctx context.Context, ip netip.Addr) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ttl := l.s.cfg.IPTTL.Milliseconds()
	ok, err := acquireScript.Run(ctx, l.rdb, []string{l.ipKey(ip), l.podsKey},
		l.pod, l.limit, ttl).Int()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.s.met.redisErrors.Inc()
		l.s.log.Warn("per-IP stream limit: Redis failed, counting this pod only", "err", err)
		if l.local[ip] >= l.limit {
			return false
		}
	} else if ok == 0 {
		return false
	}
	l.local[ip]++
	return true
}

// release gives a slot back, asynchronously: the hub's writers must never
// wait for Redis. The local count drops when Redis has been told, so the
// heartbeat never re-asserts a slot that is on its way out.
func (l *limiter) release(ip netip.Addr) {
	select {
	case l.releases <- ip:
	default:
		// Full (Redis is down and thousands closed): give up on Redis; the
		// entry expires or is corrected by the next heartbeat.
		l.mu.Lock()
		l.decLocked(ip, 1)
		l.mu.Unlock()
	}
}

func (l *limiter) decLocked(ip netip.Addr, n int) {
	if l.local[ip] <= n {
		delete(l.local, ip)
	} else {
		l.local[ip] -= n
	}
}

// run applies releases in batches and renews the pod's liveness until ctx ends.
func (l *limiter) run(ctx context.Context) {
	hb := time.NewTicker(l.s.cfg.IPHeartbeat)
	defer hb.Stop()
	l.heartbeat(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case ip := <-l.releases:
			batch := map[netip.Addr]int{ip: 1}
		more:
			for len(batch) < 512 {
				select {
				case ip := <-l.releases:
					batch[ip]++
				default:
					break more
				}
			}
			l.applyReleases(ctx, batch)
		case <-hb.C:
			l.heartbeat(ctx)
		}
	}
}

func (l *limiter) applyReleases(ctx context.Context, batch map[netip.Addr]int) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	pipe := l.rdb.Pipeline()
	for ip, n := range batch {
		// Eval, not EvalSha: a pipeline cannot fall back when Redis lost its script cache.
		releaseScript.Eval(ctx, pipe, []string{l.ipKey(ip)}, l.pod, n)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		l.s.met.redisErrors.Inc()
		l.s.log.Warn("per-IP stream limit: could not release slots", "err", err)
	}
	l.mu.Lock()
	for ip, n := range batch {
		l.decLocked(ip, n)
	}
	l.mu.Unlock()
}

// heartbeat renews the pod's liveness and its IP entries; after a Redis
// restart it restores the entries from the local counts (HSETNX: a live
// entry is never overwritten, so concurrent acquires are not undone).
func (l *limiter) heartbeat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ttl := l.s.cfg.IPTTL
	l.mu.Lock()
	counts := make(map[netip.Addr]int, len(l.local))
	for ip, n := range l.local {
		counts[ip] = n
	}
	l.mu.Unlock()
	pipe := l.rdb.Pipeline()
	// EVAL, not EVALSHA: a pipeline cannot fall back when Redis lost its
	// script cache (a restart), and the script is short.
	renewScript.Eval(ctx, pipe, []string{l.podsKey}, l.pod, ttl.Milliseconds())
	for ip, n := range counts {
		k := l.ipKey(ip)
		pipe.HSetNX(ctx, k, l.pod, n)
		pipe.PExpire(ctx, k, 2*ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		l.s.met.redisErrors.Inc()
		l.s.log.Warn("per-IP stream limit: heartbeat failed", "err", err)
	}
}

// forget removes this pod from the fleet's counts (at exit).
func (l *limiter) forget(ctx context.Context) {
	l.mu.Lock()
	ips := make([]netip.Addr, 0, len(l.local))
	for ip := range l.local {
		ips = append(ips, ip)
	}
	l.local = map[netip.Addr]int{}
	l.mu.Unlock()
	pipe := l.rdb.Pipeline()
	pipe.ZRem(ctx, l.podsKey, l.pod)
	for _, ip := range ips {
		pipe.HDel(ctx, l.ipKey(ip), l.pod)
	}
	_, _ = pipe.Exec(ctx)
}
