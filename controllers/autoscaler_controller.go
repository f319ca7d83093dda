package controllers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/autoscale"
	"github.com/chatr-ai/chatr/internal/connreport"
)

// Events the autoscaler emits on the room.
const (
	eventScaledUp    = "ScaledUp"
	eventScaledDown  = "ScaledDown"
	eventActionScale = "Scale"
)

// failureRetryMax is the longest a room waits for its next evaluation after
// a failed one.
const failureRetryMax = 30 * time.Second

// cacheLagRetry is how soon an evaluation that found the cache behind the
// autoscaler's own last scale runs again.
const cacheLagRetry = 200 * time.Millisecond

// countsReadTimeout bounds one read of the connection counts, so an
// unreachable Redis holds one room's evaluation for at most this long.
const countsReadTimeout = 1500 * time.Millisecond

// Clock is the autoscaler's only source of time: the stabilization windows,
// the rate limits and lastScaleTime all follow it, so tests drive them with
// a fake clock. k8s.io/utils/clock.PassiveClock satisfies it.
type Clock interface {
	Now() time.Time
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// StreamerAutoscaler sizes each room's streamer Deployment from the live
// connection counts the streamer pods report to Redis (internal/connreport),
// with the algorithm of internal/autoscale. It is a reconciler of its own
// (one controller per concern) and the only writer of the streamer
// Deployment's spec.replicas; the ChatRoom reconciler sets them only when it
// creates the Deployment. It evaluates every room every
// spec.streamer.autoscaling.evaluationInterval, and keeps the algorithm's
// memory in the room's status (status.autoscaler), so a new leader goes on
// where the old one stopped.
type StreamerAutoscaler struct {
	// Client reads rooms, Deployments and Pods from the manager's cache, and
	// patches room status, Deployments and Pods.
	Client client.Client
	// APIReader gets the room's Redis Secret from the API server (the
	// operator may get Secrets, not list or watch them), at most every
	// SecretResync while the counts can be read with the URL it holds.
	APIReader client.Reader
	// SecretResync overrides defaultSecretResync: how old the Redis URL read
	// from a room's Secret may be before the Secret is read again.
	SecretResync time.Duration
	// Recorder emits ScaledUp/ScaledDown, and a Warning when the counts
	// cannot be read.
	Recorder events.EventRecorder
	// Clock is the time source; nil means the wall clock.
	Clock Clock
	// MaxConcurrentReconciles bounds how many rooms are evaluated at once.
	MaxConcurrentReconciles int

	redis redisClients
	// applied holds, per room, the state (and the room's UID) as the last
	// status write of this autoscaler left it. A cached room that holds
	// another state predates that write: deciding from it would forget the
	// recommendations and scale events written since (a rate limit could be
	// spent twice), so the room is read from the API server instead.
	applied sync.Map // types.NamespacedName → appliedState
	// scaled holds, per room, the streamer Deployment (UID and generation)
	// as the last replicas patch left it. The same Deployment cached with an
	// older generation predates the patch: deciding from it would take the
	// old size for the current one, so the evaluation waits for the cache.
	scaled sync.Map // types.NamespacedName → scaledDeployment
	// posts holds, per room, the recent samples of its posts counter
	// (autoscaler_posts.go).
	posts sync.Map // types.NamespacedName → *postRate
}

// RBAC, least privilege: rooms are read and their status patched (the
// ChatRoom reconciler's markers grant the same); streamer Deployments are
// read and patched (spec.replicas only); Pods are read and patched (the
// pod-deletion-cost annotation only); the Redis Secret is read by name (get
// only) for the Redis URL; events are written.
//
// +kubebuilder:rbac:groups=chatr.ai,resources=chatrooms,verbs=get;list;watch
// +kubebuilder:rbac:groups=chatr.ai,resources=chatrooms/status,verbs=get;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile evaluates one room and asks to be called again after the room's
// evaluation interval.
func (a *StreamerAutoscaler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ev, err := a.evaluate(ctx, req.NamespacedName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if ev.from != ev.to {
		log.FromContext(ctx).Info("scaled the streamers", "from", ev.from, "to", ev.to,
			"connections", ev.result.Connections, "limited", ev.result.ScalingLimited.Reason)
	}
	switch {
	case ev.gone:
		return ctrl.Result{}, nil
	case ev.stale:
		// The cache has not seen our last scale yet: nothing was decided;
		// decide again shortly.
		return ctrl.Result{RequeueAfter: cacheLagRetry}, nil
	}
	return ctrl.Result{RequeueAfter: ev.interval}, nil
}

// evaluation is what one evaluation did, for Reconcile and the tests.
type evaluation struct {
	// gone: the room no longer exists (or is being deleted).
	gone bool
	// interval: when to evaluate again.
	interval time.Duration
	// skipped says why nothing was decided (no streamer Deployment yet).
	skipped string
	// stale: the cached Deployment predates the last scale; nothing was decided.
	stale bool
	// statusWritten: the status was patched.
	statusWritten bool
	// from, to: the Deployment's replicas before and after.
	from, to int32
	// result is the algorithm's decision.
	result autoscale.Result
}

// evaluate is one evaluation of a room, as a short list of steps: get the
// room (from the API server if the cache missed our last status write) →
// get its streamer Deployment → list its pods → read their counts → decide →
// write the status (the commit point) → mark the pods to remove first →
// write the replicas → tell.
//
// The status is written first: the state it holds records the decision (the
// scale event counts against the rate limit), so if the replicas cannot be
// written afterwards, the next evaluation is more cautious, never less. It
// is a server-side apply of the autoscaler's own fields only, so the
// ChatRoom reconciler's writes never conflict with it, and the next
// evaluation decides from the state it wrote (see applied), never an older
// one. Leader election keeps a second operator from evaluating at the same
// time.
func (a *StreamerAutoscaler) evaluate(ctx context.Context, key types.NamespacedName) (evaluation, error) {
	ev := evaluation{interval: autoscale.DefaultInterval}
	room, err := a.getRoom(ctx, key)
	if err == nil && room != nil {
		room, err = a.freshRoom(ctx, room)
	}
	if err != nil {
		return ev, err
	}
	if room == nil || !room.DeletionTimestamp.IsZero() {
		a.redis.release(key)
		a.scaled.Delete(key)
		a.applied.Delete(key)
		a.posts.Delete(key)
		forgetAutoscaler(key.Namespace, key.Name)
		ev.gone = true
		return ev, nil
	}
	desired := room.DeepCopy()
	desired.SetDefaults()
	spec := desired.Spec.Streamer.Autoscaling
	ev.interval = spec.Interval()

	dep, err := a.getStreamerDeployment(ctx, room)
	if err != nil {
		return ev, err
	}
	if dep == nil {
		ev.skipped = "no streamer Deployment of this room"
		return ev, nil
	}
	if last, ok := a.scaled.Load(key); ok && last.(scaledDeployment).newerThan(dep) {
		ev.stale = true
		return ev, nil
	}
	pods, err := a.listStreamerPods(ctx, room)
	if err != nil {
		return ev, err
	}
	counts, countsErr := a.readCounts(ctx, desired, pods)

	policy := spec.Policy()
	in := autoscale.Input{
		Replicas:  replicasOf(dep),
		Pods:      autoscalePods(pods, counts),
		CountsErr: countsErr,
		State:     stateOf(room),
		Now:       a.now(),
	}
	res := autoscale.Decide(policy, in)
	ev.result, ev.from, ev.to = res, in.Replicas, in.Replicas
	ObserveAutoscaler(room.Namespace, room.Name, res.Replicas, res.ScalingLimited.Status, res.ScalingLimited.Reason)

	status := autoscalerStatus(room, in, res)
	// The same Redis carries the room's posts counter and its pods'
	// summaries; when the counts could not be read, neither is tried (the
	// Secret is read again at the next evaluation, see readCounts).
	if countsErr == nil {
		if rate := a.measurePosts(ctx, desired); rate != "" {
			status.PostsPerSecond = rate
		}
		a.relayRoomEvents(ctx, room, desired)
	}
	if autoscalerStatusChanged(&room.Status, status) {
		if err := a.writeStatus(ctx, room, status); err != nil {
			return ev, err
		}
		ev.statusWritten = true
		a.recordHold(room, status)
	}

	if res.Replicas < in.Replicas {
		if err := a.applyDeletionCosts(ctx, pods, autoscale.DeletionCosts(policy, in.Pods)); err != nil {
			return ev, err
		}
	}
	if res.Replicas != in.Replicas {
		gen, err := a.scaleDeployment(ctx, dep, res.Replicas)
		if err != nil {
			return ev, err
		}
		a.scaled.Store(key, scaledDeployment{uid: dep.UID, generation: gen})
		ev.to = res.Replicas
		a.recordScale(room, in.Replicas, res)
	}
	return ev, nil
}

// now returns the autoscaler's clock's time.
func (a *StreamerAutoscaler) now() time.Time {
	if a.Clock == nil {
		return time.Now()
	}
	return a.Clock.Now()
}

// getRoom returns the room, or nil when it is gone.
func (a *StreamerAutoscaler) getRoom(ctx context.Context, key types.NamespacedName) (*chatrv1.ChatRoom, error) {
	var room chatrv1.ChatRoom
	if err := a.Client.Get(ctx, key, &room); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("while getting chatroom %s: %w", key, err)
	}
	return &room, nil
}

// getStreamerDeployment returns the room's streamer Deployment, or nil when
// it does not exist yet, is being deleted, or is not the room's (the
// ChatRoom reconciler refuses to adopt it, and the autoscaler must not
// resize someone else's Deployment either).
func (a *StreamerAutoscaler) getStreamerDeployment(ctx context.Context, room *chatrv1.ChatRoom) (*appsv1.Deployment, error) {
	var dep appsv1.Deployment
	key := types.NamespacedName{Namespace: room.Namespace, Name: room.ComponentName(chatrv1.ComponentStreamer)}
	if err := a.Client.Get(ctx, key, &dep); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("while getting streamer deployment %s: %w", key, err)
	}
	if !dep.DeletionTimestamp.IsZero() || !metav1IsControlledBy(&dep, room) {
		return nil, nil
	}
	return &dep, nil
}

