package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/autoscale"
	"github.com/chatr-ai/chatr/internal/connreport"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// These tests drive the streamer autoscaler against the real API server
// (envtest, with the ChatRoom reconciler of suite_test.go running) and the
// real Redis, with a fake clock: each test calls one evaluation at a time,
// as the controller's requeue would every evaluation interval, and steps
// the clock in between. envtest has no ReplicaSet controller and no
// kubelet, so the fixture plays them: it creates and deletes the streamer
// pods to follow the Deployment's replicas (lowest deletion cost first),
// sets their Ready condition, and writes their counts to Redis with
// connreport.Report, as the streamers do.

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// capturedEvent is one event the autoscaler emitted.
type capturedEvent struct{ typ, reason, note string }

// eventLog records events in memory (the manager test checks the real
// Events in the API server).
type eventLog struct {
	mu     sync.Mutex
	events []capturedEvent
}

func (l *eventLog) Eventf(_ runtime.Object, _ runtime.Object, eventtype, reason, _ string, note string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, capturedEvent{eventtype, reason, fmt.Sprintf(note, args...)})
}

func (l *eventLog) with(reason string) []capturedEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []capturedEvent
	for _, e := range l.events {
		if e.reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// fleet is one room, its streamer pods and their counts.
type fleet struct {
	t      *testing.T
	room   *chatrv1.ChatRoom
	schema string
	rdb    *redis.Client
	clock  *fakeClock
	events *eventLog
	a      *StreamerAutoscaler
	next   int
}

// newFleet creates a room whose Redis Secret holds redisURL, with mod
// applied to its spec, and waits for its children. Its streamer pods are
// created by syncPods.
func newFleet(t *testing.T, redisURL string, mod func(*chatrv1.ChatRoom)) *fleet {
	t.Helper()
	needEnv(t)
	ctx := context.Background()
	ns := newNamespace(t)
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "s-pg", Namespace: ns}, StringData: map[string]string{"url": "postgres://u:p@pg:5432/chatr"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "s-redis", Namespace: ns}, StringData: map[string]string{"url": redisURL}},
	} {
		must(k8s.Create(ctx, s))
	}
	room := newRoom(ns, "room", "s")
	room.Spec.Streamer.Autoscaling.TargetConnectionsPerPod = 100
	if mod != nil {
		mod(room)
	}
	createRoom(t, room)
	must(get(room))
	f := &fleet{
		t: t, room: room, schema: room.PostgresSchema(), rdb: testenv.Redis(t),
		clock:  &fakeClock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)},
		events: &eventLog{},
	}
	f.a = f.newAutoscaler(k8s)
	t.Cleanup(func() {
		f.a.redis.closeAll()
		keys, _ := f.rdb.Keys(context.Background(), connreport.Key(f.schema, "*")).Result()
		if len(keys) > 0 {
			f.rdb.Del(context.Background(), keys...)
		}
	})
	return f
}

// newAutoscaler returns a new autoscaler instance (as a new operator
// process would have) on the fleet's clock and event log.
func (f *fleet) newAutoscaler(c client.Client) *StreamerAutoscaler {
	return &StreamerAutoscaler{Client: c, APIReader: k8s, Recorder: f.events, Clock: f.clock}
}

// evaluate runs one evaluation. Its status write never races the ChatRoom
// reconciler's (each applies its own fields), so there is nothing to retry.
func (f *fleet) evaluate() evaluation {
	f.t.Helper()
	ev, err := f.a.evaluate(context.Background(), client.ObjectKeyFromObject(f.room))
	if err != nil {
		f.t.Fatalf("evaluation at %s: %v", f.clock.Now().Format(time.TimeOnly), err)
	}
	return ev
}

// replicas returns the streamer Deployment's spec.replicas.
func (f *fleet) replicas() int32 {
	f.t.Helper()
	d := deployment(f.room, chatrv1.ComponentStreamer)
	must(get(d))
	return *d.Spec.Replicas
}

// setReplicas scales the Deployment by hand (someone else than the autoscaler).
func (f *fleet) setReplicas(n int32) {
	f.t.Helper()
	d := deployment(f.room, chatrv1.ComponentStreamer)
	must(get(d))
	orig := d.DeepCopy()
	d.Spec.Replicas = &n
	must(k8s.Patch(context.Background(), d, client.MergeFrom(orig)))
}

// current returns the room as stored.
func (f *fleet) current() *chatrv1.ChatRoom {
	f.t.Helper()
	r := &chatrv1.ChatRoom{ObjectMeta: metav1.ObjectMeta{Namespace: f.room.Namespace, Name: f.room.Name}}
	must(get(r))
	return r
}

