package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Private Redis topologies for the tests of highly available Redis: a
// master with a replica watched by three Sentinels, and a Redis Cluster.
// Each server is a redis-server process of the test's own, on its own port,
// with nothing on disk that outlives the test.

// RedisNode is one redis-server process.
type RedisNode struct {
	Addr string
	dir  string
	cmd  *exec.Cmd
	out  *SyncBuffer
	mu   sync.Mutex
	dead bool
}

// redisServer returns the redis-server binary, or ends the test (a failure
// when Strict) when the machine has none.
func redisServer(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Missing(t, "redis-server is not installed: hack/services.sh installs it")
	}
	return bin
}

// startRedisNode starts redis-server with args (directives as --name value)
// in a folder of its own, and waits until it answers.
func startRedisNode(t testing.TB, conf string, args ...string) *RedisNode {
	t.Helper()
	bin := redisServer(t)
	for attempt := 0; ; attempt++ {
		addr := FreeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		dir, err := os.MkdirTemp("", "chatr-redis-")
		if err != nil {
			t.Fatal(err)
		}
		n := &RedisNode{Addr: addr, dir: dir, out: &SyncBuffer{}}
		var argv []string
		if conf != "" {
			// A Sentinel rewrites its configuration file: it must be its own.
			path := filepath.Join(dir, "sentinel.conf")
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			argv = append(argv, path, "--sentinel")
		}
		argv = append(argv, "--port", port, "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--protected-mode", "no")
		argv = append(argv, args...)
		n.cmd = exec.Command(bin, argv...)
		n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
		// The server dies with the test process, even when it crashes.
		n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := n.cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- n.cmd.Wait() }()
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
		err = Poll(context.Background(), 10*time.Second, func() error {
			select {
			case err := <-exited:
				exited <- err
				return StopTrying(fmt.Errorf("redis-server exited: %v: %s", err, n.out.String()))
			default:
			}
			return rdb.Ping(context.Background()).Err()
		})
		_ = rdb.Close()
		if err != nil {
			_ = n.cmd.Process.Kill()
			<-exited
			_ = os.RemoveAll(dir)
			if attempt < 3 && AddrInUse(err, n.out.String()) {
				continue
			}
			t.Fatalf("redis-server on %s: %v", addr, err)
		}
		t.Cleanup(func() {
			n.Kill()
			<-exited
			_ = os.RemoveAll(dir)
		})
		return n
	}
}

// Kill stops the server at once (SIGKILL), as a crashed machine would.
func (n *RedisNode) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.dead {
		n.dead = true
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
	}
}

// Client is a plain client of this one server, closed when the test ends.
func (n *RedisNode) Client(t testing.TB) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// info returns one field of INFO section.
func info(ctx context.Context, rdb *redis.Client, section, field string) string {
	s, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// RedisSentinel is a master and a replica watched by three Sentinels with a
// quorum of two, failing over one second after the master stops answering.
type RedisSentinel struct {
	Name      string
	Master    *RedisNode
	Replica   *RedisNode
	Sentinels []*RedisNode
}

// StartRedisSentinel starts the group and waits until every Sentinel knows
// the master, its replica and the other Sentinels.
func StartRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	g := &RedisSentinel{Name: "chatr"}
	g.Master = startRedisNode(t, "")
	_, mport, _ := net.SplitHostPort(g.Master.Addr)
	g.Replica = startRedisNode(t, "", "--replicaof", "127.0.0.1", mport)
	ctx := context.Background()
	rep := g.Replica.Client(t)
	Eventually(t, 20*time.Second, "the replica in sync with the master", func() error {
		if s := info(ctx, rep, "replication", "master_link_status"); s != "up" {
			return fmt.Errorf("master_link_status %q", s)
		}
		return nil
	})
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %s 2\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 10000\n"+
		"sentinel parallel-syncs %[1]s 1\n", g.Name, mport)
	for range 3 {
		g.Sentinels = append(g.Sentinels, startRedisNode(t, conf))
	}
	for _, s := range g.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
		t.Cleanup(func() { _ = sc.Close() })
		Eventually(t, 30*time.Second, "sentinel "+s.Addr+" knowing its peers and the replica", func() error {
			peers, err := sc.Sentinels(ctx, g.Name).Result()
			if err != nil {
				return err
			}
			reps, err := sc.Replicas(ctx, g.Name).Result()
			if err != nil {
				return err
			}
			if len(peers) < 2 || len(reps) < 1 {
				return fmt.Errorf("%d other sentinels, %d replicas", len(peers), len(reps))
			}
			return nil
		})
	}
	return g
}

// URL is the group's redis-sentinel:// URL, listing the three Sentinels.
func (g *RedisSentinel) URL() string {
	var addrs []string
	for _, s := range g.Sentinels {
		addrs = append(addrs, s.Addr)
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/0?master_name=" + g.Name
}

// MasterAddr is the master's address as the Sentinels give it.
func (g *RedisSentinel) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for _, s := range g.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second})
		hp, err := sc.GetMasterAddrByName(ctx, g.Name).Result()
		_ = sc.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel names a master: %v", last)
}