// listStreamerPods returns the room's streamer pods (by the selector labels
// the ChatRoom reconciler puts on the pod template), without those that have
// finished (Succeeded or Failed): they are no part of the fleet.
func (a *StreamerAutoscaler) listStreamerPods(ctx context.Context, room *chatrv1.ChatRoom) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := a.Client.List(ctx, &list, client.InNamespace(room.Namespace),
		client.MatchingLabels(room.SelectorLabels(chatrv1.ComponentStreamer))); err != nil {
		return nil, fmt.Errorf("while listing the streamer pods of %s/%s: %w", room.Namespace, room.Name, err)
	}
	pods := make([]corev1.Pod, 0, len(list.Items))
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		pods = append(pods, p)
	}
	return pods, nil
}

// readCounts reads the counts of the pods that are not terminating with one
// MGET on the room's Redis. An error means the counts could not be read at
// all (no Secret, no URL, Redis down): Decide then holds the size.
func (a *StreamerAutoscaler) readCounts(ctx context.Context, room *chatrv1.ChatRoom, pods []corev1.Pod) (map[string]int64, error) {
	var names []string
	for _, p := range pods {
		if p.DeletionTimestamp.IsZero() {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		// Nothing to ask; Decide reports NoReadyPods.
		return nil, nil
	}
	maxAge := a.SecretResync
	if maxAge <= 0 {
		maxAge = defaultSecretResync
	}
	rdb, err := a.redis.forRoom(ctx, a.APIReader, room, a.now(), maxAge)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, countsReadTimeout)
	defer cancel()
	counts, err := connreport.Read(rctx, rdb, room.PostgresSchema(), names)
	if err != nil {
		a.redis.forget(room)
	}
	return counts, err
}

