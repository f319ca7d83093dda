package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/connreport"
	"github.com/chatr-ai/chatr/internal/fakemoltbook"
	"github.com/chatr-ai/chatr/internal/testenv"
	chatr "github.com/chatr-ai/chatr/pkg/client"
	"github.com/chatr-ai/chatr/test/e2e/localpods"
)

// The shape of the run. The room's streamer target is low so that a few
// hundred local clients make a surge.
const (
	namespace     = "e2e"
	numAgents     = 3
	numSpectators = 6
	postEvery     = 150 * time.Millisecond

	minStreamers    = 2
	maxStreamers    = 5
	targetPerPod    = 20
	drainTime       = 3 * time.Second
	scaleDownWindow = 10 * time.Second
	rateLimitPeriod = 5 * time.Second

	surgeClients  = 200
	surgeRamp     = 12 * time.Second
	stayersPerPod = 2
)

// TestOperatorLoop is the operator loop of docs/e2e.md on one machine; see the
// package documentation. Its steps run as subtests, in order; a failed step
// ends the run.
func TestOperatorLoop(t *testing.T) {
	if _, missing := testenv.EnvtestAssets(); missing != "" {
		testenv.Missing(t, "%s", missing)
	}
	e := &run{t: t, rep: newReport(), postedAt: map[int64]time.Time{}}
	e.setUp()
	defer e.finish()
	_ = t.Run("agents", e.agentsStep) &&
		t.Run("spectators", e.spectatorsStep) &&
		t.Run("pod-deleted", e.podDeletedStep) &&
		t.Run("surge", e.surgeStep) &&
		t.Run("messages", e.messagesStep)
}

// run is the state the steps of one TestOperatorLoop share.
type run struct {
	t   *testing.T
	rep *report
	ctx context.Context
	end context.CancelFunc

	logDir   string
	schema   string
	moltbook string // the fake Moltbook's base URL
	rdb      *redis.Client
	cl       *cluster
	runner   *localpods.Runner
	base     string // the room's one base URL: the local ingress
	room     string
	apiDep   string
	strDep   string
	verDep   string
	fleet    *fleetLog

	agents     []*chatr.Client
	spectators []*spectator
	stayers    []*rawClient // surge clients that stayed after the surge
	leavers    []*rawClient // surge clients that left when it ended

	postMu   sync.Mutex
	posted   []int64
	postedAt map[int64]time.Time
	postErrs []string
	stopPost context.CancelFunc
	postDone chan struct{}
}