// pods returns the room's streamer pods, by name.
func (f *fleet) pods() []corev1.Pod {
	f.t.Helper()
	var list corev1.PodList
	must(k8s.List(context.Background(), &list, client.InNamespace(f.room.Namespace),
		client.MatchingLabels(f.room.SelectorLabels(chatrv1.ComponentStreamer))))
	slices.SortFunc(list.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return list.Items
}

// addPod creates one streamer pod, Ready or not, as the ReplicaSet and the
// kubelet would.
func (f *fleet) addPod(ready bool) string {
	f.t.Helper()
	f.next++
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: f.room.Namespace, Name: fmt.Sprintf("%s-%03d", f.room.ComponentName(chatrv1.ComponentStreamer), f.next),
			Labels: f.room.ComponentLabels(chatrv1.ComponentStreamer),
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "streamer", Image: f.room.Spec.Image}}},
	}
	must(k8s.Create(context.Background(), p))
	f.setReady(p.Name, ready)
	return p.Name
}

// setReady sets the pod's Ready condition through the status subresource.
func (f *fleet) setReady(name string, ready bool) {
	f.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: f.room.Namespace, Name: name}}
	must(get(p))
	s := corev1.ConditionFalse
	if ready {
		s = corev1.ConditionTrue
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: s, LastTransitionTime: metav1.Now()}}
	must(k8s.Status().Update(context.Background(), p))
}

// terminate deletes the pod but keeps it (a finalizer), as a draining pod
// is kept until it exits.
func (f *fleet) terminate(name string) {
	f.t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: f.room.Namespace, Name: name}}
	must(get(p))
	p.Finalizers = append(p.Finalizers, "chatr.ai/test-drain")
	must(k8s.Update(ctx, p))
	must(k8s.Delete(ctx, p))
	f.t.Cleanup(func() {
		if err := get(p); err == nil {
			p.Finalizers = nil
			_ = k8s.Update(ctx, p)
		}
	})
}

// syncPods plays the ReplicaSet: Ready pods are added up to the
// Deployment's replicas, or removed down to it, lowest deletion cost first
// (then by name). It returns the names of the removed pods.
func (f *fleet) syncPods() []string {
	f.t.Helper()
	want := int(f.replicas())
	var live []corev1.Pod
	for _, p := range f.pods() {
		if p.DeletionTimestamp.IsZero() {
			live = append(live, p)
		}
	}
	for i := len(live); i < want; i++ {
		f.addPod(true)
	}
	cost := func(p corev1.Pod) int {
		n, err := strconv.Atoi(p.Annotations[autoscale.DeletionCostAnnotation])
		if err != nil {
			return 0
		}
		return n
	}
	slices.SortStableFunc(live, func(a, b corev1.Pod) int { return cost(a) - cost(b) })
	var removed []string
	for i := 0; i < len(live)-want; i++ {
		must(k8s.Delete(context.Background(), &live[i]))
		removed = append(removed, live[i].Name)
	}
	return removed
}

// report writes each pod's count, as the streamers do.
func (f *fleet) report(counts map[string]int64) {
	f.t.Helper()
	for pod, n := range counts {
		if err := connreport.Report(context.Background(), f.rdb, f.schema, pod, n, time.Minute); err != nil {
			f.t.Fatal(err)
		}
	}
}

// readyPods returns the names of the Ready, non-terminating pods.
func (f *fleet) readyPods() []string {
	var names []string
	for _, p := range f.pods() {
		if p.DeletionTimestamp.IsZero() && podReady(&p) {
			names = append(names, p.Name)
		}
	}
	return names
}

// spread reports total connections spread evenly over the Ready pods.
func (f *fleet) spread(total int64) {
	f.t.Helper()
	names := f.readyPods()
	counts := map[string]int64{}
	for i, n := range names {
		counts[n] = total / int64(len(names))
		if int64(i) < total%int64(len(names)) {
			counts[n]++
		}
	}
	f.report(counts)
}

// wantRoomCondition checks one of the autoscaler's conditions, with the
// room's generation.
func wantRoomCondition(t *testing.T, room *chatrv1.ChatRoom, typ string, s metav1.ConditionStatus, reason string) {
	t.Helper()
	c := condition(room, typ)
	if c == nil {
		t.Fatalf("no %s condition", typ)
	}
	if c.Status != s || c.Reason != reason || c.ObservedGeneration != room.Generation {
		t.Fatalf("%s = %s/%s (generation %d of %d): %s; want %s/%s", typ, c.Status, c.Reason, c.ObservedGeneration, room.Generation, c.Message, s, reason)
	}
}