// writeStatus writes the autoscaler's part of the status
// (autoscalerStatusPart) with server-side apply as chatr-autoscaler, and
// remembers the state it wrote (applied). The ChatRoom reconciler's fields
// and conditions are not sent, so they stay as they are, however old room is.
func (a *StreamerAutoscaler) writeStatus(ctx context.Context, room *chatrv1.ChatRoom, status *chatrv1.ChatRoomStatus) error {
	if err := autoscalerStatusPart.apply(ctx, a.Client, room, status); err != nil {
		return err
	}
	a.applied.Store(client.ObjectKeyFromObject(room), appliedState{uid: room.UID, state: status.Autoscaler.DeepCopy()})
	return nil
}

// appliedState is the autoscaler's state as its last status write left it.
type appliedState struct {
	uid   types.UID
	state *chatrv1.AutoscalerState
}

// freshRoom returns room when it holds the state of the autoscaler's last
// status write (or there was none), and otherwise the room as the API
// server holds it (nil if it is gone): the cache has not seen that write
// yet. What the API server holds is then the state to go on from, whoever
// wrote it, so it is remembered in place of the written one.
func (a *StreamerAutoscaler) freshRoom(ctx context.Context, room *chatrv1.ChatRoom) (*chatrv1.ChatRoom, error) {
	key := client.ObjectKeyFromObject(room)
	v, ok := a.applied.Load(key)
	if !ok {
		return room, nil
	}
	last := v.(appliedState)
	if last.uid != room.UID {
		// Another room of the same name: nothing of ours was written to it.
		a.applied.Delete(key)
		return room, nil
	}
	if equalState(last.state, room.Status.Autoscaler) {
		return room, nil
	}
	var live chatrv1.ChatRoom
	if err := a.APIReader.Get(ctx, key, &live); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("while getting chatroom %s: %w", key, err)
	}
	if live.UID == last.uid {
		a.applied.Store(key, appliedState{uid: live.UID, state: live.Status.Autoscaler.DeepCopy()})
	} else {
		a.applied.Delete(key)
	}
	return &live, nil
}