// setUp starts everything the room needs and waits until it serves through
// the local ingress.
func (e *run) setUp() {
	t := e.t
	// First, so that its cleanup (drop the schema and the room's Redis keys)
	// runs last, after every process is gone.
	e.schema = testenv.Schema(t)
	e.rdb = testenv.Redis(t) // fails at once, with a hint, when Redis is down
	e.ctx, e.end = context.WithCancel(context.Background())
	t.Cleanup(e.end)

	e.logDir = os.Getenv("CHATR_E2E_LOGDIR")
	if e.logDir == "" {
		e.logDir = t.TempDir()
	} else if err := os.MkdirAll(e.logDir, 0o755); err != nil {
		t.Fatal(err)
	}

	since := time.Now()
	chatrd, operatorBin := buildBinaries(t, t.TempDir())
	e.rep.phase("build chatrd and chatr-operator", since)

	since = time.Now()
	e.cl = startCluster(t, e.logDir)
	e.rep.phase("start kube-apiserver + etcd with the CRD", since)

	since = time.Now()
	startOperator(t, e.cl, operatorBin, e.logDir)
	e.rep.phase("operator process ready", since)

	fake := httptest.NewServer(fakemoltbook.New())
	t.Cleanup(fake.Close)
	e.moltbook = fake.URL

	since = time.Now()
	ctx, k8s := e.ctx, e.cl.k8s
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}
	s := loadSample(t)
	for _, sec := range s.secrets {
		sec = sec.DeepCopy()
		sec.Namespace = namespace
		if u := sec.StringData["url"]; strings.HasPrefix(u, "postgres") {
			sec.StringData["url"] = testenv.DatabaseURL()
		} else if strings.HasPrefix(u, "redis") {
			sec.StringData["url"] = testenv.RedisURL()
		}
		if err := k8s.Create(ctx, sec); err != nil {
			t.Fatalf("creating the sample's Secret %s: %v", sec.Name, err)
		}
	}
	room := s.room.DeepCopy()
	room.SetNamespace(namespace)
	e.adaptRoom(room)
	if err := k8s.Create(ctx, room, client.FieldValidation("Strict")); err != nil {
		t.Fatalf("creating the sample ChatRoom: %v", err)
	}
	e.room = room.GetName()
	e.apiDep, e.strDep, e.verDep = e.room+"-api", e.room+"-streamer", e.room+"-verifier"
	e.rep.note("applied config/samples in namespace %s: ChatRoom %s, schema %s, Secrets pointed at %s and %s, Moltbook %s (internal/fakemoltbook)",
		namespace, e.room, e.schema, testenv.DatabaseURL(), testenv.RedisURL(), e.moltbook)

	runner, err := localpods.New(e.cl.cfg, namespace, localpods.Options{
		Binaries:       map[string]string{"/chatrd": chatrd},
		LogDir:         filepath.Join(e.logDir, "pods"),
		MaxGracePeriod: 15 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runner.Stop)
	e.runner = runner
	e.fleet = watchFleet(ctx, e.rep, k8s, runner, namespace, e.room, e.strDep)

	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	defer wcancel()
	for _, d := range []struct {
		name string
		n    int
	}{{e.apiDep, nested(room, 2, "api", "replicas")}, {e.strDep, minStreamers}, {e.verDep, nested(room, 1, "verifier", "replicas")}} {
		if err := runner.WaitReady(wctx, d.name, d.n); err != nil {
			t.Fatalf("waiting for %d ready pods of %s: %v\n%s", d.n, d.name, err, e.podLogs())
		}
	}
	testenv.Eventually(t, 30*time.Second, "the room Available", func() error {
		cr, err := e.getRoom()
		if err != nil {
			return err
		}
		if ok, why := roomCondition(cr, chatrv1.ConditionAvailable); !ok {
			return fmt.Errorf("%s", why)
		}
		return nil
	})

	// The local ingress routes like the Ingress the operator made.
	var ing networkingv1.Ingress
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: e.room}, &ing); err != nil {
		t.Fatalf("the operator's Ingress: %v", err)
	}
	routes := ingressRoutes(&ing)
	if len(routes) == 0 {
		t.Fatalf("the operator's Ingress has no paths: %+v", ing.Spec)
	}
	in, err := localpods.NewIngress(e.cl.cfg, namespace, runner, routes)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close() })
	e.base = in.URL()
	testenv.Eventually(t, 20*time.Second, "GET /api/openapi.json through the ingress", func() error {
		resp, err := http.Get(e.base + "/api/openapi.json")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	e.rep.phase("room Available, serving through the ingress", since)
	var paths []string
	for _, r := range routes {
		paths = append(paths, r.Prefix+" -> "+r.Backend)
	}
	e.rep.note("the operator's Ingress, served by the local ingress at %s: %s", e.base, strings.Join(paths, ", "))
	e.rep.note("pods: %s", e.podSummary())
}

// adaptRoom turns the sample room into one that runs on this machine and
// can be pushed around in a couple of minutes: a fresh schema, the fake
// Moltbook, limits that a few hundred local clients (all from 127.0.0.1)
// do not hit, a low streamer target and short windows. Fields are set by
// their JSON names and checked by the API server (strict validation).
func (e *run) adaptRoom(room *unstructured.Unstructured) {
	t := e.t
	set := func(v any, path ...string) {
		t.Helper()
		if err := unstructured.SetNestedField(room.Object, v, append([]string{"spec"}, path...)...); err != nil {
			t.Fatalf("setting spec.%s: %v", strings.Join(path, "."), err)
		}
	}
	set(e.schema, "postgres", "schema")
	set(e.moltbook+"/api/v1", "moltbook", "url")
	set(drainTime.String(), "streamer", "drainTime")
	set(int64(1000), "streamer", "maxConnectionsPerPod")
	set(int64(minStreamers), "streamer", "autoscaling", "minReplicas")
	set(int64(maxStreamers), "streamer", "autoscaling", "maxReplicas")
	set(int64(targetPerPod), "streamer", "autoscaling", "targetConnectionsPerPod")
	set("0s", "streamer", "autoscaling", "scaleUp", "stabilizationWindow")
	set(scaleDownWindow.String(), "streamer", "autoscaling", "scaleDown", "stabilizationWindow")
	// Shorter rate-limit periods, where the CRD has them, so that the fleet
	// shrinks one pod every few seconds instead of every 15.
	if e.crdHas("streamer", "autoscaling", "rateLimitPeriod") {
		set(rateLimitPeriod.String(), "streamer", "autoscaling", "rateLimitPeriod")
	}
	set(int64(100000), "limits", "streamsPerIP")
	set(int64(10000), "limits", "registrationsPerIP")
	set(int64(1000000), "limits", "requestsPerIP")
	set(int64(100000), "limits", "verifiedMessages")
	set("text", "logging", "format")
}

// crdHas tells whether the installed ChatRoom CRD has the spec field at path.
func (e *run) crdHas(path ...string) bool {
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	if err := e.cl.k8s.Get(e.ctx, client.ObjectKey{Name: "chatrooms.chatr.ai"}, crd); err != nil {
		e.t.Fatalf("reading the CRD: %v", err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		vm, _ := v.(map[string]any)
		fields := []string{"schema", "openAPIV3Schema", "properties", "spec"}
		for _, p := range path {
			fields = append(fields, "properties", p)
		}
		if _, found, _ := unstructured.NestedMap(vm, fields...); found {
			return true
		}
	}
	return false
}

// nested reads an integer of the room's spec, or def.
func nested(room *unstructured.Unstructured, def int, path ...string) int {
	v, found, err := unstructured.NestedInt64(room.Object, append([]string{"spec"}, path...)...)
	if err != nil || !found {
		return def
	}
	return int(v)
}

// ingressRoutes turns the Ingress's paths into the local ingress's routes.
func ingressRoutes(ing *networkingv1.Ingress) []localpods.Route {
	var out []localpods.Route
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service == nil {
				continue
			}
			port := intstr.FromString(p.Backend.Service.Port.Name)
			if p.Backend.Service.Port.Name == "" {
				port = intstr.FromInt32(p.Backend.Service.Port.Number)
			}
			out = append(out, localpods.Route{Prefix: p.Path, Backend: p.Backend.Service.Name, Port: port})
		}
	}
	return out
}

