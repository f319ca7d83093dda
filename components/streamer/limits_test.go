package streamer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/components/streamer"
	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// expectRefused opens a stream and checks it is refused with status and msg.
func expectRefused(t *testing.T, base string, status int, msg string) {
	t.Helper()
	resp, closeFn := sseConnect(t, base+"/api/stream", "", false)
	defer closeFn()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, status)
	}
	var env struct {
		Success    bool   `json:"success"`
		Error      string `json:"error"`
		RetryAfter int    `json:"retryAfter"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Success || env.Error != msg {
		t.Fatalf("body %s, want error %q", body, msg)
	}
	if status == http.StatusTooManyRequests {
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		if ra < 1 || env.RetryAfter != ra {
			t.Fatalf("Retry-After %q and retryAfter %d, want equal and positive", resp.Header.Get("Retry-After"), env.RetryAfter)
		}
	}
}

// The per-IP limit holds across both streamers, is released when a stream
// ends, and forgets a pod that died (stopped renewing) within its TTL.
func TestPerIPLimitAcrossStreamers(t *testing.T) { perIPLimitAcrossStreamers(t, "") }

// The same on a Sentinel-managed master and on a Redis Cluster: the
// limit's scripts touch only the room's hash-tagged keys, one slot.
func TestPerIPLimitAcrossStreamersHighlyAvailable(t *testing.T) {
	t.Run("sentinel", func(t *testing.T) { perIPLimitAcrossStreamers(t, testenv.StartRedisSentinel(t).URL()) })
	t.Run("cluster", func(t *testing.T) { perIPLimitAcrossStreamers(t, testenv.StartRedisCluster(t, 3).URL()) })
}

func perIPLimitAcrossStreamers(t *testing.T, redisURL string) {
	r := newRoom(t, redisURL)
	three := func(c *streamer.Config) { c.Limits.StreamsPerIP = 3; c.PingInterval = 100 * time.Millisecond }
	a := startPod(t, r, "a", three)
	b := startPod(t, r, "b", three)
	_, stopA1 := openSSE(t, a.url, "")
	openSSE(t, a.url, "")
	openSSE(t, b.url, "")
	expectRefused(t, b.url, http.StatusTooManyRequests, "Too many connections")
	expectRefused(t, a.url, http.StatusTooManyRequests, "Too many connections")

	// Releasing one on A frees a slot for B (once A notices the close: at
	// its next write, a ping here).
	stopA1()
	waitAccepted(t, b.url)
	expectRefused(t, a.url, http.StatusTooManyRequests, "Too many connections")

	// A pod that dies without cleaning up (its heartbeat stops) stops counting
	// within IPTTL: here A's Run is stopped while its streams stay open.
	a.cancel()
	<-a.done
	waitAccepted(t, b.url)
}

// waitAccepted retries until base accepts a stream (and keeps it open).
func waitAccepted(t *testing.T, base string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "a stream accepted by "+base, func() error {
		resp, closeFn := sseConnect(t, base+"/api/stream", "", false)
		if resp.StatusCode == http.StatusOK {
			t.Cleanup(closeFn)
			return nil
		}
		closeFn()
		return fmt.Errorf("still refused (%d)", resp.StatusCode)
	})
}

// Beyond MaxConnections a pod answers 503; draining pods refuse new streams.
func TestPodCapAndDrainRefusal(t *testing.T) {
	r := newRoom(t, "")
	p := startPod(t, r, "a", func(c *streamer.Config) { c.MaxConnections = 2 })
	openSSE(t, p.url, "")
	openWS(t, p.url, "")
	expectRefused(t, p.url, http.StatusServiceUnavailable, "Server is at capacity, try again")
	if n := metric(t, p.srv, "chatr_streamer_rejected_total", "reason", "pod_full"); n != 1 {
		t.Errorf("pod_full rejections = %v", n)
	}
}

// Each pod reports its live connection count where the autoscaler reads it,
// with a short TTL, and removes it when it stops.
func TestConnectionCountReport(t *testing.T) {
	r := newRoom(t, "")
	p := startPod(t, r, "pod-7", nil)
	key := bus.Key(r.schema, "streamer", "conns", "pod-7")
	waitKey := func(want string) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, key+" = "+want, func() error {
			if v, _ := r.rdb.Get(context.Background(), key).Result(); v != want {
				return fmt.Errorf("%s = %q", key, v)
			}
			return nil
		})
	}
	waitKey("0")
	_, stop1 := openSSE(t, p.url, "")
	openSSE(t, p.url, "")
	openWS(t, p.url, "")
	waitKey("3")
	ttl, err := r.rdb.PTTL(context.Background(), key).Result()
	if err != nil || ttl <= 0 || ttl > 15*time.Second {
		t.Fatalf("TTL %v (%v), want within 15s", ttl, err)
	}
	stop1()
	_ = stop1
	p.cancel()
	<-p.done
	p.srv.Close()
	if n, _ := r.rdb.Exists(context.Background(), key).Result(); n != 0 {
		t.Fatalf("%s still exists after Close", key)
	}
}

// A pod's liveness in the fleet's stream count is reckoned on Redis's clock
// (TIME), both when a stream takes a slot and at each heartbeat: its expiry
// is Redis's now plus IPTTL. (On the pod's own clock, a pod whose clock ran
// ahead would take its peers for dead and drop their counts.)
func TestStreamLimitUsesRedisClock(t *testing.T) {
	r := newRoom(t, "")
	const ttl = 40 * time.Second
	p := startPod(t, r, "clock", func(c *streamer.Config) {
		c.IPTTL = ttl
		c.IPHeartbeat = 50 * time.Millisecond
	})
	podsKey := bus.Key(r.schema, "streamer", "pods")
	expiry := func() (score float64, redisNow time.Time) {
		t.Helper()
		ctx := context.Background()
		sc, err := r.rdb.ZScore(ctx, podsKey, "clock").Result()
		if err != nil {
			return 0, time.Time{}
		}
		now, err := r.rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return sc, now
	}
	check := func(when string) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, when, func() error {
			sc, now := expiry()
			if sc == 0 {
				return fmt.Errorf("the pod has no liveness entry")
			}
			// Renewed at most a heartbeat ago, on Redis's clock.
			if d := time.UnixMilli(int64(sc)).Sub(now.Add(ttl)); d > 100*time.Millisecond || d < -2*time.Second {
				return fmt.Errorf("expiry is Redis's now + IPTTL %+v", d)
			}
			return nil
		})
	}
	check("after the first heartbeat")
	openSSE(t, p.url, "")
	check("after a stream took a slot")
}
