// Package controllers holds the operator's reconcilers. The ChatRoom
// reconciler (this file) keeps every object of a room in line with its spec;
// the pure functions that build those objects live in build_*.go.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// defaultSecretResync is how often a room's Secrets are read again to notice
// a change (the operator may not watch Secrets: see SetupWithManager).
const defaultSecretResync = 30 * time.Second

// missingSecretRetry is how soon a room waiting for a missing Secret looks
// again (at most SecretResync), so a room whose Secret is created after it
// starts within seconds.
const missingSecretRetry = 5 * time.Second

// defaultConflictRetry is how soon a room with a problem the operator
// cannot watch (an object it does not own, which it does not cache) is
// looked at again.
const defaultConflictRetry = time.Minute

// ChatRoomReconciler creates and keeps in line every object of a ChatRoom.
// It never changes the streamer Deployment's replicas after creating it: the
// streamer autoscaler, a reconciler of its own, owns that field.
type ChatRoomReconciler struct {
	// Client reads from the manager's cache (children are cached by the
	// managed-by label, see CacheOptions) and writes to the API server.
	Client client.Client
	// APIReader reads from the API server directly. Secrets are read through
	// it, so their data never sits in the operator's cache.
	APIReader client.Reader
	// Recorder emits the few events a human acts on.
	Recorder recorder.EventRecorder
	// Monitoring tells whether the cluster serves PodMonitors (nil: it
	// does not); SetupWithManager sets it.
	Monitoring *monitoringAPI
	// MaxConcurrentReconciles bounds how many rooms reconcile at once.
	MaxConcurrentReconciles int
	// ConflictRetry overrides defaultConflictRetry (tests shorten it).
	ConflictRetry time.Duration
	// SecretResync overrides defaultSecretResync: every room is reconciled
	// again this often, which reads its Secrets and rolls the pods whose
	// Secret keys changed.
	SecretResync time.Duration
}

// RBAC, least privilege: the reconciler creates and patches its children
// (never updates them whole), deletes only an Ingress dropped from the spec,
// gets the Secrets rooms name (get only: no list or watch, so it cannot
// enumerate or stream the cluster's Secrets), and patches room status.
// "update" on chatrooms/finalizers is what setting blockOwnerDeletion on a
// child's owner reference requires.
//
// +kubebuilder:rbac:groups=chatr.ai,resources=chatrooms,verbs=get;list;watch
// +kubebuilder:rbac:groups=chatr.ai,resources=chatrooms/status,verbs=get;patch
// +kubebuilder:rbac:groups=chatr.ai,resources=chatrooms/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=services;configmaps;serviceaccounts,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=podmonitors,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile brings one room in line. Each step is a small function:
// get the room → wait for its Secrets → read every child once → refuse to
// adopt what it does not own → bring each child in line → compute the status
// once, from the children as they now are, and write it only if it changed.
//
// The status comes after the children (CloudNativePG computes it before)
// so that it describes the Deployments this reconcile left behind: a spec
// change shows as Progressing at once, not one reconcile later.
func (r *ChatRoomReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	room, err := r.getChatRoom(ctx, req.NamespacedName)
	if err != nil || room == nil || !room.DeletionTimestamp.IsZero() {
		// Deletion needs nothing from us: owner references let the garbage
		// collector remove the children.
		return ctrl.Result{}, err
	}
	desired := room.DeepCopy()
	desired.SetDefaults()

	hashes, problems, err := r.waitForSecrets(ctx, desired)
	if err != nil {
		return ctrl.Result{}, err
	}
	slots := planChildren(desired, hashes, len(problems) == 0)
	mon := r.planMonitoring()
	if mon.available {
		mon.slot = podMonitorSlot(desired, buildPodMonitor(desired))
		slots = append(slots, mon.slot)
	}
	if err := r.readChildren(ctx, room, slots); err != nil {
		return ctrl.Result{}, err
	}
	problems = append(problems, refuseToAdopt(room, slots)...)
	syncProblems, syncErr := r.syncChildren(ctx, room, slots)
	problems = append(problems, syncProblems...)

	status := computeStatus(room, statusInput{desired: desired, deps: deploymentsOf(room, slots), problems: problems, monitoring: mon})
	if err := r.updateStatus(ctx, room, status); err != nil {
		return ctrl.Result{}, errors.Join(syncErr, err)
	}
	// After the write, so a failed write does not emit the same event twice.
	r.recordProblems(room, status)
	if syncErr != nil {
		return ctrl.Result{}, syncErr
	}
	return ctrl.Result{RequeueAfter: r.nextLook(problems)}, nil
}