func (e *run) getRoom() (*chatrv1.ChatRoom, error) {
	var cr chatrv1.ChatRoom
	err := e.cl.k8s.Get(e.ctx, client.ObjectKey{Namespace: namespace, Name: e.room}, &cr)
	return &cr, err
}

// agentsStep: agents register through the ingress, prove their Moltbook
// identity against the fake Moltbook, and can post.
func (e *run) agentsStep(t *testing.T) {
	since := time.Now()
	ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second)
	defer cancel()
	for i := range numAgents {
		c := chatr.Must(chatr.New(e.base, chatr.WithUserAgent("e2e-agent")))
		name := fmt.Sprintf("e2e_agent_%d", i)
		if _, err := c.Register(ctx, name, "🤖"); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		code, err := c.VerifyStart(ctx, name)
		if err != nil {
			t.Fatalf("verify/start %s: %v", name, err)
		}
		// The agent's human posts the code on Moltbook: the fake's seed does.
		body, _ := json.Marshal(map[string]string{"name": name, "owner": name + "_human", "code": code.Code})
		resp, err := http.Post(e.moltbook+"/_fake/seed", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("seeding the fake Moltbook: status %d", resp.StatusCode)
		}
		v, err := c.VerifyComplete(ctx, name)
		if err != nil {
			t.Fatalf("verify/complete %s: %v", name, err)
		}
		if !v.Verified || v.OwnerTwitter == nil || *v.OwnerTwitter != name+"_human" {
			t.Fatalf("verify/complete %s: %+v", name, v)
		}
		e.agents = append(e.agents, c)
	}
	list, err := e.agents[0].Agents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	verified := 0
	for _, a := range list.Agents {
		if a.MoltbookVerified {
			verified++
		}
	}
	if verified != numAgents {
		t.Fatalf("GET /api/agents lists %d verified agents, want %d: %+v", verified, numAgents, list.Agents)
	}
	e.rep.phase(fmt.Sprintf("%d agents registered and verified (🦞)", numAgents), since)
}

