//go:build realnode

package realnode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The node's addresses. The veth pair's subnet is picked per run (its third
// octet at random) so that a run never collides with the addresses of another
// one on the same host; everything else lives inside the node's own network
// namespace and cannot collide.
const (
	nodeName    = "node1"
	podCIDR     = "10.244.0.0/24"
	clusterCIDR = "10.244.0.0/16"
	bridgeIP    = "10.244.0.1" // the node's address on the pods' bridge
	serviceCIDR = "10.96.0.0/24"
	kubeSvcIP   = "10.96.0.1" // the kubernetes Service, first address of the range
)

// node is a one-node Kubernetes cluster inside a network namespace of its
// own: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// containerd (with runc), the kubelet, kube-proxy and kube-router (the
// NetworkPolicy firewall), plus the room's Postgres and Redis as plain
// processes on the node (where a platform team's managed databases would be).
// Everything is started with nsenter into the namespace only, so the kubelet's
// volume mounts stay visible to containerd; nothing binds on the host but the
// host end of the veth pair.
type node struct {
	t      *testing.T
	dir    string // all state: certificates, configs, data, logs
	assets string // the binaries (hack/node-assets.sh)
	netns  string
	hostIF string
	hostIP string // the host's end of the veth pair: the test's address as the node sees it
	nodeIP string // the node's address, reachable from the host

	token      string // the admin bearer token
	caPEM      []byte
	kubeconfig string // admin kubeconfig, usable from the host
	cfg        *rest.Config
	cs         *kubernetes.Clientset

	procs map[string]*proc
	order []string // start order, for teardown in reverse

	// netnsBefore are the network namespaces named in /run/netns before the
	// node started: the pods' (cni-*) that appear later are this node's.
	netnsBefore map[string]bool
}

// proc is one daemon the node runs, its output in logs/<name>.log.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startNode brings the whole node up and registers its teardown, which runs
// even when the test fails and stops only what this run started.
func startNode(t *testing.T, assets string) *node {
	t.Helper()
	var b [2]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	octet := 100 + int(b[0])%150
	n := &node{
		t:      t,
		assets: assets,
		netns:  "chatr-rn-" + id,
		hostIF: "crn" + id,
		hostIP: fmt.Sprintf("172.31.%d.1", octet),
		nodeIP: fmt.Sprintf("172.31.%d.2", octet),
		procs:  map[string]*proc{},
	}
	n.netnsBefore = map[string]bool{}
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			n.netnsBefore[e.Name()] = true
		}
	}
	dir, err := os.MkdirTemp("", "chatr-realnode-")
	if err != nil {
		t.Fatal(err)
	}
	n.dir = dir
	// Postgres runs as its own user and must be able to reach its data dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"logs", "pki", "etcd", "containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	t.Cleanup(n.teardown)
	t.Logf("real node: state in %s, network namespace %s, node IP %s", dir, n.netns, n.nodeIP)

	step := func(name string, f func() error) {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("node: %s: %v", name, err)
		}
		t.Logf("node: %s (%.1fs)", name, time.Since(start).Seconds())
	}
	step("network namespace", n.setupNetwork)
	step("certificates and kubeconfigs", n.writeCredentials)
	step("etcd + kube-apiserver ready", n.startControlPlane)
	step("containerd ready", n.startContainerd)
	step("kubelet registered, node Ready", n.startKubelet)
	step("kube-proxy + kube-router", n.startNetworkDaemons)
	step("Postgres + Redis", n.startDatabases)
	return n
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (n *node) path(p ...string) string { return filepath.Join(append([]string{n.dir}, p...)...) }

// run runs a short command and returns its combined output.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// inNS runs a short command inside the node's network namespace.
func (n *node) inNS(name string, args ...string) (string, error) {
	return run("ip", append([]string{"netns", "exec", n.netns, name}, args...)...)
}

