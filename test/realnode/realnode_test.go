//go:build realnode

// Package realnode runs the room on a real one-node Kubernetes cluster: real
// images imported into containerd, pods under the kubelet and runc, Services
// through kube-proxy, NetworkPolicies enforced by kube-router, the operator
// installed from the Helm chart and from config/default, and a reverse proxy
// configured from the operator's Ingress. It checks what only a real node can
// prove. Run it with `make node-e2e` (docs/e2e.md).
package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	chatr "github.com/chatr-ai/chatr/pkg/client"
)

const (
	roomNS   = "lobby"
	roomName = "lobby"
	opNS     = "chatr-system"
)

// figures collects what the run measured, printed at the end.
type figures struct {
	mu    sync.Mutex
	lines []string
}

func (f *figures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lines = append(f.lines, fmt.Sprintf(format, args...))
}

type suite struct {
	e        env
	n        *node
	cl       client.Client
	moltbook string
	base     string // the room through the ingress
	figs     *figures
	agents   []*chatr.Client
	posted   []int64
}

func TestRealNode(t *testing.T) {
	start := time.Now()
	e := readEnv(t)
	n := startNode(t, e.assets)
	s := &suite{e: e, n: n, cl: newClient(t, n), figs: &figures{}}
	s.figs.add("node up (control plane, containerd, kubelet Ready, kube-proxy, kube-router, databases): %.1fs", time.Since(start).Seconds())
	_, s.moltbook = startMoltbook(t, n)
	t.Cleanup(func() {
		t.Log("figures:\n  " + strings.Join(s.figs.lines, "\n  "))
	})

	steps := []struct {
		name string
		f    func(*testing.T)
	}{
		{"install-from-helm", s.installHelm},
		{"room-ready", s.roomReady},
		{"as-a-user", s.asUser},
		{"security-context", s.securityContext},
		{"streamer-seccomp-profile", s.streamerSeccomp},
		{"network-policies", s.networkPolicies},
		{"readiness-follows-redis", s.readinessFollowsRedis},
		{"drain-scale-down-and-rollout", s.drainAndRollout},
		{"eviction-respects-pdb", s.evictionRespectsPDB},
		{"autoscaler-surge", s.autoscalerSurge},
		{"leader-election", s.leaderElection},
		{"delete-room", s.deleteRoom},
		{"install-from-config-default", s.installKustomize},
	}
	// CHATR_REALNODE_STEPS=a,b runs only those steps (and the node): for
	// working on one step by hand. Never under CI, where every step runs.
	only := map[string]bool{}
	if v := os.Getenv("CHATR_REALNODE_STEPS"); v != "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CHATR_REALNODE_STEPS is for runs by hand; under CI every step runs")
		}
		for _, name := range strings.Split(v, ",") {
			only[strings.TrimSpace(name)] = true
		}
	}
	for _, st := range steps {
		if len(only) > 0 && !only[st.name] {
			continue
		}
		stepStart := time.Now()
		if !t.Run(st.name, st.f) {
			t.Fatalf("step %s failed; later steps not run", st.name)
		}
		s.figs.add("step %s: %.1fs", st.name, time.Since(stepStart).Seconds())
	}
	s.figs.add("whole test: %.1fs", time.Since(start).Seconds())
}

// installHelm installs the operator from the chart, with the image loaded
// into containerd, and waits for both replicas.
func (s *suite) installHelm(t *testing.T) {
	repo, tag, _ := strings.Cut(s.e.operatorImage, ":")
	out, err := s.n.helm(s.e, "install", "chatr", filepath.Join(repoRoot, "charts", "chatr-operator"),
		"--namespace", opNS, "--create-namespace",
		"--set", "image.repository="+repo, "--set", "image.tag="+tag, "--set", "image.pullPolicy=Never",
		"--wait", "--timeout", "3m")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(out))
	d := s.waitDeployment(t, opNS, "", "app.kubernetes.io/name", 2, 3*time.Minute)
	s.figs.add("operator from the chart: %s 2/2 ready", d)
}

// waitDeployment waits until the Deployment whose pods carry label=value (or
// name, when set) has want ready replicas, and returns its name.
func (s *suite) waitDeployment(t *testing.T, ns, name, label string, want int32, timeout time.Duration) string {
	t.Helper()
	ctx := context.Background()
	var found string
	eventually(t, fmt.Sprintf("Deployment in %s with %d ready replicas", ns, want), timeout, func() error {
		var list appsv1.DeploymentList
		if err := s.cl.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, d := range list.Items {
			if name != "" && d.Name != name {
				continue
			}
			if name == "" && d.Spec.Template.Labels[label] == "" {
				continue
			}
			found = d.Name
			if d.Status.ReadyReplicas == want && d.Status.UpdatedReplicas == want && d.Status.Replicas == want {
				return nil
			}
			return fmt.Errorf("%s: %d/%d ready, %d updated", d.Name, d.Status.ReadyReplicas, want, d.Status.UpdatedReplicas)
		}
		return fmt.Errorf("no Deployment yet")
	})
	return found
}