// nextLook is when the room is reconciled again without an event: Secrets
// are not watched, so every room comes back every SecretResync to read them;
// sooner while a Secret is missing or a child's name is taken.
func (r *ChatRoomReconciler) nextLook(problems []problem) time.Duration {
	next := r.SecretResync
	if next <= 0 {
		next = defaultSecretResync
	}
	if hasReason(problems, chatrv1.ReasonSecretNotFound) || hasReason(problems, chatrv1.ReasonSecretKeyNotFound) {
		next = min(next, missingSecretRetry)
	}
	if hasReason(problems, chatrv1.ReasonNotOwned) {
		retry := r.ConflictRetry
		if retry <= 0 {
			retry = defaultConflictRetry
		}
		next = min(next, retry)
	}
	return next
}

// getChatRoom returns the room, or nil when it is gone (not an error: its
// deletion is what brought us here).
func (r *ChatRoomReconciler) getChatRoom(ctx context.Context, key types.NamespacedName) (*chatrv1.ChatRoom, error) {
	var room chatrv1.ChatRoom
	if err := r.Client.Get(ctx, key, &room); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("while getting chatroom %s: %w", key, err)
	}
	return &room, nil
}

// problem is something a human must fix; it makes the room Degraded.
type problem struct {
	reason, message string
}

// hasReason reports whether any problem has that reason.
func hasReason(ps []problem, reason string) bool {
	return slices.ContainsFunc(ps, func(p problem) bool { return p.reason == reason })
}

// waitForSecrets reads every Secret key the room uses and returns, per
// component, the hash of the keys its pods read. A missing Secret or key is
// a problem, not an error: the Deployments wait (the room is looked at again
// soon, see nextLook), while the rest of the room is built. Each Secret is
// one GET from the API server (the APIReader), never a cached or watched
// copy: the operator's RBAC grants only get on Secrets.
func (r *ChatRoomReconciler) waitForSecrets(ctx context.Context, room *chatrv1.ChatRoom) (map[chatrv1.Component]string, []problem, error) {
	type entry struct{ Name, Key, Value string }
	perComponent := map[chatrv1.Component][]entry{}
	var problems []problem
	cached := map[string]*corev1.Secret{}
	for _, ref := range room.SecretRefs() {
		sec, ok := cached[ref.Name]
		if !ok {
			sec = &corev1.Secret{}
			err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: room.Namespace, Name: ref.Name}, sec)
			switch {
			case apierrors.IsNotFound(err):
				sec = nil
			case err != nil:
				return nil, nil, fmt.Errorf("while getting secret %s/%s: %w", room.Namespace, ref.Name, err)
			}
			cached[ref.Name] = sec
		}
		if sec == nil {
			problems = append(problems, problem{chatrv1.ReasonSecretNotFound,
				fmt.Sprintf("Secret %q not found: the Deployments wait for it", ref.Name)})
			continue
		}
		v, ok := sec.Data[ref.Key]
		if !ok {
			problems = append(problems, problem{chatrv1.ReasonSecretKeyNotFound,
				fmt.Sprintf("Secret %q has no key %q: the Deployments wait for it", ref.Name, ref.Key)})
			continue
		}
		for _, c := range ref.Components {
			perComponent[c] = append(perComponent[c], entry{ref.Name, ref.Key, string(v)})
		}
	}
	hashes := map[chatrv1.Component]string{}
	for _, c := range chatrv1.Components {
		hashes[c] = hashOf(perComponent[c])
	}
	return hashes, dedupe(problems), nil
}