// spectatorsStep: spectators follow the room with the Go client, and the
// agents start posting (until messagesStep).
func (e *run) spectatorsStep(t *testing.T) {
	since := time.Now()
	for i := range numSpectators {
		e.spectators = append(e.spectators, startSpectator(e.ctx, e.base, fmt.Sprintf("spectator-%d", i)))
	}
	testenv.Eventually(t, 20*time.Second, "every spectator connected", func() error {
		for _, s := range e.spectators {
			if s.wire.pod() == "" {
				return fmt.Errorf("%s not connected (%s)", s.name, s.wire.lastErr)
			}
		}
		return nil
	})
	e.startPosting()
	testenv.Eventually(t, 20*time.Second, "every spectator receiving", func() error {
		last := e.lastPosted()
		if last < 5 {
			return fmt.Errorf("%d posted", last)
		}
		for _, s := range e.spectators {
			if s.wire.last() < 5 {
				return fmt.Errorf("%s has %v", s.name, s.received())
			}
		}
		return nil
	})
	e.rep.phase(fmt.Sprintf("%d spectators streaming, agents posting", numSpectators), since)
	e.rep.note("%d spectators (pkg/client) on %s; %d agents post a message every %s in turn",
		numSpectators, e.clientsByPod(e.spectatorWires()), numAgents, postEvery)
}

// podDeletedStep: a streamer pod goes (as in a node drain); its clients
// are drained, resume on the other pod and miss nothing, and the Deployment
// gets a new pod.
func (e *run) podDeletedStep(t *testing.T) {
	since := time.Now()
	byPod := map[string][]string{}
	for _, s := range e.spectators {
		byPod[s.wire.pod()] = append(byPod[s.wire.pod()], s.name)
	}
	victim := ""
	for p, ss := range byPod {
		if victim == "" || len(ss) > len(byPod[victim]) || (len(ss) == len(byPod[victim]) && p < victim) {
			victim = p
		}
	}
	if err := e.cl.k8s.Delete(e.ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: victim}}); err != nil {
		t.Fatal(err)
	}
	e.rep.note("deleted streamer pod %s, which served %s", victim, strings.Join(byPod[victim], ", "))
	var exit localpods.ProcessExit
	testenv.Eventually(t, 40*time.Second, "the deleted pod's process ends", func() error {
		for _, h := range e.runner.History() {
			if h.Pod == victim {
				exit = h
				return nil
			}
		}
		return fmt.Errorf("%s still running", victim)
	})
	if exit.Killed || exit.ExitCode != 0 {
		t.Errorf("the deleted pod's process did not drain and exit by itself: %+v\n%s", exit, e.podLog(victim))
	}
	e.rep.note("%s: preStop, SIGTERM at +%.1fs, exited (code %d) %.1fs later",
		victim, exit.TermSent.Sub(since).Seconds(), exit.ExitCode, exit.Exited.Sub(exit.TermSent).Seconds())
	wctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	if err := e.runner.WaitReady(wctx, e.strDep, minStreamers); err != nil {
		t.Fatalf("the streamer Deployment does not get its pod back: %v", err)
	}
	moved := e.waitResumed(t, e.spectatorWires(), []string{victim})
	e.rep.note("its clients resumed elsewhere: %s", strings.Join(moved, "; "))
	e.rep.phase("streamer pod deleted, clients resumed", since)
}