// sampleRoom is config/samples' ChatRoom, changed only where this node
// differs from a production cluster.
func (s *suite) sampleRoom(t *testing.T, ns, name string) *chatrv1.ChatRoom {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "config", "samples", "chatr_v1alpha1_chatroom.yaml"))
	must(t, err)
	var room chatrv1.ChatRoom
	must(t, yaml.UnmarshalStrict(b, &room))
	room.Namespace, room.Name = ns, name
	room.Spec.Image = s.e.image
	room.Spec.ImagePullPolicy = corev1.PullNever
	room.Spec.Postgres.SecretName = name + "-postgres"
	room.Spec.Redis.SecretName = name + "-redis"
	room.Spec.Moltbook.APIKeySecretName = name + "-moltbook"
	room.Spec.Moltbook.URL = s.moltbook + "/api/v1"
	// The ingress is nginx on the node: the pods see it as the node's
	// bridge address (kube-proxy masquerades) or the node's own.
	room.Spec.TrustedProxies = []string{bridgeIP + "/32", s.n.nodeIP + "/32"}
	// Every client of this test comes from one address, the host's.
	room.Spec.Limits.StreamsPerIP = 5000
	room.Spec.Limits.RequestsPerIP = 100000
	room.Spec.Limits.RegistrationsPerIP = 1000
	room.Spec.Limits.VerifiedMessages = 100000
	room.Spec.Streamer.DrainTime = &metav1.Duration{Duration: 5 * time.Second}
	room.Spec.Streamer.MaxConnectionsPerPod = 1000
	as := &room.Spec.Streamer.Autoscaling
	as.MinReplicas, as.MaxReplicas, as.TargetConnectionsPerPod = 2, 4, 40
	as.RateLimitPeriod = &metav1.Duration{Duration: 5 * time.Second}
	as.ScaleDown.StabilizationWindow = &metav1.Duration{Duration: 20 * time.Second}
	room.Spec.Ingress.TLSSecretName = ""
	// A 2-core node holds the whole fleet at its maximum, and a rollout's
	// surge pod beside it.
	room.Spec.Streamer.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
	}
	return &room
}

func (s *suite) roomReady(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	// The room's namespace enforces the "restricted" Pod Security Standard:
	// the API server itself refuses any room pod that is not locked down.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: roomNS, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
	}}}
	must(t, s.cl.Create(ctx, ns))
	secrets := map[string]map[string]string{
		roomName + "-postgres": {"url": fmt.Sprintf("postgres://postgres@%s:5432/postgres?sslmode=disable", s.n.nodeIP)},
		roomName + "-redis":    {"url": fmt.Sprintf("redis://%s:6379/0", s.n.nodeIP)},
		roomName + "-moltbook": {"apiKey": "realnode-test"},
	}
	for name, data := range secrets {
		must(t, s.cl.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: roomNS, Name: name}, StringData: data}))
	}
	room := s.sampleRoom(t, roomNS, roomName)
	must(t, s.cl.Create(ctx, room))
	eventually(t, "the room Available", 4*time.Minute, func() error {
		var cr chatrv1.ChatRoom
		if err := s.cl.Get(ctx, client.ObjectKeyFromObject(room), &cr); err != nil {
			return err
		}
		for _, c := range cr.Status.Conditions {
			if c.Type == chatrv1.ConditionAvailable && c.Status == metav1.ConditionTrue && c.ObservedGeneration == cr.Generation {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v; pods: %s", cr.Status.Conditions, s.podSummary(ctx, roomNS))
	})
	s.figs.add("room Available from create: %.1fs (%s)", time.Since(start).Seconds(), s.podSummary(ctx, roomNS))
	s.base = s.n.startIngress(t, s.cl, roomNS, room.IngressName())
}

func (s *suite) podSummary(ctx context.Context, ns string) string {
	var list corev1.PodList
	if err := s.cl.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err.Error()
	}
	var parts []string
	for _, p := range list.Items {
		st := string(p.Status.Phase)
		if podReady(&p) {
			st += ",Ready"
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				st += "," + w.Reason
			}
			if cs.RestartCount > 0 {
				st += fmt.Sprintf(",restarts=%d", cs.RestartCount)
			}
		}
		parts = append(parts, p.Name+"="+st)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// asUser: what an agent and a spectator do, through the ingress only.
func (s *suite) asUser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sse, ws := newSpectator(s.base, false), newSpectator(s.base, true)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go sse.run(sctx)
	go ws.run(sctx)

	for i := range 2 {
		c := chatr.Must(chatr.New(s.base, chatr.WithUserAgent("realnode-agent")))
		name := fmt.Sprintf("realnode_agent_%d", i)
		if _, err := c.Register(ctx, name, "🤖"); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		code, err := c.VerifyStart(ctx, name)
		if err != nil {
			t.Fatalf("verify/start: %v", err)
		}
		body, _ := json.Marshal(map[string]string{"name": name, "owner": name + "_human", "code": code.Code})
		resp, err := http.Post(s.moltbook+"/_fake/seed", "application/json", strings.NewReader(string(body)))
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("seeding the fake Moltbook: status %d", resp.StatusCode)
		}
		v, err := c.VerifyComplete(ctx, name)
		if err != nil || !v.Verified {
			t.Fatalf("verify/complete %s through the verifier pod: %+v %v", name, v, err)
		}
		s.agents = append(s.agents, c)
	}
	var last int64
	for i := range 5 {
		m, err := s.agents[i%2].Post(ctx, fmt.Sprintf("hello from a real node %d", i))
		if err != nil {
			t.Fatalf("post: %v", err)
		}
		s.posted = append(s.posted, seq(m))
		last = seq(m)
	}
	eventually(t, "SSE and WebSocket spectators receive the posts", 30*time.Second, func() error {
		if !sse.has(last) || !ws.has(last) {
			return fmt.Errorf("sse at %d, ws at %d, want %d", sse.last, ws.last, last)
		}
		return nil
	})
	for name, sp := range map[string]*spectator{"sse": sse, "ws": ws} {
		if lost, dup, dis := sp.verdict(s.posted); lost+dup+dis > 0 {
			t.Errorf("%s spectator: lost %d, duplicated %d, out of order %d", name, lost, dup, dis)
		}
	}
	// The page, through the same base URL.
	resp, err := http.Get(s.base + "/")
	must(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(string(page)), "<html") {
		t.Fatalf("GET / through the ingress: %d %.200s", resp.StatusCode, page)
	}
	list, err := s.agents[0].Agents(ctx)
	must(t, err)
	verified := 0
	for _, a := range list.Agents {
		if a.MoltbookVerified {
			verified++
		}
	}
	if verified != 2 {
		t.Fatalf("agents verified: %d, want 2", verified)
	}
}

