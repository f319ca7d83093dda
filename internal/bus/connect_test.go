package bus_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// Each URL form opens the client of its topology, with the time bounds the
// URL does not set itself, and the credentials where they belong.
func TestConnectURLForms(t *testing.T) {
	rdb, err := bus.Connect("redis://:s3cret@127.0.0.1:6379/2")
	if err != nil {
		t.Fatal(err)
	}
	o := rdb.(*redis.Client).Options()
	if o.Addr != "127.0.0.1:6379" || o.DB != 2 || o.Password != "s3cret" || o.ReadTimeout != bus.IOTimeout ||
		o.DialTimeout != bus.DialTimeout || o.MaxRetries != bus.MaxRetries || !o.ContextTimeoutEnabled {
		t.Errorf("standalone options %+v", o)
	}
	_ = rdb.Close()

	rdb, err = bus.Connect("redis://127.0.0.1:6379/0?read_timeout=7s&max_retries=3")
	if err != nil {
		t.Fatal(err)
	}
	if o := rdb.(*redis.Client).Options(); o.ReadTimeout != 7*time.Second || o.MaxRetries != 3 || o.WriteTimeout != bus.IOTimeout {
		t.Errorf("the URL's own settings were not kept: %+v", o)
	}
	_ = rdb.Close()

	rdb, err = bus.Connect("redis-sentinel://app:s3cret@10.0.0.1:26379,10.0.0.2:26379,[fd00::3]:26379/1?master_name=mymaster&sentinel_password=watch")
	if err != nil {
		t.Fatal(err)
	}
	fc, ok := rdb.(*redis.Client)
	if !ok {
		t.Fatalf("a Sentinel URL gave a %T", rdb)
	}
	if o := fc.Options(); o.Username != "app" || o.Password != "s3cret" || o.DB != 1 || o.ReadTimeout != bus.IOTimeout {
		t.Errorf("sentinel master options %+v", o)
	}
	_ = rdb.Close()

	rdb, err = bus.Connect("rediss-cluster://:s3cret@n1:6379,n2:6380,[fd00::3]:6381?pool_size=3")
	if err != nil {
		t.Fatal(err)
	}
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("a cluster URL gave a %T", rdb)
	}
	o2 := cc.Options()
	if !slices.Equal(o2.Addrs, []string{"n1:6379", "n2:6380", "[fd00::3]:6381"}) || o2.Password != "s3cret" ||
		o2.TLSConfig == nil || o2.PoolSize != 3 || o2.ReadTimeout != bus.IOTimeout || o2.MaxRetries != bus.MaxRetries {
		t.Errorf("cluster options %+v", o2)
	}
	_ = rdb.Close()

	for raw, want := range map[string]string{
		"http://:s3cret@redis:6379/0":                         "scheme",
		"redis:s3cret@redis":                                  "no scheme",
		"redis-sentinel://:s3cret@s1:26379,s2:26379/0":        "master_name",
		"redis-cluster://:s3cret@n1:6379,n2/0":                `"n2" is not host:port`,
		"redis-cluster://:s3cret@n1:6379?bogus=1":             "unexpected option",
		"redis://:s3cret@redis:notaport/0":                    "not a valid URL",
		"redis-sentinel://:s3cret@s1:1/0?master_name=m&db=x":  "database",
		"redis-sentinel://:s3cret@s1:1/a/b?master_name=m":     "path",
		"redis-cluster://:s3cret@n1:6379?dial_timeout=banana": "dial_timeout",
	} {
		_, err := bus.Connect(raw)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error quotes the password: %v", raw, err)
		}
	}
}

// FuzzRedisURL: no URL makes Connect panic, and no error quotes the URL's
// password.
func FuzzRedisURL(f *testing.F) {
	f.Add(uint8(0), "127.0.0.1:6379", "/0", "")
	f.Add(uint8(1), "a:1,b:2,[::1]:3", "/0", "master_name=m")
	f.Add(uint8(2), "n1:6379,n2:6379", "", "pool_size=2&addr=n3:1")
	f.Add(uint8(3), "h", "/x/y", "read_timeout=%zz")
	schemes := []string{"redis", "redis-sentinel", "redis-cluster", "rediss", "rediss-sentinel", "rediss-cluster", "unix", "http"}
	f.Fuzz(func(t *testing.T, scheme uint8, hosts, path, query string) {
		const pass = "pw-Zq7x"
		raw := schemes[int(scheme)%len(schemes)] + "://user:" + pass + "@" + hosts + path
		if query != "" {
			raw += "?" + query
		}
		rdb, err := bus.Connect(raw)
		if err != nil {
			if strings.Contains(hosts+path+query, pass) {
				return
			}
			if strings.Contains(err.Error(), pass) {
				t.Fatalf("the error quotes the password: %v", err)
			}
			return
		}
		_ = rdb.Close()
	})
}