// dedupe drops repeated problems (two refs to one missing Secret), keeping order.
func dedupe(ps []problem) []problem {
	var out []problem
	for _, p := range ps {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// readChildren reads every planned child once, from the cache. A child that
// the cache does not hold may still exist without the operator's labels;
// syncChild finds that out when it tries to create it.
func (r *ChatRoomReconciler) readChildren(ctx context.Context, room *chatrv1.ChatRoom, slots []*slot) error {
	for _, s := range slots {
		obj := s.newObj()
		key := types.NamespacedName{Namespace: room.Namespace, Name: s.name}
		if err := r.Client.Get(ctx, key, obj); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("while getting %s %s: %w", s.kind, key, err)
		}
		s.live = obj
	}
	return nil
}

// refuseToAdopt marks every child that exists but is not controlled by this
// room: the operator never takes over an object someone else made, since
// patching it could break whatever relies on it.
func refuseToAdopt(room *chatrv1.ChatRoom, slots []*slot) []problem {
	var problems []problem
	for _, s := range slots {
		if s.desired == nil {
			// Not wanted (or only read): not ours to judge.
			continue
		}
		if s.live != nil && !metav1IsControlledBy(s.live, room) {
			s.notOwned = true
			problems = append(problems, notOwnedProblem(s))
		}
	}
	return problems
}

func notOwnedProblem(s *slot) problem {
	return problem{chatrv1.ReasonNotOwned, fmt.Sprintf(
		"%s %q exists and is not owned by this ChatRoom: the operator leaves it alone; delete or rename it", s.kind, s.name)}
}

// syncChildren brings each child in line and reports, in one event each,
// what it created and what it patched. It goes on past a failing child, so
// one bad object does not hold the others back, and returns the errors joined.
func (r *ChatRoomReconciler) syncChildren(ctx context.Context, room *chatrv1.ChatRoom, slots []*slot) ([]problem, error) {
	var problems []problem
	var errs []error
	var created, updated, deleted []string
	for _, s := range slots {
		if s.notOwned {
			continue
		}
		out, err := r.syncChild(ctx, room, s)
		if err != nil {
			errs = append(errs, err)
			problems = append(problems, problem{chatrv1.ReasonReconcileError, err.Error()})
			continue
		}
		switch out {
		case outcomeCreated:
			created = append(created, s.kind+" "+s.name)
		case outcomeUpdated:
			updated = append(updated, s.kind+" "+s.name)
		case outcomeDeleted:
			deleted = append(deleted, s.kind+" "+s.name)
		case outcomeNotOwned:
			problems = append(problems, notOwnedProblem(s))
		}
	}
	if len(created) > 0 {
		r.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "Created", "Reconcile", "created %s", strings.Join(created, ", "))
	}
	if len(updated) > 0 {
		r.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "Updated", "Reconcile", "updated %s to match the spec and Secrets", strings.Join(updated, ", "))
	}
	if len(deleted) > 0 {
		r.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "Deleted", "Reconcile", "deleted %s, no longer in the spec", strings.Join(deleted, ", "))
	}
	return problems, errors.Join(errs...)
}

type outcome int

const (
	outcomeUnchanged outcome = iota
	outcomeCreated
	outcomeUpdated
	outcomeDeleted
	outcomeNotOwned
)

// syncChild creates the child when it is missing, patches it when the
// desired spec hash changed or the live object drifted from what the
// operator sets, deletes it when it should no longer exist, and otherwise
// leaves it alone (no write at all).
func (r *ChatRoomReconciler) syncChild(ctx context.Context, room *chatrv1.ChatRoom, s *slot) (outcome, error) {
	if s.desired == nil {
		if s.live == nil || s.readOnly {
			return outcomeUnchanged, nil
		}
		if !metav1IsControlledBy(s.live, room) {
			return outcomeUnchanged, nil
		}
		if err := r.Client.Delete(ctx, s.live); err != nil && !apierrors.IsNotFound(err) {
			return outcomeUnchanged, fmt.Errorf("while deleting %s %s: %w", s.kind, s.name, err)
		}
		s.live = nil
		return outcomeDeleted, nil
	}
	setAnnotation(s.desired, annotationSpecHash, hashOf(s.hashInput))
	setAnnotation(s.desired, annotationManagedAnnotations, managedAnnotationKeys(s.desired))

	if s.live == nil {
		obj := s.desired.DeepCopyObject().(client.Object)
		err := r.Client.Create(ctx, obj)
		if err == nil {
			s.live = obj
			return outcomeCreated, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return outcomeUnchanged, fmt.Errorf("while creating %s %s: %w", s.kind, s.name, err)
		}
		// It exists but the cache does not hold it: it lacks the operator's
		// labels. Ours (someone removed a label) is patched back; anyone
		// else's is left alone.
		live := s.newObj()
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), live); err != nil {
			return outcomeUnchanged, fmt.Errorf("while getting %s %s: %w", s.kind, s.name, err)
		}
		if !metav1IsControlledBy(live, room) {
			s.notOwned = true
			return outcomeNotOwned, nil
		}
		s.live = live
	}

	if s.live.GetAnnotations()[annotationSpecHash] == s.desired.GetAnnotations()[annotationSpecHash] &&
		metadataInLine(s.desired, s.live) && s.same(s.desired, s.live) {
		return outcomeUnchanged, nil
	}
	patched := s.live.DeepCopyObject().(client.Object)
	mergeMetadata(patched, s.desired)
	s.merge(patched, s.desired)
	if err := r.Client.Patch(ctx, patched, client.MergeFrom(s.live)); err != nil {
		return outcomeUnchanged, fmt.Errorf("while patching %s %s: %w", s.kind, s.name, err)
	}
	s.live = patched
	return outcomeUpdated, nil
}