// securityContext reads each container's process as the kernel sees it.
func (s *suite) securityContext(t *testing.T) {
	ctx := context.Background()
	checked := 0
	// Which write path the streamers took under the runtime's default
	// seccomp profile: a streamer that cannot use io_uring says so in its
	// log at start (containerd 2.0 and later refuse io_uring; 1.6 allows it).
	streamerSel := (&chatrv1.ChatRoom{ObjectMeta: metav1.ObjectMeta{Name: roomName}}).SelectorLabels(chatrv1.ComponentStreamer)
	writes := map[string]int{}
	for _, ns := range []string{roomNS, opNS} {
		var list corev1.PodList
		must(t, s.cl.List(ctx, &list, client.InNamespace(ns)))
		for _, p := range list.Items {
			if p.Status.Phase != corev1.PodRunning {
				continue
			}
			if ns == roomNS && labels.SelectorFromSet(streamerSel).Matches(labels.Set(p.Labels)) {
				switch log := s.n.podLog(ns, p.Name); {
				case strings.Contains(log, "stream writes use writev"):
					writes["writev"]++
				case strings.Contains(log, "serving"):
					writes["io_uring batches"]++
				default:
					writes["unknown (no start log)"]++
				}
			}
			for _, cs := range p.Status.ContainerStatuses {
				pid, err := s.n.containerPID(cs.ContainerID)
				if err != nil {
					t.Errorf("%s/%s: %v", p.Name, cs.Name, err)
					continue
				}
				if problems := kernelView(pid); len(problems) > 0 {
					t.Errorf("%s/%s (pid %d): %s", p.Name, cs.Name, pid, strings.Join(problems, "; "))
				}
				checked++
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked %d containers, want every room and operator container (at least 5)", checked)
	}
	s.figs.add("security context checked in the kernel for %d containers: uid/gid 65532, no capabilities, no_new_privs, seccomp filter, read-only root", checked)
	s.figs.add("streamer pods' socket writes under the runtime's default seccomp profile: %v", writes)
}

// streamerSeccomp proves spec.streamer.seccompProfile on the node: the
// streamer pods roll to a Localhost profile from the kubelet's seccomp
// folder, and take the write path that profile allows. First a control, the
// shipped profile without its io_uring rule (what containerd 2.x's
// RuntimeDefault allows): the pods must fall back to writev, which shows the
// file is what filters them. Then config/seccomp/chatr-streamer.json as
// shipped: io_uring batches. The room keeps the shipped profile after this.
func (s *suite) streamerSeccomp(t *testing.T) {
	ctx := context.Background()
	shipped, err := os.ReadFile(filepath.Join(repoRoot, "config", "seccomp", "chatr-streamer.json"))
	must(t, err)
	var prof map[string]any
	must(t, json.Unmarshal(shipped, &prof))
	var kept []any
	dropped := 0
	for _, r := range prof["syscalls"].([]any) {
		names, _ := r.(map[string]any)["names"].([]any)
		uring := false
		for _, n := range names {
			uring = uring || strings.HasPrefix(n.(string), "io_uring_")
		}
		if uring {
			dropped++
			continue
		}
		kept = append(kept, r)
	}
	if dropped != 1 {
		t.Fatalf("config/seccomp/chatr-streamer.json has %d io_uring rules, want 1", dropped)
	}
	prof["syscalls"] = kept
	control, err := json.Marshal(prof)
	must(t, err)
	dir := s.n.path("kubelet", "seccomp", "chatr")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "chatr-streamer.json"), shipped, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "without-io-uring.json"), control, 0o644))

	room := &chatrv1.ChatRoom{ObjectMeta: metav1.ObjectMeta{Name: roomName}}
	for _, step := range []struct{ file, want string }{
		{"chatr/without-io-uring.json", "writev"},
		{"chatr/chatr-streamer.json", "io_uring batches"},
	} {
		start := time.Now()
		s.updateRoom(t, func(cr *chatrv1.ChatRoom) {
			cr.Spec.Streamer.SeccompProfile = &chatrv1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: step.file}
		})
		var pods []corev1.Pod
		eventually(t, "streamer pods on "+step.file, 4*time.Minute, func() error {
			var list corev1.PodList
			if err := s.cl.List(ctx, &list, client.InNamespace(roomNS), client.MatchingLabels(room.SelectorLabels(chatrv1.ComponentStreamer))); err != nil {
				return err
			}
			pods = nil
			for _, p := range list.Items {
				sp := p.Spec.Containers[0].SecurityContext.SeccompProfile
				if sp == nil || sp.Type != corev1.SeccompProfileTypeLocalhost || sp.LocalhostProfile == nil || *sp.LocalhostProfile != step.file {
					return fmt.Errorf("%s still there (%v)", p.Name, sp)
				}
				if p.DeletionTimestamp != nil || !podReady(&p) {
					return fmt.Errorf("%s not ready yet", p.Name)
				}
				pods = append(pods, p)
			}
			if len(pods) < 2 {
				return fmt.Errorf("%d streamer pods, want at least 2", len(pods))
			}
			return nil
		})
		for _, p := range pods {
			switch log := s.n.podLog(roomNS, p.Name); {
			case strings.Contains(log, "stream writes use writev"):
				if step.want != "writev" {
					t.Errorf("%s on %s writes with writev: %s", p.Name, step.file, lastLines(log, 5))
				}
			case strings.Contains(log, "serving"):
				if step.want != "io_uring batches" {
					t.Errorf("%s on %s writes with io_uring: the profile did not filter it", p.Name, step.file)
				}
			default:
				t.Errorf("%s: no start log: %s", p.Name, lastLines(log, 5))
			}
			pid, err := s.n.containerPID(p.Status.ContainerStatuses[0].ContainerID)
			if err != nil {
				t.Errorf("%s: %v", p.Name, err)
				continue
			}
			if problems := kernelView(pid); len(problems) > 0 {
				t.Errorf("%s (pid %d): %s", p.Name, pid, strings.Join(problems, "; "))
			}
		}
		s.figs.add("streamer pods on Localhost profile %s: %d pods, all %s, rolled in %.1fs", step.file, len(pods), step.want, time.Since(start).Seconds())
	}
}