// On a Redis Cluster the room's channel is a shard channel: served by the
// node of the room's slot alone (SSUBSCRIBE there, no plain subscription on
// any node), on the same slot as the room's keys, and every message arrives
// in order across clients of different pods.
func TestShardedFanOutOnCluster(t *testing.T) {
	c := testenv.StartRedisCluster(t, 3)
	ctx := context.Background()
	schema := testenv.Schema(t)
	pub, err := bus.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := bus.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	b := bus.New(sub, schema)
	ps, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()

	home := c.NodeOf(t, b.Channel())
	for _, k := range []string{bus.Key(schema, "presence"), bus.Key(schema, "streamer", "pods"), bus.Key(schema, "rl", "ip", "1.2.3.4")} {
		if n := c.NodeOf(t, k); n != home {
			t.Errorf("key %s is on %s, the channel on %s: the room's scripts would cross slots", k, n.Addr, home.Addr)
		}
	}
	for _, n := range c.Nodes {
		rdb := n.Client(t)
		shard, err := rdb.PubSubShardNumSub(ctx, b.Channel()).Result()
		if err != nil {
			t.Fatal(err)
		}
		plain, err := rdb.PubSubNumSub(ctx, b.Channel()).Result()
		if err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		if n == home {
			want = 1
		}
		if shard[b.Channel()] != want || plain[b.Channel()] != 0 {
			t.Errorf("node %s: %d shard and %d plain subscriptions, want %d and 0", n.Addr, shard[b.Channel()], plain[b.Channel()], want)
		}
	}

	const total = 200
	msgs := make([]model.Message, 0, total)
	for i := 1; i <= total; i++ {
		msgs = append(msgs, model.Message{ID: int64(i), Content: fmt.Sprint("m", i), Timestamp: time.Now()})
	}
	pb := bus.New(pub, schema)
	for i := 0; i < total; i += 20 {
		if err := pb.Publish(ctx, msgs[i:i+20]); err != nil {
			t.Fatal(err)
		}
	}
	for want := int64(1); want <= total; want++ {
		m, err := ps.ReceiveTimeout(ctx, 10*time.Second)
		if err != nil {
			t.Fatalf("waiting for message %d: %v", want, err)
		}
		got, err := bus.Decode(m.(*redis.Message).Payload)
		if err != nil || got.ID != want {
			t.Fatalf("got %+v (%v), want id %d", got, err, want)
		}
	}
}

// When a cluster node gives up the room's slot it ends the shard
// subscription itself; the bus recognises that reply, and a new
// subscription lands on the slot's new node and receives again.
func TestClusterSlotMoveEndsTheSubscription(t *testing.T) {
	c := testenv.StartRedisCluster(t, 3)
	ctx := context.Background()
	schema := testenv.Schema(t)
	rdb, err := bus.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	b := bus.New(rdb, schema)
	ps, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	home := c.NodeOf(t, b.Channel())
	to := c.Nodes[0]
	if to == home {
		to = c.Nodes[1]
	}
	c.MoveSlot(t, b.Channel(), to)
	m, err := ps.ReceiveTimeout(ctx, 10*time.Second)
	if err != nil {
		t.Fatalf("no reply after the slot moved: %v", err)
	}
	s, ok := m.(*redis.Subscription)
	if !ok || !b.Dropped(s) {
		t.Fatalf("reply %#v after the slot moved, want the server's sunsubscribe", m)
	}
	ps2, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatalf("subscribing after the slot moved: %v", err)
	}
	defer ps2.Close()
	n, err := to.Client(t).PubSubShardNumSub(ctx, b.Channel()).Result()
	if err != nil || n[b.Channel()] != 1 {
		t.Fatalf("the new node has %v shard subscriptions (%v), want 1", n, err)
	}
	testenv.Eventually(t, 10*time.Second, "a message through the new node", func() error {
		if err := b.Publish(ctx, []model.Message{{ID: 1, Content: "x", Timestamp: time.Now()}}); err != nil {
			return err
		}
		m, err := ps2.ReceiveTimeout(ctx, time.Second)
		if err != nil {
			return err
		}
		if _, ok := m.(*redis.Message); !ok {
			return fmt.Errorf("got %#v", m)
		}
		return nil
	})
}