func (n *node) setupNetwork() error {
	steps := [][]string{
		{"ip", "netns", "add", n.netns},
		{"ip", "link", "add", n.hostIF, "type", "veth", "peer", "name", "eth0", "netns", n.netns},
		{"ip", "addr", "add", n.hostIP + "/30", "dev", n.hostIF},
		{"ip", "link", "set", n.hostIF, "up"},
		{"ip", "-n", n.netns, "addr", "add", n.nodeIP + "/30", "dev", "eth0"},
		{"ip", "-n", n.netns, "link", "set", "eth0", "up"},
		{"ip", "-n", n.netns, "link", "set", "lo", "up"},
		// The node's default route points at the host end; nothing leaves the
		// host: the host does not forward for the namespace.
		{"ip", "-n", n.netns, "route", "add", "default", "via", n.hostIP},
	}
	for _, s := range steps {
		if _, err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	for _, kv := range []string{"net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1", "net.ipv4.conf.all.route_localnet=1"} {
		if _, err := n.inNS("sysctl", "-qw", kv); err != nil {
			return err
		}
	}
	return nil
}

// start runs a daemon inside the node's network namespace.
func (n *node) start(name, bin string, args ...string) (*proc, error) {
	return n.startAs(name, nil, bin, args...)
}

func (n *node) startAs(name string, cred *syscall.Credential, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(n.path("logs", name+".log"))
	if err != nil {
		return nil, err
	}
	ns := []string{"--net=/run/netns/" + n.netns}
	if cred != nil {
		// Entering the namespace needs root; nsenter drops to the user after.
		ns = append(ns, fmt.Sprintf("--setuid=%d", cred.Uid), fmt.Sprintf("--setgid=%d", cred.Gid))
	}
	cmd := exec.Command("nsenter", append(append(ns, "--", bin), args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = n.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	n.procs[name] = p
	n.order = append(n.order, name)
	return p, nil
}

// stop ends a daemon: SIGTERM to its process group, SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond until it holds, a daemon it depends on has died, or
// timeout passes. Start-up waits are on conditions the daemons report.
func (n *node) waitFor(what string, timeout time.Duration, cond func() error, deps ...string) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = cond(); last == nil {
			return nil
		}
		for _, d := range deps {
			if p := n.procs[d]; p != nil && p.exited() {
				return fmt.Errorf("%s exited (%v) while waiting for %s; its log: %s", d, p.err, what, n.tail(d, 20))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %v", what, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tail returns the last lines of a daemon's log.
func (n *node) tail(name string, lines int) string {
	b, _ := os.ReadFile(n.path("logs", name+".log"))
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return "\n  " + strings.Join(ls, "\n  ")
}

func (n *node) bin(name string) string { return filepath.Join(n.assets, name) }

func (n *node) writeCredentials() error {
	ca, err := newCA()
	if err != nil {
		return err
	}
	n.caPEM = ca.certPEM
	serving, err := ca.serving([]net.IP{net.ParseIP(n.nodeIP), net.ParseIP(kubeSvcIP), net.ParseIP("127.0.0.1")},
		[]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"})
	if err != nil {
		return err
	}
	saPub, saKey, err := newServiceAccountKey()
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"pki/ca.crt": ca.certPEM, "pki/ca.key": ca.keyPEM,
		"pki/apiserver.crt": serving.certPEM, "pki/apiserver.key": serving.keyPEM,
		"pki/sa.pub": saPub, "pki/sa.key": saKey,
	}
	// Static tokens: the system daemons act as cluster admins (the cluster is
	// the test's own); the operator and the room act through their
	// ServiceAccounts, which is what the test checks.
	var tokens strings.Builder
	n.token = randHex(16)
	fmt.Fprintf(&tokens, "%s,admin,admin,system:masters\n", n.token)
	for name, content := range files {
		if err := os.WriteFile(n.path(name), content, 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(n.path("pki/tokens.csv"), []byte(tokens.String()), 0o600); err != nil {
		return err
	}
	n.kubeconfig = n.path("admin.kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["node"] = &clientcmdapi.Cluster{Server: "https://" + n.nodeIP + ":6443", CertificateAuthorityData: ca.certPEM}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: n.token}
	kc.Contexts["node"] = &clientcmdapi.Context{Cluster: "node", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "node"
	if err := clientcmd.WriteToFile(*kc, n.kubeconfig); err != nil {
		return err
	}
	n.cfg, err = clientcmd.BuildConfigFromFlags("", n.kubeconfig)
	if err != nil {
		return err
	}
	n.cfg.QPS, n.cfg.Burst = 100, 200
	n.cs, err = kubernetes.NewForConfig(n.cfg)
	return err
}

func randHex(nb int) string {
	b := make([]byte, nb)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (n *node) startControlPlane() error {
	if _, err := n.start("etcd", n.bin("etcd"),
		"--data-dir="+n.path("etcd"), "--name=node1",
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=node1=http://127.0.0.1:2380", "--unsafe-no-fsync", "--quota-backend-bytes=2147483648",
	); err != nil {
		return err
	}
	if _, err := n.start("kube-apiserver", n.bin("kube-apiserver"),
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=0.0.0.0", "--secure-port=6443", "--advertise-address="+n.nodeIP,
		"--tls-cert-file="+n.path("pki/apiserver.crt"), "--tls-private-key-file="+n.path("pki/apiserver.key"),
		"--client-ca-file="+n.path("pki/ca.crt"),
		"--token-auth-file="+n.path("pki/tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+n.path("pki/sa.pub"),
		"--service-account-signing-key-file="+n.path("pki/sa.key"),
		"--service-cluster-ip-range="+serviceCIDR,
		"--allow-privileged=false",
		"--cert-dir="+n.path("pki/apiserver-generated"),
		"--profiling=false",
	); err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: rest.CopyConfig(n.cfg).Transport}
	tr, err := rest.TransportFor(n.cfg)
	if err != nil {
		return err
	}
	hc.Transport = tr
	if err := n.waitFor("kube-apiserver /readyz", 90*time.Second, func() error {
		resp, err := hc.Get("https://" + n.nodeIP + ":6443/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}, "etcd", "kube-apiserver"); err != nil {
		return err
	}
	if _, err := n.start("kube-controller-manager", n.bin("kube-controller-manager"),
		"--kubeconfig="+n.kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=10257",
		"--allocate-node-cidrs=true", "--cluster-cidr="+clusterCIDR, "--node-cidr-mask-size=24",
		"--service-cluster-ip-range="+serviceCIDR,
		"--root-ca-file="+n.path("pki/ca.crt"),
		"--service-account-private-key-file="+n.path("pki/sa.key"),
		"--use-service-account-credentials=false",
		"--controllers=*,-bootstrapsigner,-tokencleaner",
		// Deleted pods and evictions act at once: the test's single node.
		"--terminated-pod-gc-threshold=50",
	); err != nil {
		return err
	}
	if _, err := n.start("kube-scheduler", n.bin("kube-scheduler"),
		"--kubeconfig="+n.kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=10259",
	); err != nil {
		return err
	}
	return nil
}

func (n *node) startContainerd() error {
	sock := n.path("containerd", "containerd.sock")
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # root here lacks CAP_SYS_RESOURCE: runc may not lower oom_score_adj.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, n.path("containerd", "root"), n.path("containerd", "state"), sock, pauseImage, n.path("cni", "net.d"))
	must(n.t, os.WriteFile(n.path("containerd.toml"), []byte(conf), 0o644))
	cni := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "chatr-node",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q, "gateway": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, podCIDR, bridgeIP, n.path("cni", "ipam"))
	must(n.t, os.WriteFile(n.path("cni", "net.d", "10-chatr.conflist"), []byte(cni), 0o644))
	if _, err := n.start("containerd", "containerd", "--config", n.path("containerd.toml")); err != nil {
		return err
	}
	if err := n.waitFor("containerd socket", 30*time.Second, func() error {
		_, err := run("ctr", "--address", sock, "version")
		return err
	}, "containerd"); err != nil {
		return err
	}
	for _, img := range imageArchives() {
		if _, err := run("ctr", "--address", sock, "-n", "k8s.io", "images", "import", "--no-unpack=false", img); err != nil {
			return err
		}
	}
	return nil
}

func (n *node) startKubelet() error {
	resolv := n.path("resolv.conf")
	must(n.t, os.WriteFile(resolv, []byte("# the node has no cluster DNS; the room addresses everything by IP\nnameserver 127.0.0.1\n"), 0o644))
	conf := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
podLogsDir: %s
resolvConf: %s
clusterDomain: cluster.local
serializeImagePulls: false
maxPods: 60
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
`, n.nodeIP, n.path("containerd", "containerd.sock"), n.path("pod-logs"), resolv)
	must(n.t, os.WriteFile(n.path("kubelet.yaml"), []byte(conf), 0o644))
	if _, err := n.start("kubelet", n.bin("kubelet"),
		"--config="+n.path("kubelet.yaml"), "--kubeconfig="+n.kubeconfig,
		"--hostname-override="+nodeName, "--node-ip="+n.nodeIP,
		"--root-dir="+n.path("kubelet"), "--cert-dir="+n.path("kubelet", "pki"),
		"--v=1",
	); err != nil {
		return err
	}
	ctx := context.Background()
	return n.waitFor("node Ready with its podCIDR", 120*time.Second, func() error {
		no, err := n.cs.CoreV1().Nodes().Get(ctx, nodeName, metav1GetOptions)
		if err != nil {
			return err
		}
		if no.Spec.PodCIDR == "" {
			return errors.New("no podCIDR yet")
		}
		for _, c := range no.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("Ready=%s: %s", c.Status, c.Message)
			}
		}
		return errors.New("no Ready condition yet")
	}, "kubelet", "containerd", "kube-controller-manager")
}

func (n *node) startNetworkDaemons() error {
	if _, err := n.start("kube-proxy", n.bin("kube-proxy"),
		"--kubeconfig="+n.kubeconfig, "--hostname-override="+nodeName,
		"--proxy-mode=iptables", "--cluster-cidr="+clusterCIDR,
		"--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0",
		"--metrics-bind-address=127.0.0.1:10249", "--healthz-bind-address=127.0.0.1:10256",
	); err != nil {
		return err
	}
	if _, err := n.start("kube-router", n.bin("kube-router"),
		"--kubeconfig="+n.kubeconfig, "--hostname-override="+nodeName,
		"--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
		"--enable-ipv4=true", "--enable-ipv6=false",
	); err != nil {
		return err
	}
	// kube-proxy is ready once it has written the kubernetes Service's rules.
	return n.waitFor("kube-proxy rules for the kubernetes Service", 60*time.Second, func() error {
		out, err := n.inNS("iptables-save", "-t", "nat")
		if err != nil {
			return err
		}
		if !strings.Contains(out, kubeSvcIP) {
			return errors.New("no rule yet")
		}
		return nil
	}, "kube-proxy", "kube-router")
}

// pgBin finds Debian's PostgreSQL server binaries (the newest installed).
func pgBin(name string) (string, error) {
	ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(ms) == 0 {
		return "", fmt.Errorf("no PostgreSQL %s under /usr/lib/postgresql (hack/services.sh installs it)", name)
	}
	return ms[len(ms)-1], nil
}

func (n *node) startDatabases() error {
	initdb, err := pgBin("initdb")
	if err != nil {
		return err
	}
	postgres, _ := pgBin("postgres")
	pgUser, err := lookupUser("postgres")
	if err != nil {
		return err
	}
	data := n.path("pg")
	must(n.t, os.MkdirAll(data, 0o700))
	must(n.t, os.Chown(data, int(pgUser.Uid), int(pgUser.Gid)))
	cmd := exec.Command(initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pgUser}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fmt.Fprintln(hba, "host all all 0.0.0.0/0 trust")
	hba.Close()
	if _, err := n.startAs("postgres", pgUser, postgres, "-D", data, "-k", data,
		"-c", "listen_addresses=*", "-c", "fsync=off", "-c", "max_connections=200"); err != nil {
		return err
	}
	if _, err := n.start("redis", "redis-server", "--bind", "0.0.0.0", "--port", "6379", "--save", "",
		"--appendonly", "no", "--protected-mode", "no", "--dir", n.dir); err != nil {
		return err
	}
	return n.waitFor("Postgres and Redis accept connections", 60*time.Second, func() error {
		for _, port := range []string{"5432", "6379"} {
			c, err := net.DialTimeout("tcp", n.nodeIP+":"+port, time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	}, "postgres", "redis")
}

// teardown stops every daemon this run started (pods first, through the
// kubelet's own runtime), unmounts what the kubelet mounted and deletes the
// network namespace, which takes every interface and rule with it.
func (n *node) teardown() {
	t := n.t
	if t.Failed() || os.Getenv("CHATR_REALNODE_KEEP_LOGS") != "" {
		n.dumpLogs()
	}
	sock := n.path("containerd", "containerd.sock")
	if p := n.procs["kubelet"]; p != nil {
		p.stop(10 * time.Second)
	}
	// Every container of this node: kill its tasks through this containerd.
	if p := n.procs["containerd"]; p != nil && !p.exited() {
		if out, err := run("ctr", "--address", sock, "-n", "k8s.io", "tasks", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _ = run("ctr", "--address", sock, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id)
			}
		}
	}
	for i := len(n.order) - 1; i >= 0; i-- {
		grace := 10 * time.Second
		if n.order[i] == "kube-apiserver" {
			grace = 20 * time.Second // it can take more than 15 s to exit on SIGTERM
		}
		n.procs[n.order[i]].stop(grace)
	}
	// Shims outlive containerd by design; those of this node name its socket.
	if out, err := run("pgrep", "-f", "containerd-shim.*"+regexpQuote(n.path("containerd"))); err == nil {
		for _, pid := range strings.Fields(out) {
			var p int
			fmt.Sscan(pid, &p)
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
	unmountUnder(n.dir)
	// containerd pins each pod's network namespace under /run/netns/cni-*;
	// killed sandboxes leave them: delete the ones that appeared during the run.
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "cni-") && !n.netnsBefore[e.Name()] {
				if _, err := run("ip", "netns", "del", e.Name()); err != nil {
					t.Logf("teardown: %v", err)
				}
			}
		}
	}
	// The kubelet links every container's log into /var/log/containers (a
	// fixed path); remove the links that point into this node's state.
	if links, err := filepath.Glob("/var/log/containers/*.log"); err == nil {
		for _, l := range links {
			if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, n.dir+"/") {
				_ = os.Remove(l)
			}
		}
	}
	if _, err := run("ip", "netns", "del", n.netns); err != nil {
		t.Logf("teardown: %v", err)
	}
	_, _ = run("ip", "link", "del", n.hostIF)
	if os.Getenv("CHATR_REALNODE_KEEP") == "" {
		if err := os.RemoveAll(n.dir); err != nil {
			t.Logf("teardown: %v", err)
		}
	}
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unmountUnder unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		_ = syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

// dumpLogs copies the daemons' and pods' logs where the test was told to keep
// them ($CHATR_REALNODE_LOGDIR), or prints the tail of each when it failed.
func (n *node) dumpLogs() {
	dst := os.Getenv("CHATR_REALNODE_LOGDIR")
	if dst != "" {
		_ = os.MkdirAll(dst, 0o755)
		_, _ = run("cp", "-r", n.path("logs"), n.path("pod-logs"), dst)
		n.t.Logf("logs kept in %s", dst)
		return
	}
	for _, name := range n.order {
		n.t.Logf("--- %s (last lines)%s", name, n.tail(name, 15))
	}
	// And every container's, which say why a pod crash-loops.
	logs, _ := filepath.Glob(n.path("pod-logs", "*", "*", "*.log"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(ls) > 10 {
			ls = ls[len(ls)-10:]
		}
		rel, _ := filepath.Rel(n.path("pod-logs"), f)
		n.t.Logf("--- container %s (last lines)\n  %s", rel, strings.Join(ls, "\n  "))
	}
}