// kernelView lists what is wrong with a container process: its ids, its
// capabilities, no_new_privs, seccomp mode and its root mount.
func kernelView(pid int) []string {
	var problems []string
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return []string{err.Error()}
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	for _, k := range []string{"Uid", "Gid"} {
		for _, id := range strings.Fields(fields[k]) {
			if id != "65532" {
				problems = append(problems, fmt.Sprintf("%s %s", k, fields[k]))
				break
			}
		}
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if strings.Trim(fields[k], "0") != "" {
			problems = append(problems, fmt.Sprintf("%s %s", k, fields[k]))
		}
	}
	if fields["NoNewPrivs"] != "1" {
		problems = append(problems, "NoNewPrivs "+fields["NoNewPrivs"])
	}
	if fields["Seccomp"] != "2" {
		problems = append(problems, "Seccomp "+fields["Seccomp"]+" (2 is a filter)")
	}
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return append(problems, err.Error())
	}
	rootRO := false
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == "/" {
			rootRO = strings.HasPrefix(f[5], "ro")
		}
	}
	if !rootRO {
		problems = append(problems, "root filesystem is writable")
	}
	return problems
}

// networkPolicies: a pod that is neither the ingress nor part of the room
// cannot reach the room's pods; it can reach what the test opened to it.
func (s *suite) networkPolicies(t *testing.T) {
	ctx := context.Background()
	var targets []string
	want := map[string]bool{}
	for _, c := range []chatrv1.Component{chatrv1.ComponentAPI, chatrv1.ComponentStreamer, chatrv1.ComponentVerifier} {
		room := &chatrv1.ChatRoom{ObjectMeta: metav1.ObjectMeta{Name: roomName}}
		pods, err := podsOf(ctx, s.cl, roomNS, room.SelectorLabels(c))
		must(t, err)
		if len(pods) == 0 {
			t.Fatalf("no %s pods", c)
		}
		for _, ctr := range pods[0].Spec.Containers {
			for _, p := range ctr.Ports {
				addr := fmt.Sprintf("%s:%d", pods[0].Status.PodIP, p.ContainerPort)
				targets = append(targets, addr)
				want[addr] = false
			}
		}
	}
	// The negative control: Postgres on the node is open to every pod.
	pg := s.n.nodeIP + ":5432"
	targets = append(targets, pg)
	want[pg] = true

	for _, ns := range []string{"outsider", roomNS} {
		if ns == "outsider" {
			must(t, s.cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
		}
		pod := probePod(ns, "probe", targets)
		must(t, s.cl.Create(ctx, pod))
		var log string
		eventually(t, "the probe pod in "+ns+" reports", 90*time.Second, func() error {
			log = s.n.podLog(ns, pod.Name)
			if !strings.Contains(log, "done") {
				return fmt.Errorf("log so far: %q", log)
			}
			return nil
		})
		for _, addr := range targets {
			open := strings.Contains(log, "open "+addr+"\n")
			if open != want[addr] {
				t.Errorf("from a pod in namespace %s, %s: open=%v, want open=%v (probe log:\n%s)", ns, addr, open, want[addr], log)
			}
		}
		_ = s.cl.Delete(ctx, pod)
	}
	// The room still serves through the ingress.
	m, err := s.agents[0].Post(ctx, "still here behind the policies")
	if err != nil {
		t.Fatalf("post after the policy checks: %v", err)
	}
	s.posted = append(s.posted, seq(m))
	s.figs.add("NetworkPolicies enforced: %d room ports closed to a pod outside the room and to an unlabelled pod inside its namespace; Postgres open (control)", len(targets)-1)
}

func probePod(ns, name string, targets []string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "probe"}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr(int64(1)),
			AutomountServiceAccountToken:  ptr(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(65532)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "probe", Image: probeImage, ImagePullPolicy: corev1.PullNever,
				Command: append([]string{"/probe"}, targets...),
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// readinessFollowsRedis: with Redis gone the streamers report NotReady and
// leave the Service's endpoints; with Redis back they return.
func (s *suite) readinessFollowsRedis(t *testing.T) {
	ctx := context.Background()
	room := &chatrv1.ChatRoom{ObjectMeta: metav1.ObjectMeta{Name: roomName}}
	svc := room.ComponentName(chatrv1.ComponentStreamer)
	readyEndpoints := func() (int, error) {
		var list discoveryv1.EndpointSliceList
		if err := s.cl.List(ctx, &list, client.InNamespace(roomNS), client.MatchingLabels{discoveryv1.LabelServiceName: svc}); err != nil {
			return 0, err
		}
		n := 0
		for _, sl := range list.Items {
			for _, ep := range sl.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					n++
				}
			}
		}
		return n, nil
	}
	before, err := readyEndpoints()
	must(t, err)
	if before < 2 {
		t.Fatalf("streamer Service has %d ready endpoints before the outage", before)
	}
	redis := s.n.procs["redis"]
	stopped := time.Now()
	redis.stop(5 * time.Second)
	out := eventually(t, "streamers leave the Service's endpoints while Redis is down", 90*time.Second, func() error {
		n, err := readyEndpoints()
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d ready endpoints", n)
		}
		return nil
	})
	if _, err := s.n.start("redis", "redis-server", "--bind", "0.0.0.0", "--port", "6379", "--save", "",
		"--appendonly", "no", "--protected-mode", "no", "--dir", s.n.dir); err != nil {
		t.Fatal(err)
	}
	back := eventually(t, "streamers back in the endpoints with Redis", 90*time.Second, func() error {
		n, err := readyEndpoints()
		if err != nil {
			return err
		}
		if n < before {
			return fmt.Errorf("%d/%d ready endpoints", n, before)
		}
		return nil
	})
	s.figs.add("readiness follows Redis: endpoints empty %.1fs after Redis stopped, all %d back %.1fs after it started (outage %.1fs)", out.Seconds(), before, back.Seconds(), time.Since(stopped).Seconds())
	// The API answers again once Redis is back (its limits live there).
	eventually(t, "posting works again", 60*time.Second, func() error {
		m, err := s.agents[1].Post(ctx, "after the Redis outage")
		if err != nil {
			return err
		}
		s.posted = append(s.posted, seq(m))
		return nil
	})
}