// applyDeletionCosts writes controller.kubernetes.io/pod-deletion-cost on
// every pod whose value differs, so that the ReplicaSet removes the
// least-connected pods first when the replicas go down next. A pod that
// vanished meanwhile needs no cost.
func (a *StreamerAutoscaler) applyDeletionCosts(ctx context.Context, pods []corev1.Pod, costs map[string]int32) error {
	var errs []error
	for i := range pods {
		p := &pods[i]
		cost, ok := costs[p.Name]
		if !ok {
			continue // terminating
		}
		want := strconv.Itoa(int(cost))
		if p.Annotations[autoscale.DeletionCostAnnotation] == want {
			continue
		}
		patched := p.DeepCopy()
		setAnnotation(patched, autoscale.DeletionCostAnnotation, want)
		if err := a.Client.Patch(ctx, patched, client.MergeFrom(p)); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("while setting the deletion cost of pod %s/%s: %w", p.Namespace, p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// scaleDeployment patches the Deployment's spec.replicas, and nothing else,
// and returns the generation the patch gave it.
func (a *StreamerAutoscaler) scaleDeployment(ctx context.Context, dep *appsv1.Deployment, replicas int32) (int64, error) {
	patched := dep.DeepCopy()
	patched.Spec.Replicas = &replicas
	if err := a.Client.Patch(ctx, patched, client.MergeFrom(dep)); err != nil {
		return 0, fmt.Errorf("while scaling deployment %s/%s to %d: %w", dep.Namespace, dep.Name, replicas, err)
	}
	return patched.Generation, nil
}

// recordScale emits ScaledUp or ScaledDown: from → to, the connections, and
// what chose the size.
func (a *StreamerAutoscaler) recordScale(room *chatrv1.ChatRoom, from int32, res autoscale.Result) {
	reason := eventScaledUp
	if res.Replicas < from {
		reason = eventScaledDown
	}
	why := res.ScalingActive.Message
	if res.ScalingLimited.Status {
		why = res.ScalingLimited.Message
	}
	a.Recorder.Eventf(room, nil, corev1.EventTypeNormal, reason, eventActionScale,
		"streamers %d → %d, %d connections: %s", from, res.Replicas, res.Connections, why)
}

// recordHold emits a Warning when the room's ScalingActive turned False
// because the counts cannot be read or the policy is invalid, once per new
// reason: the condition carries the state, the event tells a human that it
// changed (an outage does not emit one event per evaluation).
func (a *StreamerAutoscaler) recordHold(room *chatrv1.ChatRoom, status *chatrv1.ChatRoomStatus) {
	now := meta.FindStatusCondition(status.Conditions, chatrv1.ConditionScalingActive)
	if now == nil || (now.Reason != autoscale.ReasonFailedGetCounts && now.Reason != autoscale.ReasonInvalidPolicy) {
		return
	}
	before := meta.FindStatusCondition(room.Status.Conditions, chatrv1.ConditionScalingActive)
	if before != nil && before.Reason == now.Reason {
		return
	}
	a.Recorder.Eventf(room, nil, corev1.EventTypeWarning, now.Reason, eventActionScale, "%s", now.Message)
}

// scaledDeployment is a streamer Deployment as a replicas patch left it.
type scaledDeployment struct {
	uid        types.UID
	generation int64
}

// newerThan reports whether d is an older copy of the same Deployment (a
// recreated one has another UID and starts over at generation 1).
func (s scaledDeployment) newerThan(d *appsv1.Deployment) bool {
	return d.UID == s.uid && d.Generation < s.generation
}

// replicasOf returns the Deployment's spec.replicas (1 when unset, the API
// server's default).
func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// stateOf returns the autoscaler's state from the room's status (zero for a
// room never evaluated).
func stateOf(room *chatrv1.ChatRoom) autoscale.State {
	return stateFromStatus(room.Status.Autoscaler)
}

// SetupWithManager registers the autoscaler. It watches rooms for spec
// changes only (its own status writes must not wake it) and otherwise
// evaluates each room every evaluation interval through RequeueAfter;
// the manager's start lists every room, which starts the loop for each.
// The Redis clients are closed when the manager stops.
func (a *StreamerAutoscaler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		a.redis.closeAll()
		return nil
	})); err != nil {
		return fmt.Errorf("while adding the autoscaler's Redis cleanup: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("streamerautoscaler").
		For(&chatrv1.ChatRoom{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(1, a.MaxConcurrentReconciles),
			// A failed evaluation (the API server refused a write) is retried
			// with backoff, but never later than failureRetryMax: the default
			// backoff grows to minutes, and every room must be evaluated again soon.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, failureRetryMax),
		}).
		Complete(a)
}
