// Package ratelimit enforces "at most N events per window" limits shared by
// every process of a room, atomically, in Redis.
//
// It keeps a sliding-window log: each key is a sorted set holding one entry per
// allowed event, scored by the time Redis saw it. One Lua script drops the
// entries older than the window, counts the rest and, when there is room, adds
// the new one — all atomically, so two API pods can never both take the last
// slot. The script reads Redis's own clock (TIME), so pods with skewed clocks
// still agree.
//
// Why a sliding log rather than a fixed window or an approximate sliding
// counter: the contract's limits are small and strict ("1 message per 5
// minutes", "5 registrations per hour"). A fixed window lets a client post at
// 4:59 and again at 5:00; the usual two-window approximation lets an
// unverified agent post twice a few seconds apart across a window boundary.
// The log is exact — no window of the given length ever holds more than N
// events — and it tells exactly when the next slot frees (Retry-After). Its
// cost is one set entry per event still inside the window, so at most Limit
// entries per key: tiny for the contract's limits (1, 5, 10, 120).
//
// Rejected attempts are not recorded, so hammering a limit does not extend
// it, and an allowed event can be refunded when the request it paid for fails
// (a quota is spent only on what actually happened).
package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// script is the atomic check-and-take. KEYS[1] is the log; ARGV: limit,
// window in milliseconds, a member unique to this attempt. It returns
// {allowed (0/1), events in the window including this one, ms until a slot
// frees (0 when allowed)}. Milliseconds keep every number within the 14
// significant digits Lua 5.1 prints when it hands numbers to Redis commands.
// Calling TIME before writing needs Redis 5 or later (effects replication).
var script = redis.NewScript(scriptSource)

const scriptSource = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, count + 1, 0}
end
-- Full: the slot frees when the (count-limit+1)-th oldest entry leaves the
-- window (the oldest one unless the limit was lowered).
local e = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
local retry = tonumber(e[2]) + window - now
if retry < 1 then retry = 1 end
return {0, count, retry}
`

// Rule is a limit: at most Limit events in any Window.
type Rule struct {
	Limit  int
	Window time.Duration
}

// Validate reports a rule that cannot be enforced.
func (r Rule) Validate() error {
	if r.Limit < 1 {
		return fmt.Errorf("limit %d: must be at least 1", r.Limit)
	}
	if r.Window < time.Millisecond {
		return fmt.Errorf("window %s: must be at least 1ms", r.Window)
	}
	return nil
}

// Decision is the outcome of one attempt.
type Decision struct {
	// Allowed says the event was counted.
	Allowed bool
	// Count is how many events the window holds now (including this one when allowed).
	Count int
	// Remaining is how many more events the window allows now.
	Remaining int
	// RetryAfter, when not allowed, is how long until a slot frees.
	RetryAfter time.Duration

	key, member string
}

// Limiter checks and takes slots. It is safe for concurrent use; create one
// per process and share it.
type Limiter struct {
	rdb    redis.Cmdable
	script *redis.Script
	node   string
	seq    atomic.Uint64
}

// New returns a Limiter over rdb (a *redis.Client, or a cluster client: each
// script touches one key).
func New(rdb redis.Cmdable) *Limiter { return newLimiter(rdb, script) }

func newLimiter(rdb redis.Cmdable, sc *redis.Script) *Limiter {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Limiter{rdb: rdb, script: sc, node: hex.EncodeToString(b[:])}
}

// ErrRule is returned for a rule that cannot be enforced.
var ErrRule = errors.New("invalid rate-limit rule")

// Allow takes a slot of key under rule if one is free.
func (l *Limiter) Allow(ctx context.Context, key string, rule Rule) (Decision, error) {
	return l.AllowWith(ctx, key, rule, nil)
}

// AllowWith is Allow sending more commands in the same round trip: queue
// adds them to the pipeline after the check (the API records the agent's
// activity this way). They run whether or not the slot is taken, and they
// may run twice — the pipeline is sent again if Redis had lost the script
// (a restart) — so they must be idempotent. If only a queued command fails,
// the Decision is returned with the error, so that the caller can refund a
// slot it will not use.
func (l *Limiter) AllowWith(ctx context.Context, key string, rule Rule, queue func(redis.Pipeliner)) (Decision, error) {
	if err := rule.Validate(); err != nil {
		return Decision{}, fmt.Errorf("%w for %s: %v", ErrRule, key, err)
	}
	// The member only needs to be unique: this process's random id and a counter.
	member := l.node + ":" + strconv.FormatUint(l.seq.Add(1), 36)
	keys, args := []string{key}, []any{rule.Limit, rule.Window.Milliseconds(), member}
	var cmd *redis.Cmd
	var sideErr error
	for attempt := 0; ; attempt++ {
		pipe := l.rdb.Pipeline()
		cmd = l.script.EvalSha(ctx, pipe, keys, args...)
		if queue != nil {
			queue(pipe)
		}
		_, err := pipe.Exec(ctx)
		if err == nil {
			break
		}
		if attempt == 0 && redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			if err := l.script.Load(ctx, l.rdb).Err(); err != nil {
				return Decision{}, fmt.Errorf("while loading the rate-limit script: %w", err)
			}
			continue
		}
		if cmd.Err() != nil {
			return Decision{}, fmt.Errorf("while checking rate limit %s: %w", key, err)
		}
		sideErr = fmt.Errorf("while checking rate limit %s: a command sent with it failed: %w", key, err)
		break
	}
	res, err := cmd.Int64Slice()
	if err != nil || len(res) != 3 {
		return Decision{}, fmt.Errorf("while checking rate limit %s: unexpected reply %v (%v)", key, res, err)
	}
	d := Decision{Allowed: res[0] == 1, Count: int(res[1]), key: key}
	if d.Allowed {
		d.member = member
	} else {
		d.RetryAfter = time.Duration(res[2]) * time.Millisecond
	}
	d.Remaining = max(rule.Limit-d.Count, 0)
	return d, sideErr
}

// Refund gives back the slot an allowed Decision took, for an event that did
// not happen after all (the request failed). Refunding a denied decision, or
// twice, does nothing.
func (l *Limiter) Refund(ctx context.Context, d Decision) error {
	if !d.Allowed || d.member == "" {
		return nil
	}
	if err := l.rdb.ZRem(ctx, d.key, d.member).Err(); err != nil {
		return fmt.Errorf("while refunding rate limit %s: %w", d.key, err)
	}
	return nil
}