// load keeps spectators connected and posts flowing while the fleet changes.
type load struct {
	specs  []*spectator
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	posted []int64
	errs   map[string]int
}

func (s *suite) startLoad(sse, ws int, every time.Duration) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, errs: map[string]int{}}
	for i := range sse + ws {
		sp := newSpectator(s.base, i >= sse)
		l.specs = append(l.specs, sp)
		l.wg.Add(1)
		go func() { defer l.wg.Done(); sp.run(ctx) }()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			m, err := s.agents[i%len(s.agents)].Post(pctx, fmt.Sprintf("load %d", i))
			pcancel()
			l.mu.Lock()
			if err != nil {
				if ctx.Err() == nil {
					l.errs[fmt.Sprint(chatr.StatusCode(err))]++
				}
			} else {
				l.posted = append(l.posted, seq(m))
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// finish stops posting, waits until every spectator holds the last post,
// and checks each: 0 lost, 0 duplicated, 0 out of order.
func (l *load) finish(t *testing.T) (posted int, errs map[string]int) {
	t.Helper()
	l.mu.Lock()
	ids := append([]int64(nil), l.posted...)
	l.mu.Unlock()
	if len(ids) == 0 {
		l.cancel()
		t.Fatalf("no post was accepted during the load (errors %v)", l.errs)
	}
	lastID := ids[len(ids)-1]
	eventually(t, "every spectator catches up with the last post", 60*time.Second, func() error {
		for i, sp := range l.specs {
			if !sp.has(lastID) {
				return fmt.Errorf("spectator %d at %d, want %d", i, sp.resumeFrom(), lastID)
			}
		}
		return nil
	})
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	ids = append([]int64(nil), l.posted...)
	l.mu.Unlock()
	for i, sp := range l.specs {
		if lost, dup, dis := sp.verdict(ids[:indexOf(ids, lastID)+1]); lost+dup+dis > 0 {
			t.Errorf("spectator %d (ws=%v): lost %d, duplicated %d, out of order %d", i, sp.ws, lost, dup, dis)
		}
	}
	return len(ids), l.errs
}

func indexOf(ids []int64, id int64) int {
	for i, v := range ids {
		if v == id {
			return i
		}
	}
	return len(ids) - 1
}

func (s *suite) updateRoom(t *testing.T, mutate func(*chatrv1.ChatRoom)) {
	t.Helper()
	ctx := context.Background()
	eventually(t, "update the ChatRoom", 30*time.Second, func() error {
		var cr chatrv1.ChatRoom
		if err := s.cl.Get(ctx, client.ObjectKey{Namespace: roomNS, Name: roomName}, &cr); err != nil {
			return err
		}
		mutate(&cr)
		return s.cl.Update(ctx, &cr)
	})
}

// drainAndRollout: streamers scaled down and rolled out with real pods,
// preStop and SIGTERM, while spectators are connected and posts keep coming.
func (s *suite) drainAndRollout(t *testing.T) {
	room := &chatrv1.ChatRoom{ObjectMeta: metav1.ObjectMeta{Name: roomName}}
	streamer := room.ComponentName(chatrv1.ComponentStreamer)
	l := s.startLoad(8, 4, 150*time.Millisecond)

	start := time.Now()
	s.updateRoom(t, func(cr *chatrv1.ChatRoom) { cr.Spec.Streamer.Autoscaling.MinReplicas = 3 })
	s.waitDeployment(t, roomNS, streamer, "", 3, 3*time.Minute)
	up := time.Since(start)
	start = time.Now()
	s.updateRoom(t, func(cr *chatrv1.ChatRoom) { cr.Spec.Streamer.Autoscaling.MinReplicas = 2 })
	s.waitDeployment(t, roomNS, streamer, "", 2, 3*time.Minute)
	down := time.Since(start)

	// A new image, the same bytes under a new tag, rolled out to the room.
	sock := s.n.path("containerd", "containerd.sock")
	newImage := strings.Split(s.e.image, ":")[0] + ":rollout"
	if _, err := run("ctr", "--address", sock, "-n", "k8s.io", "images", "tag", "--force", s.e.image, newImage); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	s.updateRoom(t, func(cr *chatrv1.ChatRoom) { cr.Spec.Image = newImage })
	for _, c := range []chatrv1.Component{chatrv1.ComponentAPI, chatrv1.ComponentStreamer, chatrv1.ComponentVerifier} {
		name := room.ComponentName(c)
		eventually(t, "rollout of "+name, 4*time.Minute, func() error {
			var d appsv1.Deployment
			if err := s.cl.Get(context.Background(), client.ObjectKey{Namespace: roomNS, Name: name}, &d); err != nil {
				return err
			}
			img := d.Spec.Template.Spec.Containers[0].Image
			if img != newImage || d.Status.UpdatedReplicas != *d.Spec.Replicas || d.Status.ReadyReplicas != *d.Spec.Replicas || d.Status.Replicas != *d.Spec.Replicas {
				return fmt.Errorf("%s: image %s, %d updated, %d ready, %d total", name, img, d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.Replicas)
			}
			return nil
		})
	}
	// The old pods are gone only once they have drained (preStop, SIGTERM,
	// drainTime): until then their spectators may still be on them.
	for _, c := range []chatrv1.Component{chatrv1.ComponentAPI, chatrv1.ComponentStreamer, chatrv1.ComponentVerifier} {
		eventually(t, "the old "+string(c)+" pods gone", 3*time.Minute, func() error {
			var list corev1.PodList
			if err := s.cl.List(context.Background(), &list, client.InNamespace(roomNS), client.MatchingLabels(room.SelectorLabels(c))); err != nil {
				return err
			}
			for _, p := range list.Items {
				if img := p.Spec.Containers[0].Image; img != newImage {
					return fmt.Errorf("%s still there (%s, %s)", p.Name, img, p.Status.Phase)
				}
			}
			return nil
		})
	}
	rollout := time.Since(start)
	posted, errs := l.finish(t)
	moves := 0
	var per []string
	for _, sp := range l.specs {
		c, _, _ := sp.stats()
		moves += c - 1
		per = append(per, fmt.Sprint(c))
	}
	t.Logf("connections per spectator over the step: %s", strings.Join(per, " "))
	for i, sp := range l.specs {
		if c, _, _ := sp.stats(); c < 2 {
			t.Errorf("spectator %d (ws=%v) never reconnected, though every streamer pod it could be on was replaced", i, sp.ws)
		}
	}
	s.figs.add("drain with real pods: 2→3 streamers %.1fs, 3→2 %.1fs, rollout of a new image to all three Deployments %.1fs; %d posts, %d spectators (8 SSE, 4 WebSocket) reconnected %d times, 0 lost/duplicated/out of order; post errors %v",
		up.Seconds(), down.Seconds(), rollout.Seconds(), posted, len(l.specs), moves, errs)
}

// evictionRespectsPDB evicts the room's API pods as `kubectl drain` would:
// while one is going, the eviction of the other is refused (429).
func (s *suite) evictionRespectsPDB(t *testing.T) {
	ctx := context.Background()
	room := &chatrv1.ChatRoom{ObjectMeta: metav1.ObjectMeta{Name: roomName}}
	pods, err := podsOf(ctx, s.cl, roomNS, room.SelectorLabels(chatrv1.ComponentAPI))
	must(t, err)
	if len(pods) < 2 {
		t.Fatalf("want 2 API pods, have %d", len(pods))
	}
	evict := func(p corev1.Pod) error {
		return s.n.cs.PolicyV1().Evictions(roomNS).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: roomNS, Name: p.Name}})
	}
	eventually(t, "the PDB allows one disruption", 60*time.Second, func() error { return evict(pods[0]) })
	err = evict(pods[1])
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("evicting the second API pod while the first is going: %v, want 429 (the PDB)", err)
	}
	start := time.Now()
	eventually(t, "the second eviction is allowed once a replacement is Ready", 3*time.Minute, func() error { return evict(pods[1]) })
	s.waitDeployment(t, roomNS, room.ComponentName(chatrv1.ComponentAPI), "", 2, 3*time.Minute)
	s.figs.add("eviction: the second API pod's eviction refused (429) by the PDB, allowed %.1fs later once the replacement was Ready", time.Since(start).Seconds())
}