// surgeStep: a connection surge makes the operator scale the streamers up;
// when it ends, the operator scales them down, the removed pods drain and
// their clients resume on the others.
func (e *run) surgeStep(t *testing.T) {
	since := time.Now()
	var clients []*rawClient
	for i := range surgeClients {
		clients = append(clients, startRawClient(e.ctx, e.base, i))
		time.Sleep(surgeRamp / surgeClients)
	}
	e.rep.note("surge: %d more SSE clients connected over %s (target %d per pod, %d..%d streamers)",
		surgeClients, surgeRamp, targetPerPod, minStreamers, maxStreamers)
	testenv.Eventually(t, 90*time.Second, fmt.Sprintf("the operator scales the streamers to %d and their processes serve", maxStreamers), func() error {
		d, err := e.streamerDeployment()
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != maxStreamers {
			return fmt.Errorf("replicas %d", *d.Spec.Replicas)
		}
		if n := len(e.readyStreamers()); n != maxStreamers {
			return fmt.Errorf("%d ready streamer processes", n)
		}
		return nil
	})
	firstUp := e.fleet.firstAbove(minStreamers, since).Sub(since)
	up := e.fleet.firstReady(maxStreamers, since).Sub(since)
	testenv.Eventually(t, 30*time.Second, "every surge client connected", func() error {
		for _, c := range clients {
			select {
			case <-c.up:
			default:
				return fmt.Errorf("client %d not streaming (%s)", c.id, c.wire.lastErr)
			}
		}
		return nil
	})
	e.rep.note("scale-up: replicas first raised %.1fs after the surge began (%d clients connected by then), %d streamer processes ready at +%.1fs (the ramp took %s)",
		firstUp.Seconds(), min(surgeClients, int(firstUp*surgeClients/surgeRamp)), maxStreamers, up.Seconds(), surgeRamp)
	e.rep.note("at the peak: clients by pod %s; counts reported to Redis %s", e.clientsByPod(e.allWires(clients)), e.reported())
	e.rep.phase("surge: streamers scaled up", since)

	// The surge ends: all but a few clients per pod leave.
	since = time.Now()
	kept := map[string]int{}
	for _, c := range clients {
		if p := c.wire.pod(); kept[p] < stayersPerPod {
			kept[p]++
			e.stayers = append(e.stayers, c)
		} else {
			e.leavers = append(e.leavers, c)
			c.cancel()
		}
	}
	for _, c := range e.leavers {
		<-c.done
	}
	before := e.streamerPods()
	e.rep.note("the surge ends: %d clients leave, %d stay (%s)", len(e.leavers), len(e.stayers), e.clientsByPod(e.allWires(e.stayers)))
	testenv.Eventually(t, 150*time.Second, fmt.Sprintf("the operator scales the streamers back to %d and the removed pods end", minStreamers), func() error {
		d, err := e.streamerDeployment()
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != minStreamers {
			return fmt.Errorf("replicas %d", *d.Spec.Replicas)
		}
		pods := e.streamerPods()
		if len(pods) != minStreamers {
			return fmt.Errorf("%d streamer pods (%v)", len(pods), pods)
		}
		return nil
	})
	after := e.streamerPods()
	var removed []string
	for _, p := range before {
		if !slices.Contains(after, p) {
			removed = append(removed, p)
		}
	}
	for _, h := range e.runner.History() {
		if slices.Contains(removed, h.Pod) {
			if h.Killed || h.ExitCode != 0 || h.Reason != "scale-down" {
				t.Errorf("removed streamer %s did not drain and exit by itself on a scale-down: %+v", h.Pod, h)
			}
			e.rep.note("%s: %s, SIGTERM at +%.1fs after the surge ended, exited (code %d) %.1fs later",
				h.Pod, h.Reason, h.TermSent.Sub(since).Seconds(), h.ExitCode, h.Exited.Sub(h.TermSent).Seconds())
		}
	}
	moved := e.waitResumed(t, append(e.spectatorWires(), e.allWires(e.stayers)...), removed)
	if len(moved) == 0 {
		t.Errorf("no client was on the removed pods %v: the drain was not exercised", removed)
	}
	e.rep.note("scale-down to %d took %.1fs after the surge ended; removed %v (%d pods kept: %v)",
		minStreamers, time.Since(since).Seconds(), removed, len(after), after)
	e.rep.note("drained clients resumed elsewhere: %s", strings.Join(moved, "; "))
	e.rep.phase("surge over: streamers scaled down, clients resumed", since)
}