// recordProblems emits a Warning event when the room turns Degraded for a
// new reason, not on every reconcile: the condition carries the state, the
// event only tells a human that something changed.
func (r *ChatRoomReconciler) recordProblems(room *chatrv1.ChatRoom, status *chatrv1.ChatRoomStatus) {
	now := meta.FindStatusCondition(status.Conditions, chatrv1.ConditionDegraded)
	if now == nil || now.Status != "True" {
		return
	}
	before := meta.FindStatusCondition(room.Status.Conditions, chatrv1.ConditionDegraded)
	if before != nil && before.Status == now.Status && before.Reason == now.Reason && before.Message == now.Message {
		return
	}
	if now.Reason == chatrv1.ReasonProgressDeadlineExceeded || now.Reason == chatrv1.ReasonReplicasUnavailable ||
		now.Reason == chatrv1.ReasonReplicaFailure {
		// Deployments emit their own events for these.
		return
	}
	r.Recorder.Eventf(room, nil, corev1.EventTypeWarning, now.Reason, "Reconcile", "%s", now.Message)
}

// updateStatus writes the reconciler's part of the status (roomStatusPart)
// when it differs from what the room holds, with server-side apply as
// chatr-operator. The apply carries only that part, so it never touches the
// streamer autoscaler's fields, however old the room it was computed from:
// there is no conflict to retry. A write from an older copy of the room is
// corrected by the reconcile that the newer copy brings.
func (r *ChatRoomReconciler) updateStatus(ctx context.Context, room *chatrv1.ChatRoom, status *chatrv1.ChatRoomStatus) error {
	same, err := roomStatusPart.equal(&room.Status, status)
	if err != nil || same {
		return err
	}
	return roomStatusPart.apply(ctx, r.Client, room, status)
}

// deploymentsOf returns the component Deployments as the sync left them.
func deploymentsOf(room *chatrv1.ChatRoom, slots []*slot) map[chatrv1.Component]*appsv1.Deployment {
	out := map[chatrv1.Component]*appsv1.Deployment{}
	for _, s := range slots {
		if s.component == "" || s.kind != "Deployment" || s.live == nil || s.notOwned || !metav1.IsControlledBy(s.live, room) {
			continue
		}
		out[s.component] = s.live.(*appsv1.Deployment)
	}
	return out
}

// SetupWithManager registers the reconciler: it watches rooms (spec changes
// only: its own status writes and the autoscaler's must not loop back) and
// the children it owns. It does not watch Secrets: a watch (even of metadata
// only) needs list and watch on every Secret of the cluster, which would let
// the operator read them all. Instead each reconcile GETs the few Secrets the
// room names, and every room is reconciled again every SecretResync, so a
// changed Secret rolls its pods within that period rather than at once.
func (r *ChatRoomReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	c, err := ctrl.NewControllerManagedBy(mgr).
		Named("chatroom").
		For(&chatrv1.ChatRoom{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&corev1.Service{}).
		Owns(&appsv1.Deployment{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&networkingv1.Ingress{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Build(r)
	if err != nil {
		return err
	}
	// PodMonitors are watched only once the cluster serves them
	// (monitoringAPI): a watch of a kind the API server does not know would
	// keep the cache from ever syncing.
	r.Monitoring = &monitoringAPI{mapper: mgr.GetRESTMapper(), watch: func() error {
		return c.Watch(source.Kind(mgr.GetCache(), &monv1.PodMonitor{},
			handler.TypedEnqueueRequestForOwner[*monv1.PodMonitor](mgr.GetScheme(), mgr.GetRESTMapper(), &chatrv1.ChatRoom{}, handler.OnlyControllerOwner())))
	}}
	if _, err := r.Monitoring.available(); err != nil {
		// Not fatal: every reconcile asks again.
		log.FromContext(ctx).Error(err, "looking for the Prometheus Operator's PodMonitor API")
	}
	return nil
}

// CacheOptions returns the manager cache settings the reconcilers rely on:
// children are cached only when they carry the operator's managed-by label,
// so the operator does not hold every ConfigMap and Deployment of the
// cluster in memory, and managed fields are dropped from cached objects.
// Pods (read by the streamer autoscaler only) are the pods of the operator's
// Deployments, which carry the label too, stripped to what it reads.
// PodMonitors cannot be listed here: a per-kind setting needs the kind to be
// served when the cache is made, and the operator must start without the
// Prometheus Operator's CRDs. Their informer, started only once the CRDs are
// found, holds every PodMonitor of the cluster: few and small.
func CacheOptions() cache.Options {
	managed := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{chatrv1.LabelManagedBy: chatrv1.ManagerName})}
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}:             managed,
			&corev1.ServiceAccount{}:        managed,
			&corev1.Service{}:               managed,
			&appsv1.Deployment{}:            managed,
			&policyv1.PodDisruptionBudget{}: managed,
			&networkingv1.NetworkPolicy{}:   managed,
			&networkingv1.Ingress{}:         managed,
			&corev1.Pod{}:                   {Label: managed.Label, Transform: stripPodForAutoscaler},
		},
	}
}