// autoscalerSurge opens stream connections from outside the node until the
// fleet must grow, and measures the time to capacity with real pod start-up.
func (s *suite) autoscalerSurge(t *testing.T) {
	ctx := context.Background()
	room := &chatrv1.ChatRoom{ObjectMeta: metav1.ObjectMeta{Name: roomName}}
	streamer := room.ComponentName(chatrv1.ComponentStreamer)
	const conns = 150 // target 40 per pod, one spare: 4 pods (the maximum)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	start := time.Now()
	var specs []*spectator
	for range conns {
		sp := newSpectator(s.base, false)
		specs = append(specs, sp)
		go sp.run(sctx)
	}
	var replicasAt, readyAt time.Duration
	eventually(t, "the fleet reaches capacity (4 ready streamers)", 4*time.Minute, func() error {
		var d appsv1.Deployment
		if err := s.cl.Get(ctx, client.ObjectKey{Namespace: roomNS, Name: streamer}, &d); err != nil {
			return err
		}
		if replicasAt == 0 && *d.Spec.Replicas >= 4 {
			replicasAt = time.Since(start)
		}
		if d.Status.ReadyReplicas >= 4 {
			readyAt = time.Since(start)
			return nil
		}
		return fmt.Errorf("replicas %d, ready %d", *d.Spec.Replicas, d.Status.ReadyReplicas)
	})
	connected := 0
	for _, sp := range specs {
		if c, _, _ := sp.stats(); c > 0 {
			connected++
		}
	}
	stop()
	s.figs.add("autoscaler surge: %d SSE connections from the host; Deployment at 4 replicas after %.1fs, 4 streamers Ready after %.1fs (real pod start-up; the simulator assumes a fixed start delay, see cmd/scalesim -start-delay); %d connected",
		conns, replicasAt.Seconds(), readyAt.Seconds(), connected)
	// Back to two, as the rest of the run expects.
	s.waitDeployment(t, roomNS, streamer, "", 2, 4*time.Minute)
}