// KillMaster kills the master (SIGKILL) and waits until the Sentinels have
// promoted the replica and it takes writes; it returns how long that took.
func (g *RedisSentinel) KillMaster(t testing.TB) time.Duration {
	t.Helper()
	start := time.Now()
	g.Master.Kill()
	ctx := context.Background()
	rep := g.Replica.Client(t)
	Eventually(t, 60*time.Second, "the Sentinels promoting the replica", func() error {
		addr, err := g.MasterAddr(ctx)
		if err != nil {
			return err
		}
		if addr != g.Replica.Addr {
			return fmt.Errorf("the Sentinels still name %s", addr)
		}
		if role := info(ctx, rep, "replication", "role"); role != "master" {
			return fmt.Errorf("the replica's role is %q", role)
		}
		return nil
	})
	return time.Since(start)
}

// RedisCluster is a Redis Cluster of masters only, the slots split evenly.
type RedisCluster struct {
	Nodes []*RedisNode
	moved []movedSlot
}

type movedSlot struct {
	slot int
	to   *RedisNode
}

// StartRedisCluster starts a cluster of n masters and waits until every node
// says the cluster is ok. Slots are assigned and nodes joined with CLUSTER
// commands, so no redis-cli is needed.
func StartRedisCluster(t testing.TB, n int) *RedisCluster {
	t.Helper()
	c := &RedisCluster{}
	var busPorts []string
	for range n {
		// The cluster bus port is chosen too (its default, port+10000,
		// may be outside the range free ports are drawn from).
		busPort := strconv.Itoa(FreePort(t))
		busPorts = append(busPorts, busPort)
		c.Nodes = append(c.Nodes, startRedisNode(t, "", "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
			"--cluster-port", busPort))
	}
	ctx := context.Background()
	const slots = 16384
	for i, node := range c.Nodes {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := node.Client(t).Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", node.Addr, err)
		}
	}
	first := c.Nodes[0].Client(t)
	for i, node := range c.Nodes[1:] {
		host, port, _ := net.SplitHostPort(node.Addr)
		if err := first.Do(ctx, "CLUSTER", "MEET", host, port, busPorts[i+1]).Err(); err != nil {
			t.Fatalf("CLUSTER MEET %s: %v", node.Addr, err)
		}
	}
	for _, node := range c.Nodes {
		rdb := node.Client(t)
		Eventually(t, 30*time.Second, "node "+node.Addr+" seeing the cluster ok", func() error {
			s, err := rdb.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(s, "cluster_state:ok") || !strings.Contains(s, "cluster_known_nodes:"+strconv.Itoa(n)) {
				return fmt.Errorf("%s", bytes.TrimSpace([]byte(strings.SplitN(s, "\n", 2)[0])))
			}
			return nil
		})
	}
	return c
}

// URL is the cluster's redis-cluster:// URL, listing every node.
func (c *RedisCluster) URL() string {
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.Addr)
	}
	return "redis-cluster://" + strings.Join(addrs, ",")
}

// NodeOf returns the node that serves key's slot.
func (c *RedisCluster) NodeOf(t testing.TB, key string) *RedisNode {
	t.Helper()
	ctx := context.Background()
	slot, err := c.Nodes[0].Client(t).ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(c.moved) - 1; i >= 0; i-- {
		if c.moved[i].slot == int(slot) {
			return c.moved[i].to
		}
	}
	for i, node := range c.Nodes {
		lo, hi := i*16384/len(c.Nodes), (i+1)*16384/len(c.Nodes)-1
		if int(slot) >= lo && int(slot) <= hi {
			return node
		}
	}
	t.Fatalf("no node serves slot %d", slot)
	return nil
}

// nodeID is a node's cluster id.
func (n *RedisNode) nodeID(t testing.TB) string {
	t.Helper()
	id, err := n.Client(t).ClusterMyID(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLUSTER MYID on %s: %v", n.Addr, err)
	}
	return id
}

// MoveSlot reshards key's slot, with every key in it, to node to, as
// redis-cli --cluster reshard does: the target imports, the source migrates,
// the keys move with MIGRATE, then both nodes (and, through the cluster bus,
// the others) learn the slot's new owner. A node that gives up a slot ends
// its shard channels' subscriptions with SUNSUBSCRIBE.
func (c *RedisCluster) MoveSlot(t testing.TB, key string, to *RedisNode) {
	t.Helper()
	ctx := context.Background()
	from := c.NodeOf(t, key)
	if from == to {
		t.Fatalf("the slot of %q is already on %s", key, to.Addr)
	}
	src, dst := from.Client(t), to.Client(t)
	slot, err := src.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	srcID, dstID := from.nodeID(t), to.nodeID(t)
	must := func(err error, what string) {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must(dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(), "SETSLOT IMPORTING")
	must(src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(), "SETSLOT MIGRATING")
	host, port, _ := net.SplitHostPort(to.Addr)
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		must(err, "CLUSTER GETKEYSINSLOT")
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "REPLACE", "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(src.Do(ctx, args...).Err(), "MIGRATE")
	}
	for _, n := range c.Nodes {
		must(n.Client(t).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err(), "SETSLOT NODE on "+n.Addr)
	}
	c.moved = append(c.moved, movedSlot{slot: int(slot), to: to})
}