func TestAutoscalerSurgeScalesUpAtTheNextEvaluation(t *testing.T) {
	f := newFleet(t, testenv.RedisURL(), nil)
	f.syncPods()
	f.spread(100)
	ev := f.evaluate()
	if ev.from != 2 || ev.to != 2 || !ev.statusWritten {
		t.Fatalf("quiet room: %d → %d, status written %v", ev.from, ev.to, ev.statusWritten)
	}
	room := f.current()
	wantRoomCondition(t, room, chatrv1.ConditionScalingActive, metav1.ConditionTrue, autoscale.ReasonValidCounts)
	wantRoomCondition(t, room, chatrv1.ConditionScalingLimited, metav1.ConditionFalse, autoscale.ReasonWithinRange)
	if *room.Status.Connections != 100 || *room.Status.DesiredStreamers != 2 || *room.Status.CurrentStreamers != 2 ||
		room.Status.LastScaleTime != nil || room.Status.Autoscaler == nil {
		t.Fatalf("status %+v", room.Status)
	}

	// The surge: 600 connections on 2 pods ask for 6 + 1 spare; the
	// scale-up limit (max(+4 pods, +100 %) per 15 s) allows 6 now.
	f.clock.Step(2 * time.Second)
	f.spread(600)
	ev = f.evaluate()
	if ev.to != 6 || f.replicas() != 6 {
		t.Fatalf("surge: %d → %d, deployment %d; want 6", ev.from, ev.to, f.replicas())
	}
	room = f.current()
	wantRoomCondition(t, room, chatrv1.ConditionScalingLimited, metav1.ConditionTrue, autoscale.ReasonScaleUpLimit)
	if *room.Status.DesiredStreamers != 6 || *room.Status.Connections != 600 || room.Status.LastScaleTime == nil ||
		!room.Status.LastScaleTime.Time.Equal(f.clock.Now()) {
		t.Fatalf("status after the surge: desired %v, connections %v, lastScaleTime %v (now %s)",
			*room.Status.DesiredStreamers, *room.Status.Connections, room.Status.LastScaleTime, f.clock.Now())
	}
	ups := f.events.with(eventScaledUp)
	if len(ups) != 1 || ups[0].typ != corev1.EventTypeNormal || !strings.Contains(ups[0].note, "streamers 2 → 6, 600 connections") {
		t.Fatalf("ScaledUp events %+v", ups)
	}

	// Within the same period the limit holds; after it, the 7th pod comes.
	f.syncPods()
	f.clock.Step(2 * time.Second)
	if ev = f.evaluate(); ev.to != 6 {
		t.Fatalf("within the rate-limit period: %d → %d", ev.from, ev.to)
	}
	f.clock.Step(14 * time.Second)
	if ev = f.evaluate(); ev.to != 7 {
		t.Fatalf("after the rate-limit period: %d → %d, want 7 (%s)", ev.from, ev.to, ev.result.ScalingLimited.Message)
	}
	if n := len(f.events.with(eventScaledUp)); n != 2 {
		t.Errorf("%d ScaledUp events, want 2", n)
	}
}

func TestAutoscalerNoisySteadyLoadNeverFlaps(t *testing.T) {
	f := newFleet(t, testenv.RedisURL(), nil)
	f.syncPods()
	rng := rand.New(rand.NewPCG(1, 2))
	// 400 ± 4 % (std): right on the boundary of 4 pods + 1 spare.
	noisy := func() int64 { return int64(400 * (1 + 0.04*rng.NormFloat64())) }
	f.spread(380)
	if ev := f.evaluate(); ev.to != 5 {
		t.Fatalf("380 connections: %d → %d, want 5", ev.from, ev.to)
	}
	sizes := []int32{5}
	writes, evals := 0, 0
	// 420 s: longer than the 300 s scale-down window plus its 10 s resolution.
	for f.clock.Step(2 * time.Second); evals < 210; f.clock.Step(2 * time.Second) {
		f.syncPods()
		f.spread(noisy())
		ev := f.evaluate()
		evals++
		if ev.statusWritten {
			writes++
		}
		sizes = append(sizes, ev.to)
	}
	changes := 0
	for i := 1; i < len(sizes); i++ {
		if sizes[i] < sizes[i-1] {
			t.Fatalf("the fleet shrank under a steady load: %v", sizes)
		}
		if sizes[i] != sizes[i-1] {
			changes++
		}
	}
	// The noise crosses the boundary: one scale-up, then never back.
	if changes != 1 || sizes[len(sizes)-1] != 6 {
		t.Fatalf("%d changes under a steady load, want the one scale-up to 6: %v", changes, sizes)
	}
	if n := len(f.events.with(eventScaledDown)); n != 0 {
		t.Errorf("%d ScaledDown events", n)
	}
	// The status is written when the state moves (about every 10 s), not at
	// every evaluation.
	if writes > evals/3 {
		t.Errorf("status written at %d of %d evaluations", writes, evals)
	}
	t.Logf("%d evaluations: sizes from %d to %d, %d status writes", evals, sizes[0], sizes[len(sizes)-1], writes)
}