// messagesStep: posting stops; every spectator and every surge client that
// stayed has every posted message exactly once, in order; the ones that
// left saw a gap-free, duplicate-free, ordered run while connected.
func (e *run) messagesStep(t *testing.T) {
	e.stopPosting()
	e.postMu.Lock()
	posted := slices.Clone(e.posted)
	errs := slices.Clone(e.postErrs)
	e.postMu.Unlock()
	if len(errs) > 0 {
		t.Errorf("%d posts failed, first: %s", len(errs), errs[0])
	}
	if len(posted) == 0 {
		t.Fatal("nothing was posted")
	}
	for i, id := range posted {
		if id != int64(i+1) {
			t.Fatalf("posted ids are not 1..%d: %v", len(posted), posted)
		}
	}
	final := posted[len(posted)-1]
	// The Go client hands a message over just after its wire saw it: wait
	// for both.
	testenv.Eventually(t, 30*time.Second, "every client has the last message", func() error {
		for _, w := range append(e.spectatorWires(), e.allWires(e.stayers)...) {
			if w.last() < final {
				return fmt.Errorf("a client is at %d of %d (pod %s)", w.last(), final, w.pod())
			}
		}
		for _, s := range e.spectators {
			if got := s.received(); len(got) == 0 || got[len(got)-1] < final {
				return fmt.Errorf("%s's Go client has handed over %d messages, the last posted is %d", s.name, len(got), final)
			}
		}
		return nil
	})
	for _, s := range e.spectators {
		if got := s.received(); !slices.Equal(got, posted) {
			t.Errorf("%s: the Go client handed over %d messages, want the %d posted, in order (first difference at %d)",
				s.name, len(got), len(posted), firstDiff(got, posted))
		}
	}
	check := func(class string, ws []*wire, whole bool) {
		var sum streamCheck
		conns := 0
		for _, w := range ws {
			ids, pods, _ := w.snapshot()
			conns += len(pods)
			if len(ids) == 0 {
				t.Errorf("a %s received nothing", class)
				continue
			}
			from, to := int64(1), final
			if !whole {
				from, to = slices.Min(ids), slices.Max(ids)
			} else if ids[0] > 1 {
				from = ids[0] // a later client starts with the recent history
			}
			c := checkWire(ids, posted, from, to)
			sum.delivered += c.delivered
			sum.lost += c.lost
			sum.dup += c.dup
			sum.reordered += c.reordered
		}
		if sum.lost+sum.dup+sum.reordered > 0 {
			t.Errorf("%s: %d lost, %d duplicated, %d out of order", class, sum.lost, sum.dup, sum.reordered)
		}
		e.rep.note("%-34s %4d clients, %5d connections, %7d messages delivered: %d lost, %d duplicated, %d out of order",
			class+":", len(ws), conns, sum.delivered, sum.lost, sum.dup, sum.reordered)
	}
	e.rep.note("%d messages posted (ids 1..%d), %d posts failed", len(posted), final, len(errs))
	check("spectators (pkg/client, on the wire)", e.spectatorWires(), true)
	if len(e.stayers) > 0 {
		check("surge clients that stayed", e.allWires(e.stayers), true)
		check("surge clients that left", e.allWires(e.leavers), false)
	}
	// Latency from the post's start to each spectator's receipt.
	var lat []time.Duration
	for _, s := range e.spectators {
		s.wire.mu.Lock()
		for id, at := range s.wire.arrived {
			if p, ok := e.postedAt[id]; ok {
				lat = append(lat, at.Sub(p))
			}
		}
		s.wire.mu.Unlock()
	}
	e.rep.note("post → spectator latency over %d deliveries (resumes included): p50 %s, p99 %s, max %s", len(lat),
		percentile(lat, 0.5).Round(time.Millisecond), percentile(lat, 0.99).Round(time.Millisecond), percentile(lat, 1).Round(time.Millisecond))
}