// leaderElection deletes the operator's leader and measures the takeover.
func (s *suite) leaderElection(t *testing.T) {
	ctx := context.Background()
	var leases coordinationv1.LeaseList
	must(t, s.cl.List(ctx, &leases, client.InNamespace(opNS)))
	if len(leases.Items) == 0 {
		t.Fatal("no leader-election Lease in " + opNS)
	}
	lease := leases.Items[0]
	holder := ptrString(lease.Spec.HolderIdentity)
	leaderPod := strings.SplitN(holder, "_", 2)[0]
	start := time.Now()
	must(t, s.cl.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: opNS, Name: leaderPod}}))
	var newHolder string
	eventually(t, "another replica holds the lease", 2*time.Minute, func() error {
		var l coordinationv1.Lease
		if err := s.cl.Get(ctx, client.ObjectKeyFromObject(&lease), &l); err != nil {
			return err
		}
		newHolder = ptrString(l.Spec.HolderIdentity)
		if newHolder == "" || strings.HasPrefix(newHolder, leaderPod+"_") {
			return fmt.Errorf("holder %q", newHolder)
		}
		return nil
	})
	took := time.Since(start)
	// The new leader acts: a change to the room is reconciled.
	s.updateRoom(t, func(cr *chatrv1.ChatRoom) { cr.Spec.API.Replicas = ptr(int32(3)) })
	s.waitDeployment(t, roomNS, (&chatrv1.ChatRoom{ObjectMeta: metav1.ObjectMeta{Name: roomName}}).ComponentName(chatrv1.ComponentAPI), "", 3, 3*time.Minute)
	s.figs.add("leader election: leader %s deleted, %s took over after %.1fs and reconciled a change", leaderPod, strings.SplitN(newHolder, "_", 2)[0], took.Seconds())
}

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// deleteRoom: the garbage collector removes everything the room owned; its
// messages stay in Postgres.
func (s *suite) deleteRoom(t *testing.T) {
	ctx := context.Background()
	var cr chatrv1.ChatRoom
	must(t, s.cl.Get(ctx, client.ObjectKey{Namespace: roomNS, Name: roomName}, &cr))
	schema := cr.PostgresSchema()
	owned := s.ownedBy(t, cr.UID)
	if len(owned) < 8 {
		t.Fatalf("the room owns only %d objects: %v", len(owned), owned)
	}
	start := time.Now()
	must(t, s.cl.Delete(ctx, &cr))
	eventually(t, "every object the room owned is gone", 3*time.Minute, func() error {
		if left := s.ownedBy(t, cr.UID); len(left) > 0 {
			return fmt.Errorf("left: %v", left)
		}
		var pods corev1.PodList
		if err := s.cl.List(ctx, &pods, client.InNamespace(roomNS), client.MatchingLabels(cr.CommonLabels())); err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d pods left", len(pods.Items))
		}
		return nil
	})
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@%s:5432/postgres?sslmode=disable", s.n.nodeIP))
	must(t, err)
	defer conn.Close(ctx)
	var count int
	must(t, conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s.messages", pgx.Identifier{schema}.Sanitize())).Scan(&count))
	if count < len(s.posted) {
		t.Fatalf("schema %s keeps %d messages, want at least %d", schema, count, len(s.posted))
	}
	s.figs.add("delete: %d owned objects and every pod gone %.1fs after the ChatRoom was deleted; schema %s kept with %d messages", len(owned), time.Since(start).Seconds(), schema, count)
}