// recordingClient records the order of the autoscaler's writes.
func recordingClient(t *testing.T, record func(string)) client.Client {
	c, err := client.NewWithWatch(restCfg, client.Options{Scheme: testScheme})
	must(err)
	return interceptor.NewClient(c, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			record(fmt.Sprintf("%T %s", obj, obj.GetName()))
			return c.Patch(ctx, obj, patch, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			record(fmt.Sprintf("%T %s/%s", obj, obj.GetName(), sub))
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
		// The status is written with server-side apply of an unstructured
		// room; recorded as a patch of the typed room would be.
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			if u, ok := obj.(interface {
				GetKind() string
				GetName() string
			}); ok && u.GetKind() == "ChatRoom" {
				record(fmt.Sprintf("%T %s/%s", &chatrv1.ChatRoom{}, u.GetName(), sub))
			}
			return c.SubResource(sub).Apply(ctx, obj, opts...)
		},
	})
}

func TestAutoscalerScalesDownAfterTheWindowOneStepAtATime(t *testing.T) {
	f := newFleet(t, testenv.RedisURL(), func(r *chatrv1.ChatRoom) {
		r.Spec.Streamer.Autoscaling.ScaleUp.MaxPods = ptr(int32(10))
		r.Spec.Streamer.Autoscaling.ScaleDown.StabilizationWindow = &metav1.Duration{Duration: 2 * time.Minute}
	})
	var mu sync.Mutex
	var writes []string
	f.a = f.newAutoscaler(recordingClient(t, func(s string) { mu.Lock(); writes = append(writes, s); mu.Unlock() }))
	f.syncPods()
	f.spread(700)
	if ev := f.evaluate(); ev.to != 8 {
		t.Fatalf("700 connections: %d → %d, want 8", ev.from, ev.to)
	}
	f.syncPods()

	// The load drops to 120, spread unevenly: a quiet pod and busier ones.
	skewed := func() {
		names := f.readyPods()
		counts := map[string]int64{}
		left := int64(120)
		for i := len(names) - 1; i >= 0; i-- {
			n := min(left, int64(10*(i+1)))
			if i == 0 {
				n = left
			}
			counts[names[i]] = n
			left -= n
		}
		f.report(counts)
	}
	drop := f.clock.Now()
	var downs []time.Time
	for len(downs) < 3 {
		f.clock.Step(2 * time.Second)
		if f.clock.Now().Sub(drop) > 5*time.Minute {
			t.Fatalf("no third scale-down 5 minutes after the drop (at %v)", downs)
		}
		f.syncPods()
		skewed()
		mu.Lock()
		writes = nil
		mu.Unlock()
		before := f.pods()
		ev := f.evaluate()
		if ev.to == ev.from {
			if ev.result.ScalingLimited.Reason != autoscale.ReasonScaleDownStabilized && ev.result.ScalingLimited.Reason != autoscale.ReasonScaleDownLimit {
				t.Fatalf("holding at %d: %s (%s)", ev.to, ev.result.ScalingLimited.Reason, ev.result.ScalingLimited.Message)
			}
			continue
		}
		if ev.to != ev.from-1 {
			t.Fatalf("scale-down %d → %d: more than the one pod allowed", ev.from, ev.to)
		}
		downs = append(downs, f.clock.Now())

		// The least-connected pod got cost 0, and the costs were written
		// before the replicas.
		var least string
		var leastConns int64 = 1 << 62
		for _, p := range before {
			n, _ := f.rdb.Get(context.Background(), connreport.Key(f.schema, p.Name)).Int64()
			if n < leastConns {
				least, leastConns = p.Name, n
			}
		}
		for _, p := range f.pods() {
			if p.Name == least && p.Annotations[autoscale.DeletionCostAnnotation] != "0" {
				t.Fatalf("least connected pod %s (%d) has cost %q", least, leastConns, p.Annotations[autoscale.DeletionCostAnnotation])
			}
		}
		mu.Lock()
		order := slices.Clone(writes)
		mu.Unlock()
		dep := slices.Index(order, "*v1.Deployment "+f.room.ComponentName(chatrv1.ComponentStreamer))
		firstPod := slices.IndexFunc(order, func(s string) bool { return strings.HasPrefix(s, "*v1.Pod ") })
		status := slices.Index(order, "*v1alpha1.ChatRoom room/status")
		if dep < 0 || status < 0 || status > dep || (len(downs) == 1 && (firstPod < 0 || firstPod > dep)) {
			t.Fatalf("writes in the wrong order (status, then pod costs, then replicas): %v", order)
		}
		if removed := f.syncPods(); len(removed) != 1 || removed[0] != least {
			t.Fatalf("the ReplicaSet removed %v, want the least connected %s", removed, least)
		}
	}
	// Not before the window (2 min + at most the state's 10 s resolution
	// after the last high recommendation, which was at most 10 s before
	// the drop); then one pod per 15 s period.
	if d := downs[0].Sub(drop); d < 2*time.Minute || d > 2*time.Minute+12*time.Second {
		t.Errorf("first scale-down %s after the drop; want after the 2m window", d)
	}
	for i := 1; i < len(downs); i++ {
		if d := downs[i].Sub(downs[i-1]); d < 15*time.Second || d > 18*time.Second {
			t.Errorf("scale-down %d came %s after the previous one; want one per 15s period", i+1, d)
		}
	}
	if n := len(f.events.with(eventScaledDown)); n != 3 {
		t.Errorf("%d ScaledDown events, want 3", n)
	}
	room := f.current()
	if *room.Status.DesiredStreamers != 5 || !room.Status.LastScaleTime.Time.Equal(downs[2]) {
		t.Errorf("status: desired %d, lastScaleTime %v", *room.Status.DesiredStreamers, room.Status.LastScaleTime)
	}
}