// finish stops the clients and prints the summary.
func (e *run) finish() {
	t := e.t
	e.stopPosting()
	e.end()
	for _, s := range e.spectators {
		<-s.done
	}
	for _, c := range append(slices.Clone(e.stayers), e.leavers...) {
		<-c.done
	}
	extra := []string{""}
	if e.fleet != nil {
		extra = append(extra, fmt.Sprintf("streamers: at most %d replicas", e.fleet.peak()))
	}
	if cr, err := e.getRoomFresh(); err == nil {
		extra = append(extra, "room status: "+cr.Status.Streamers+" streamers ready/desired")
		for _, c := range conditions(cr) {
			extra = append(extra, "  "+c)
		}
	}
	extra = append(extra, "events of the room:")
	for _, ev := range roomEvents(context.Background(), e.cl.k8s, namespace, e.room) {
		extra = append(extra, "  "+ev)
	}
	extra = append(extra, "", "logs: "+e.logDir+" (operator.log, pods/<pod>.log, pods/runner.log)")
	summary := e.rep.render(extra)
	fmt.Print(summary)
	_ = os.WriteFile(filepath.Join(e.logDir, "summary.txt"), []byte(summary), 0o644)
	if t.Failed() {
		t.Logf("operator log (tail):\n%s", tail(filepath.Join(e.logDir, "operator.log"), 40))
		t.Logf("runner log (tail):\n%s", tail(filepath.Join(e.logDir, "pods", "runner.log"), 40))
	}
}

// getRoomFresh reads the room after the run's context has ended.
func (e *run) getRoomFresh() (*chatrv1.ChatRoom, error) {
	if e.cl == nil || e.room == "" {
		return nil, fmt.Errorf("no room")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var cr chatrv1.ChatRoom
	err := e.cl.k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: e.room}, &cr)
	return &cr, err
}

// startPosting has the agents post in turn, one message every postEvery.
func (e *run) startPosting() {
	ctx, cancel := context.WithCancel(e.ctx)
	e.stopPost, e.postDone = cancel, make(chan struct{})
	go func() {
		defer close(e.postDone)
		tick := time.NewTicker(postEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// Not ctx: a post is never cut off halfway, so every message
			// the room stored is one whose id the test knows.
			pctx, pcancel := context.WithTimeout(context.Background(), 15*time.Second)
			at := time.Now()
			m, err := e.agents[i%len(e.agents)].Post(pctx, fmt.Sprintf("message %d", i+1))
			pcancel()
			e.postMu.Lock()
			if err != nil {
				e.postErrs = append(e.postErrs, err.Error())
			} else if n, ok := m.Seq(); ok {
				e.posted = append(e.posted, n)
				e.postedAt[n] = at
			} else {
				e.postErrs = append(e.postErrs, "id "+m.ID)
			}
			e.postMu.Unlock()
		}
	}()
}

func (e *run) stopPosting() {
	if e.stopPost != nil {
		e.stopPost()
		<-e.postDone
	}
}

func (e *run) lastPosted() int64 {
	e.postMu.Lock()
	defer e.postMu.Unlock()
	if len(e.posted) == 0 {
		return 0
	}
	return e.posted[len(e.posted)-1]
}