// ownedBy lists the objects in the room's namespace whose owner is uid.
func (s *suite) ownedBy(t *testing.T, uid types.UID) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	lists := map[string]client.ObjectList{
		"Deployment": &appsv1.DeploymentList{}, "Service": &corev1.ServiceList{}, "ConfigMap": &corev1.ConfigMapList{},
		"ServiceAccount": &corev1.ServiceAccountList{}, "PodDisruptionBudget": &policyv1.PodDisruptionBudgetList{},
		"NetworkPolicy": &networkingv1.NetworkPolicyList{}, "Ingress": &networkingv1.IngressList{},
		"Role": &rbacv1.RoleList{}, "RoleBinding": &rbacv1.RoleBindingList{},
	}
	for kind, list := range lists {
		if err := s.cl.List(ctx, list, client.InNamespace(roomNS)); err != nil {
			t.Fatalf("list %s: %v", kind, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range items {
			o, err := meta.Accessor(item)
			if err != nil {
				t.Fatal(err)
			}
			for _, ref := range o.GetOwnerReferences() {
				if ref.UID == uid {
					out = append(out, kind+"/"+o.GetName())
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// installKustomize: the second way in. The chart's release goes (the CRD is
// kept, as the chart promises), config/default comes, and a new room serves.
func (s *suite) installKustomize(t *testing.T) {
	ctx := context.Background()
	if _, err := s.n.helm(s.e, "uninstall", "chatr", "--namespace", opNS, "--wait", "--timeout", "2m"); err != nil {
		t.Fatal(err)
	}
	var crd unstructured.Unstructured
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	if err := s.cl.Get(ctx, client.ObjectKey{Name: "chatrooms.chatr.ai"}, &crd); err != nil {
		t.Fatalf("the chart's CRD must outlive helm uninstall: %v", err)
	}
	eventually(t, "the chart's operator pods gone", 2*time.Minute, func() error {
		var pods corev1.PodList
		if err := s.cl.List(ctx, &pods, client.InNamespace(opNS)); err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d pods left", len(pods.Items))
		}
		return nil
	})
	objs := kustomize(t, "config/default")
	for _, u := range objs {
		if u.GetKind() != "Deployment" {
			continue
		}
		ctrs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		for i := range ctrs {
			c := ctrs[i].(map[string]any)
			c["image"] = s.e.operatorImage
			c["imagePullPolicy"] = "Never"
		}
		must(t, unstructured.SetNestedSlice(u.Object, ctrs, "spec", "template", "spec", "containers"))
	}
	apply(t, s.cl, objs)
	var opNamespace string
	for _, u := range objs {
		if u.GetKind() == "Deployment" {
			opNamespace = u.GetNamespace()
		}
	}
	s.waitDeployment(t, opNamespace, "", "app.kubernetes.io/name", 2, 3*time.Minute)

	// A second room, in the same namespace, on the same databases.
	ctx2, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	const name = "second"
	for sec, data := range map[string]map[string]string{
		name + "-postgres": {"url": fmt.Sprintf("postgres://postgres@%s:5432/postgres?sslmode=disable", s.n.nodeIP)},
		name + "-redis":    {"url": fmt.Sprintf("redis://%s:6379/0", s.n.nodeIP)},
		name + "-moltbook": {"apiKey": "realnode-test"},
	} {
		must(t, s.cl.Create(ctx2, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: roomNS, Name: sec}, StringData: data}))
	}
	room := s.sampleRoom(t, roomNS, name)
	room.Spec.Streamer.Autoscaling.MinReplicas = 1
	room.Spec.API.Replicas = ptr(int32(1))
	must(t, s.cl.Create(ctx2, room))
	eventually(t, "the second room Available under the kustomize-installed operator", 4*time.Minute, func() error {
		var cr chatrv1.ChatRoom
		if err := s.cl.Get(ctx2, client.ObjectKeyFromObject(room), &cr); err != nil {
			return err
		}
		for _, c := range cr.Status.Conditions {
			if c.Type == chatrv1.ConditionAvailable && c.Status == metav1.ConditionTrue && c.ObservedGeneration == cr.Generation {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", cr.Status.Conditions)
	})
	base := s.n.startIngress(t, s.cl, roomNS, room.IngressName())
	sp := newSpectator(base, false)
	sctx, stop := context.WithCancel(ctx2)
	defer stop()
	go sp.run(sctx)
	c := chatr.Must(chatr.New(base))
	if _, err := c.Register(ctx2, "second_room_agent", "🤖"); err != nil {
		t.Fatal(err)
	}
	m, err := c.Post(ctx2, "hello from the kustomize install")
	must(t, err)
	eventually(t, "the spectator of the second room gets the post", 30*time.Second, func() error {
		if !sp.has(seq(m)) {
			return fmt.Errorf("at %d", sp.resumeFrom())
		}
		return nil
	})
	s.figs.add("config/default: operator 2/2 ready, a second room Available, registered, posted and streamed")
}

// seq is a posted message's id as a number.
func seq(m *chatr.Message) int64 {
	n, _ := m.Seq()
	return n
}

// lastLines is the end of a log, for a failure message.
func lastLines(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