func TestAutoscalerClampsToMinAndMax(t *testing.T) {
	f := newFleet(t, testenv.RedisURL(), func(r *chatrv1.ChatRoom) {
		r.Spec.Streamer.Autoscaling.MinReplicas, r.Spec.Streamer.Autoscaling.MaxReplicas = 3, 5
		r.Spec.Streamer.Autoscaling.ScaleUp.MaxPods = ptr(int32(10))
	})
	f.syncPods()
	f.spread(2000) // asks for 21
	if ev := f.evaluate(); ev.to != 5 || ev.result.ScalingLimited.Reason != autoscale.ReasonTooManyReplicas {
		t.Fatalf("2000 connections: %d → %d (%s), want max 5", ev.from, ev.to, ev.result.ScalingLimited.Reason)
	}
	wantRoomCondition(t, f.current(), chatrv1.ConditionScalingLimited, metav1.ConditionTrue, autoscale.ReasonTooManyReplicas)

	// Someone scales by hand beyond the spec: back inside at once, rate
	// limits or not.
	f.clock.Step(2 * time.Second)
	f.setReplicas(9)
	if ev := f.evaluate(); ev.from != 9 || ev.to != 5 {
		t.Fatalf("hand-scaled to 9: %d → %d, want 5", ev.from, ev.to)
	}
	f.clock.Step(2 * time.Second)
	f.setReplicas(1)
	if ev := f.evaluate(); ev.from != 1 || ev.to != 3 || ev.result.ScalingLimited.Reason != autoscale.ReasonTooFewReplicas {
		t.Fatalf("hand-scaled to 1: %d → %d (%s), want 3", ev.from, ev.to, ev.result.ScalingLimited.Reason)
	}

	// No load at all for longer than the window: the fleet stays at min.
	f.syncPods()
	for i := 0; i < 165; i++ { // past the 300 s window
		f.clock.Step(2 * time.Second)
		f.spread(0)
		if ev := f.evaluate(); ev.to != 3 {
			t.Fatalf("no load: %d → %d, want min 3", ev.from, ev.to)
		}
	}
	wantRoomCondition(t, f.current(), chatrv1.ConditionScalingLimited, metav1.ConditionTrue, autoscale.ReasonTooFewReplicas)
}