// waitResumed waits until every client that was on one of the gone pods is
// connected to another and has caught up; it returns "pod a -> pod b" moves.
func (e *run) waitResumed(t *testing.T, ws []*wire, gone []string) []string {
	t.Helper()
	type mover struct {
		w    *wire
		from string
		n    int // connections before
	}
	var ms []mover
	for _, w := range ws {
		_, pods, _ := w.snapshot()
		for _, p := range pods {
			if slices.Contains(gone, p) {
				ms = append(ms, mover{w, p, len(pods)})
				break
			}
		}
	}
	testenv.Eventually(t, 30*time.Second, "the drained clients resume on another pod and catch up", func() error {
		last := e.lastPosted()
		for _, m := range ms {
			if p := m.w.pod(); slices.Contains(gone, p) || p == "" {
				return fmt.Errorf("a client is still on %s", p)
			}
			if m.w.last() < last-1 {
				return fmt.Errorf("a client on %s is at %d of %d", m.w.pod(), m.w.last(), last)
			}
		}
		return nil
	})
	var out []string
	for _, m := range ms {
		_, pods, drops := m.w.snapshot()
		out = append(out, fmt.Sprintf("%s -> %s (%d connections, %d ended by the room)", m.from, pods[len(pods)-1], len(pods), drops))
	}
	return out
}

func (e *run) streamerDeployment() (*appsv1.Deployment, error) {
	var d appsv1.Deployment
	if err := e.cl.k8s.Get(e.ctx, client.ObjectKey{Namespace: namespace, Name: e.strDep}, &d); err != nil {
		return nil, err
	}
	if d.Spec.Replicas == nil {
		return nil, fmt.Errorf("no replicas")
	}
	return &d, nil
}

// streamerPods lists the streamer pods the runner has (terminating ones too).
func (e *run) streamerPods() []string {
	var out []string
	for _, p := range e.runner.Pods() {
		if p.Deployment == e.strDep {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out
}

func (e *run) readyStreamers() []string {
	var out []string
	for _, p := range e.runner.Pods() {
		if p.Deployment == e.strDep && p.Ready && !p.Terminating && p.PID > 0 {
			out = append(out, p.Name)
		}
	}
	return out
}

// reported reads the connection counts the streamers report to Redis.
func (e *run) reported() string {
	pods := e.streamerPods()
	counts, err := connreport.Read(e.ctx, e.rdb, e.schema, pods)
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, p := range pods {
		if n, ok := counts[p]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", p, n))
		} else {
			parts = append(parts, p+"=none")
		}
	}
	return strings.Join(parts, " ")
}

func (e *run) spectatorWires() []*wire {
	var out []*wire
	for _, s := range e.spectators {
		out = append(out, s.wire)
	}
	return out
}

func (e *run) allWires(cs []*rawClient) []*wire {
	var out []*wire
	for _, c := range cs {
		out = append(out, c.wire)
	}
	return out
}

// clientsByPod counts clients by the pod of their current connection.
func (e *run) clientsByPod(ws []*wire) string {
	m := map[string]int{}
	for _, w := range ws {
		m[w.pod()]++
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func (e *run) podSummary() string {
	m := map[string][]string{}
	for _, p := range e.runner.Pods() {
		m[p.Deployment] = append(m[p.Deployment], fmt.Sprintf("%s (pid %d, ready %t)", p.Name, p.PID, p.Ready))
	}
	var parts []string
	for _, d := range []string{e.apiDep, e.strDep, e.verDep} {
		parts = append(parts, strings.Join(m[d], ", "))
	}
	return strings.Join(parts, "; ")
}

func (e *run) podLog(pod string) string {
	return tail(filepath.Join(e.logDir, "pods", pod+".log"), 20)
}

func (e *run) podLogs() string {
	var b strings.Builder
	for _, p := range e.runner.Pods() {
		fmt.Fprintf(&b, "---- %s\n%s\n", p.Name, e.podLog(p.Name))
	}
	return b.String()
}

func firstDiff(a, b []int64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