func TestAutoscalerHoldsWhenRedisIsDown(t *testing.T) {
	// Nothing listens on port 1: every read fails at once.
	f := newFleet(t, "redis://127.0.0.1:1/0", nil)
	f.syncPods()
	f.setReplicas(4) // as if the load had asked for 4 before
	f.syncPods()
	for i := 0; i < 4; i++ {
		f.clock.Step(2 * time.Second)
		ev := f.evaluate()
		if ev.to != 4 || f.replicas() != 4 {
			t.Fatalf("Redis down: %d → %d; want the size held", ev.from, ev.to)
		}
	}
	room := f.current()
	wantRoomCondition(t, room, chatrv1.ConditionScalingActive, metav1.ConditionFalse, autoscale.ReasonFailedGetCounts)
	if msg := condition(room, chatrv1.ConditionScalingActive).Message; !strings.Contains(msg, "holding 4 replicas: cannot read the connection counts") {
		t.Errorf("ScalingActive message %q", msg)
	}
	warnings := f.events.with(autoscale.ReasonFailedGetCounts)
	if len(warnings) != 1 || warnings[0].typ != corev1.EventTypeWarning {
		t.Errorf("want one Warning for the outage, got %+v", warnings)
	}
	old := f.a.redis.clients["redis://127.0.0.1:1/0"]
	if old == nil {
		t.Fatal("no client cached for the room's Redis")
	}

	// Redis is back (the Secret names a live one): the counts are read, the
	// old client is closed, and the fleet follows the load again.
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.room.Namespace, Name: "s-redis"}}
	must(get(sec))
	sec.Data["url"] = []byte(testenv.RedisURL())
	must(k8s.Update(context.Background(), sec))
	f.spread(900)
	f.clock.Step(2 * time.Second)
	if ev := f.evaluate(); ev.to != 8 {
		t.Fatalf("Redis back with 900 connections: %d → %d, want 8", ev.from, ev.to)
	}
	wantRoomCondition(t, f.current(), chatrv1.ConditionScalingActive, metav1.ConditionTrue, autoscale.ReasonValidCounts)
	if err := old.Ping(context.Background()).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("the stale client was not closed: %v", err)
	}
	if len(f.a.redis.clients) != 1 {
		t.Errorf("%d clients cached, want 1", len(f.a.redis.clients))
	}

	// The Secret goes away: once the URL read is older than the resync
	// (Secrets are read by name, not watched), held again, and the client
	// is released.
	must(k8s.Delete(context.Background(), sec))
	f.clock.Step(defaultSecretResync)
	if ev := f.evaluate(); ev.to != ev.from || !strings.Contains(ev.result.ScalingActive.Message, `the Redis Secret "s-redis" does not exist`) {
		t.Fatalf("no Secret: %d → %d: %s", ev.from, ev.to, ev.result.ScalingActive.Message)
	}
	if len(f.a.redis.clients) != 0 {
		t.Errorf("%d clients cached after the Secret went", len(f.a.redis.clients))
	}
	if n := len(f.events.with(autoscale.ReasonFailedGetCounts)); n != 2 {
		t.Errorf("%d outage Warnings, want 2 (one per outage)", n)
	}
}

func TestAutoscalerIgnoresUnreadyAndTerminatingPods(t *testing.T) {
	f := newFleet(t, testenv.RedisURL(), func(r *chatrv1.ChatRoom) { r.Spec.Streamer.Autoscaling.MinReplicas = 3 })
	f.syncPods()
	ready := f.readyPods()
	unready := f.addPod(false)
	leaving := f.addPod(true)
	f.terminate(leaving)
	f.report(map[string]int64{ready[0]: 50, ready[1]: 50, ready[2]: 50, unready: 5000, leaving: 5000})
	ev := f.evaluate()
	if ev.to != 3 || ev.result.Connections != 150 {
		t.Fatalf("%d → %d with %d connections; want 3 holding 150 (the unready and terminating pods' counts ignored)", ev.from, ev.to, ev.result.Connections)
	}
	room := f.current()
	if *room.Status.Connections != 150 || *room.Status.CurrentStreamers != 4 {
		t.Errorf("status connections %d, current %d; want 150 and 4 (terminating excluded)", *room.Status.Connections, *room.Status.CurrentStreamers)
	}
	if msg := condition(room, chatrv1.ConditionScalingActive).Message; !strings.Contains(msg, "1 unready, 1 terminating") {
		t.Errorf("ScalingActive message %q", msg)
	}

	// A Ready pod that has not reported counts as 0 when growing: 600 on
	// the two that report asks for 7, with 4 within the period's limit.
	f.rdb.Del(context.Background(), connreport.Key(f.schema, ready[2]))
	f.report(map[string]int64{ready[0]: 300, ready[1]: 300})
	f.clock.Step(2 * time.Second)
	if ev := f.evaluate(); ev.to != 7 || ev.result.Connections != 600 {
		t.Fatalf("%d → %d with %d connections; want 7 for 600", ev.from, ev.to, ev.result.Connections)
	}
	// No Ready pod at all: held.
	for _, p := range f.readyPods() {
		f.setReady(p, false)
	}
	f.clock.Step(2 * time.Second)
	if ev := f.evaluate(); ev.to != ev.from || ev.result.ScalingActive.Reason != autoscale.ReasonNoReadyPods {
		t.Fatalf("no Ready pod: %d → %d (%s)", ev.from, ev.to, ev.result.ScalingActive.Reason)
	}
}

func TestAutoscalerRestartKeepsTheWindowAndTheRateLimit(t *testing.T) {
	f := newFleet(t, testenv.RedisURL(), func(r *chatrv1.ChatRoom) {
		r.Spec.Streamer.Autoscaling.ScaleUp.MaxPods = ptr(int32(10))
		r.Spec.Streamer.Autoscaling.ScaleDown.StabilizationWindow = &metav1.Duration{Duration: 2 * time.Minute}
	})
	f.syncPods()
	f.spread(700)
	if ev := f.evaluate(); ev.to != 8 {
		t.Fatalf("700 connections: %d → %d", ev.from, ev.to)
	}
	f.syncPods()
	drop := f.clock.Now()
	step := func() evaluation {
		f.clock.Step(2 * time.Second)
		f.syncPods()
		f.spread(120)
		return f.evaluate()
	}
	for f.clock.Now().Sub(drop) < time.Minute {
		if ev := step(); ev.to != 8 {
			t.Fatalf("shrank %s after the drop, inside the window", f.clock.Now().Sub(drop))
		}
	}
	// A new operator process (a new leader): nothing in memory, the same status.
	f.a.redis.closeAll()
	f.a = f.newAutoscaler(k8s)
	var down time.Time
	for down.IsZero() {
		ev := step()
		if ev.to < ev.from {
			down = f.clock.Now()
		}
		if f.clock.Now().Sub(drop) > 3*time.Minute {
			t.Fatal("no scale-down 3 minutes after the drop")
		}
	}
	// Had the new leader forgotten the window, it would have started one
	// of its own at its first look (1 min after the drop) and waited 2 more.
	if d := down.Sub(drop); d < 2*time.Minute || d > 2*time.Minute+12*time.Second {
		t.Fatalf("the new leader scaled down %s after the drop; want the old leader's 2m window", d)
	}
	// And another one right after the scale-down: the rate limit (one pod
	// per 15 s) comes from the status too; so does the window, which it must
	// not restart either.
	f.a.redis.closeAll()
	f.a = f.newAutoscaler(k8s)
	for {
		ev := step()
		since := f.clock.Now().Sub(down)
		if ev.to < ev.from {
			if since < 15*time.Second {
				t.Fatalf("a second scale-down %s after the first: the rate limit was forgotten", since)
			}
			break
		}
		if since > 20*time.Second {
			t.Fatalf("no second scale-down %s after the first: the window restarted", since)
		}
	}
}

// TestAutoscalerRunsInTheManager runs the autoscaler as the operator does:
// in a manager (its own, caching one namespace), with the wall clock, its
// requeue loop, the cached pods, the Redis Secret read by name and the
// events API, as the operator's ClusterRole allows (asOperator).
// The ChatRoom reconciler (suite_test.go) runs too: its drift correction
// must never undo the autoscaler's replicas, and its streamers column must
// follow them.
func TestAutoscalerRunsInTheManager(t *testing.T) {
	f := newFleet(t, testenv.RedisURL(), func(r *chatrv1.ChatRoom) {
		r.Spec.Streamer.Autoscaling.EvaluationInterval = &metav1.Duration{Duration: time.Second}
	})
	f.syncPods()
	f.spread(100)

	ctx, cancel := context.WithCancel(context.Background())
	opts := CacheOptions()
	opts.DefaultNamespaces = map[string]cache.Config{f.room.Namespace: {}}
	mgr, err := ctrl.NewManager(asOperator(restCfg), ctrl.Options{Scheme: testScheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: opts})
	must(err)
	a := &StreamerAutoscaler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder(chatrv1.ManagerName)}
	must(a.SetupWithManager(mgr))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
		if len(a.redis.clients) != 0 {
			t.Errorf("%d Redis clients left open after the manager stopped", len(a.redis.clients))
		}
	}()

	wantActive := func() error {
		room := f.current()
		c := condition(room, chatrv1.ConditionScalingActive)
		if c == nil || c.Status != metav1.ConditionTrue || room.Status.Connections == nil {
			return fmt.Errorf("ScalingActive %+v", c)
		}
		return nil
	}
	testenv.Eventually(t, 20*time.Second, "the autoscaler reads the counts", wantActive)
	f.spread(600)
	testenv.Eventually(t, 20*time.Second, "the surge scales the fleet up", func() error {
		if n := f.replicas(); n != 6 {
			return fmt.Errorf("replicas %d", n)
		}
		return nil
	})
	// The new pods come up and share the load: 500 is what 5 pods + 1
	// spare carry, so the size holds from now on.
	f.syncPods()
	f.spread(500)
	testenv.Eventually(t, 20*time.Second, "a ScaledUp event in the API", func() error {
		evs := roomEvents(t, f.room)[eventScaledUp]
		if len(evs) == 0 {
			return errors.New("none")
		}
		if !strings.Contains(evs[0].Note, "streamers 2 → 6") || evs[0].Type != corev1.EventTypeNormal {
			return fmt.Errorf("event %s %q", evs[0].Type, evs[0].Note)
		}
		return nil
	})
	// The ChatRoom reconciler shows the new size and leaves it alone, even
	// when a spec change makes it patch the streamer Deployment.
	testenv.Eventually(t, 20*time.Second, "status.streamers follows", func() error {
		if s := f.current().Status.Streamers; !strings.HasSuffix(s, "/6") {
			return fmt.Errorf("streamers %q", s)
		}
		return nil
	})
	st := deployment(f.room, chatrv1.ComponentStreamer)
	must(get(st))
	hash := st.Spec.Template.Annotations[annotationConfigHash]
	updateRoom(t, f.room, func(r *chatrv1.ChatRoom) { r.Spec.Limits.StreamsPerIP = 7 })
	testenv.Eventually(t, 20*time.Second, "the streamer Deployment rolls for the spec change", func() error {
		must(get(st))
		if st.Spec.Template.Annotations[annotationConfigHash] == hash {
			return errors.New("not yet")
		}
		return nil
	})
	testenv.Consistently(t, 2*time.Second, "the replicas stay the autoscaler's", func() error {
		if n := f.replicas(); n != 6 {
			return fmt.Errorf("replicas %d, want 6", n)
		}
		return nil
	})
}

// TestAutoscalerWaitsForACacheThatMissedItsScale: the manager's cache can
// still hold the Deployment as it was before the autoscaler's own scale.
// Deciding from it would take the old size for the current one; the
// evaluation waits instead, and decides once the cache has caught up.
func TestAutoscalerWaitsForACacheThatMissedItsScale(t *testing.T) {
	f := newFleet(t, testenv.RedisURL(), nil)
	f.syncPods()
	before := deployment(f.room, chatrv1.ComponentStreamer)
	must(get(before))
	var stale atomic.Bool
	c, err := client.NewWithWatch(restCfg, client.Options{Scheme: testScheme})
	must(err)
	f.a = f.newAutoscaler(interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if d, ok := obj.(*appsv1.Deployment); ok && stale.Load() {
				before.DeepCopyInto(d)
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
	}))
	f.spread(600)
	if ev := f.evaluate(); ev.to != 6 {
		t.Fatalf("surge: %d → %d", ev.from, ev.to)
	}
	// The ChatRoom reconciler running beside this test may write the room's
	// status too; what only the autoscaler writes is its own state.
	state := f.current().Status.Autoscaler.DeepCopy()
	stale.Store(true)
	f.clock.Step(2 * time.Second)
	if ev := f.evaluate(); !ev.stale || ev.statusWritten || ev.to != ev.from {
		t.Fatalf("from a stale Deployment: stale %v, status written %v, %d → %d", ev.stale, ev.statusWritten, ev.from, ev.to)
	}
	if got := f.current().Status.Autoscaler; !reflect.DeepEqual(got, state) {
		t.Errorf("the autoscaler's state was written from a stale Deployment:\n got %+v\nwant %+v", got, state)
	}
	stale.Store(false)
	if ev := f.evaluate(); ev.stale || ev.from != 6 {
		t.Fatalf("the cache caught up: stale %v, from %d", ev.stale, ev.from)
	}
	// A recreated Deployment (another UID) is not mistaken for a stale one.
	f.a.scaled.Store(client.ObjectKeyFromObject(f.room), scaledDeployment{uid: "someone-else", generation: 1 << 40})
	if ev := f.evaluate(); ev.stale {
		t.Fatal("a recreated Deployment was taken for a stale copy")
	}
}
