package controllers

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// allConditionTypes are the condition types a room's status can hold.
var allConditionTypes = []string{
	chatrv1.ConditionAvailable, chatrv1.ConditionProgressing, chatrv1.ConditionDegraded,
	chatrv1.ConditionAPIAvailable, chatrv1.ConditionStreamerAvailable, chatrv1.ConditionVerifierAvailable,
	chatrv1.ConditionScalingActive, chatrv1.ConditionScalingLimited,
}

// TestStatusFieldsHaveOneOwner: every field of ChatRoomStatus and every
// condition type belongs to exactly one of the two status writers.
func TestStatusFieldsHaveOneOwner(t *testing.T) {
	parts := []statusPart{roomStatusPart, autoscalerStatusPart}
	owners := func(field string, of func(statusPart) []string) []string {
		var out []string
		for _, p := range parts {
			if slices.Contains(of(p), field) {
				out = append(out, p.manager)
			}
		}
		return out
	}
	typ := reflect.TypeFor[chatrv1.ChatRoomStatus]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name == "conditions" {
			continue
		}
		if o := owners(name, func(p statusPart) []string { return p.fields }); len(o) != 1 {
			t.Errorf("status.%s is owned by %v, want exactly one owner", name, o)
		}
	}
	for _, c := range allConditionTypes {
		if o := owners(c, func(p statusPart) []string { return p.conditions }); len(o) != 1 {
			t.Errorf("condition %s is owned by %v, want exactly one owner", c, o)
		}
	}
	if roomStatusPart.manager == autoscalerStatusPart.manager {
		t.Errorf("both writers are field manager %q", roomStatusPart.manager)
	}
}

// fullStatus returns a status with every field set.
func fullStatus() *chatrv1.ChatRoomStatus {
	st := &chatrv1.ChatRoomStatus{
		ObservedGeneration: 3,
		API:                chatrv1.ComponentStatus{Replicas: 2, ReadyReplicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2},
		Streamer:           chatrv1.ComponentStatus{Replicas: 3},
		Verifier:           chatrv1.ComponentStatus{Replicas: 1, AvailableReplicas: 1},
		Streamers:          "0/3",
		Connections:        ptr(int64(42)),
		PostsPerSecond:     "12.5",
		CurrentStreamers:   ptr(int32(3)),
		DesiredStreamers:   ptr(int32(3)),
		LastScaleTime:      &metav1.Time{Time: time.Unix(1000, 0)},
		Autoscaler:         &chatrv1.AutoscalerState{LastScaleUnixMilli: 1000_000},
		PostgresSchema:     "team_a__lobby",
		Endpoints:          chatrv1.Endpoints{URL: "https://chat.example", API: "http://lobby-api:8080"},
	}
	for _, c := range allConditionTypes {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: c, Status: metav1.ConditionTrue, Reason: "R", Message: "m",
			ObservedGeneration: 3, LastTransitionTime: metav1.Unix(1000, 0)})
	}
	return st
}

// TestStatusApplySendsOnlyTheOwnersFields: each writer's apply carries the
// room's identity and its own fields and conditions, nothing else: not the
// spec, not the other's fields, not even as zero values.
func TestStatusApplySendsOnlyTheOwnersFields(t *testing.T) {
	room := &chatrv1.ChatRoom{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "lobby", ResourceVersion: "7", UID: "u"}}
	room.Spec.Image = "ghcr.io/chatr-ai/chatr:1"
	for _, tc := range []struct {
		part       statusPart
		status     *chatrv1.ChatRoomStatus
		fields     []string
		conditions []string
	}{
		{roomStatusPart, fullStatus(), []string{"observedGeneration", "api", "streamer", "verifier", "streamers", "postgresSchema", "endpoints"},
			[]string{"Available", "Progressing", "Degraded", "APIAvailable", "StreamerAvailable", "VerifierAvailable"}},
		{autoscalerStatusPart, fullStatus(), []string{"connections", "postsPerSecond", "currentStreamers", "desiredStreamers", "lastScaleTime", "autoscaler"},
			[]string{"ScalingActive", "ScalingLimited"}},
		// Unset optional fields are left out, and an empty status holds
		// nothing of the other writer's either (its components and
		// endpoints are structs, which encoding/json never omits).
		{autoscalerStatusPart, &chatrv1.ChatRoomStatus{Connections: ptr(int64(0))}, []string{"connections"}, nil},
		{roomStatusPart, &chatrv1.ChatRoomStatus{}, []string{"api", "streamer", "verifier", "endpoints"}, nil},
	} {
		t.Run(tc.part.manager, func(t *testing.T) {
			ac, err := tc.part.applyConfiguration(room, tc.status)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(ac)
			if err != nil {
				t.Fatal(err)
			}
			var u unstructured.Unstructured
			must(u.UnmarshalJSON(b))
			if top := slices.Sorted(maps.Keys(u.Object)); !slices.Equal(top, []string{"apiVersion", "kind", "metadata", "status"}) {
				t.Errorf("top-level keys %v", top)
			}
			if u.GetAPIVersion() != "chatr.ai/v1alpha1" || u.GetKind() != "ChatRoom" {
				t.Errorf("apiVersion %q, kind %q", u.GetAPIVersion(), u.GetKind())
			}
			md, _ := u.Object["metadata"].(map[string]any)
			if !reflect.DeepEqual(md, map[string]any{"name": "lobby", "namespace": "team-a"}) {
				t.Errorf("metadata %v, want the name and namespace alone (no resourceVersion: no optimistic lock)", md)
			}
			status, _ := u.Object["status"].(map[string]any)
			want := append(slices.Clone(tc.fields), "conditions")
			slices.Sort(want)
			if got := slices.Sorted(maps.Keys(status)); !slices.Equal(got, want) {
				t.Errorf("status fields %v, want %v", got, want)
			}
			var types []string
			for _, c := range status["conditions"].([]any) {
				types = append(types, c.(map[string]any)["type"].(string))
			}
			if !slices.Equal(types, tc.conditions) {
				t.Errorf("conditions %v, want %v", types, tc.conditions)
			}
		})
	}
}

// TestStatusPartEqual: a writer compares only its own part, and the order
// of the conditions does not count.
func TestStatusPartEqual(t *testing.T) {
	for _, tc := range []struct {
		name         string
		change       func(*chatrv1.ChatRoomStatus)
		room, scaler bool // equal for roomStatusPart, for autoscalerStatusPart
	}{
		{"nothing", func(*chatrv1.ChatRoomStatus) {}, true, true},
		{"conditions reordered", func(s *chatrv1.ChatRoomStatus) { slices.Reverse(s.Conditions) }, true, true},
		{"streamers", func(s *chatrv1.ChatRoomStatus) { s.Streamers = "3/3" }, false, true},
		{"an endpoint", func(s *chatrv1.ChatRoomStatus) { s.Endpoints.URL = "" }, false, true},
		{"observed generation", func(s *chatrv1.ChatRoomStatus) { s.ObservedGeneration = 4 }, false, true},
		{"a room condition", func(s *chatrv1.ChatRoomStatus) {
			meta.FindStatusCondition(s.Conditions, chatrv1.ConditionDegraded).Message = "other"
		}, false, true},
		{"a room condition gone", func(s *chatrv1.ChatRoomStatus) {
			meta.RemoveStatusCondition(&s.Conditions, chatrv1.ConditionProgressing)
		}, false, true},
		{"connections", func(s *chatrv1.ChatRoomStatus) { s.Connections = ptr(int64(43)) }, true, false},
		{"the post rate", func(s *chatrv1.ChatRoomStatus) { s.PostsPerSecond = "3.0" }, true, false},
		{"the state", func(s *chatrv1.ChatRoomStatus) { s.Autoscaler = nil }, true, false},
		{"a scaling condition", func(s *chatrv1.ChatRoomStatus) {
			meta.FindStatusCondition(s.Conditions, chatrv1.ConditionScalingLimited).Reason = "Other"
		}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := fullStatus()
			tc.change(next)
			for _, c := range []struct {
				part statusPart
				want bool
			}{{roomStatusPart, tc.room}, {autoscalerStatusPart, tc.scaler}} {
				got, err := c.part.equal(fullStatus(), next)
				if err != nil || got != c.want {
					t.Errorf("%s: equal = %v (%v), want %v", c.part.manager, got, err, c.want)
				}
			}
		})
	}
}

// statusOwners returns, per field manager that applied the room's status,
// what it owns there: top-level status fields by name, and conditions as
// "conditions[Type]".
func statusOwners(t *testing.T, room *chatrv1.ChatRoom) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, mf := range room.ManagedFields {
		if mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]map[string]any
		if err := json.Unmarshal(mf.FieldsV1.Raw, &fields); err != nil {
			t.Fatalf("managed fields of %s: %v", mf.Manager, err)
		}
		for k, v := range fields["f:status"] {
			if k == "." {
				continue
			}
			if k != "f:conditions" {
				out[mf.Manager] = append(out[mf.Manager], strings.TrimPrefix(k, "f:"))
				continue
			}
			for item := range v.(map[string]any) {
				var key struct{ Type string }
				if item == "." || json.Unmarshal([]byte(strings.TrimPrefix(item, "k:")), &key) != nil {
					continue
				}
				out[mf.Manager] = append(out[mf.Manager], "conditions["+key.Type+"]")
			}
		}
		if mf.Subresource == "status" && len(out[mf.Manager]) > 0 && mf.Operation != metav1.ManagedFieldsOperationApply {
			t.Errorf("%s wrote the status with %s, not server-side apply", mf.Manager, mf.Operation)
		}
	}
	for m := range out {
		slices.Sort(out[m])
	}
	return out
}

// ownedBy lists a part's fields and conditions as statusOwners names them,
// without those given.
func ownedBy(p statusPart, without ...string) []string {
	var out []string
	for _, f := range p.fields {
		if !slices.Contains(without, f) {
			out = append(out, f)
		}
	}
	for _, c := range p.conditions {
		out = append(out, "conditions["+c+"]")
	}
	slices.Sort(out)
	return out
}

// TestStatusWritersOwnDisjointFields: on a room that both reconcilers have
// written, the managed fields show each field and each condition owned by
// exactly one of them, and a write from an old copy of the room by either
// one leaves the other's fields as the other last wrote them.
func TestStatusWritersOwnDisjointFields(t *testing.T) {
	f := newFleet(t, testenv.RedisURL(), nil)
	ctx := context.Background()
	for _, c := range chatrv1.Components {
		n := int32(2)
		if c == chatrv1.ComponentVerifier {
			n = 1
		}
		setDeploymentStatus(t, deployment(f.room, c), healthy(n))
	}
	wantCondition(t, f.room, chatrv1.ConditionAvailable, metav1.ConditionTrue, chatrv1.ReasonAvailable)
	beforeScaler := f.current()
	f.syncPods()
	f.spread(100)
	if ev := f.evaluate(); !ev.statusWritten {
		t.Fatal("the autoscaler wrote no status")
	}

	room := f.current()
	owners := statusOwners(t, room)
	// No scale yet: the autoscaler has no lastScaleTime to own; one
	// evaluation is not 10 s of post samples, so no postsPerSecond either.
	want := map[string][]string{
		roomStatusManager:       ownedBy(roomStatusPart),
		autoscalerStatusManager: ownedBy(autoscalerStatusPart, "lastScaleTime", "postsPerSecond"),
	}
	if !reflect.DeepEqual(owners, want) {
		t.Fatalf("status owners:\n got %v\nwant %v", owners, want)
	}
	var stored map[string]any
	b, _ := json.Marshal(room.Status)
	must(json.Unmarshal(b, &stored))
	for k := range stored {
		if k != "conditions" && !slices.Contains(owners[roomStatusManager], k) && !slices.Contains(owners[autoscalerStatusManager], k) {
			t.Errorf("status.%s has no owner", k)
		}
	}

	// The ChatRoom reconciler's write from a copy of the room older than
	// the autoscaler's write (its conditions list lacks the autoscaler's)
	// keeps the autoscaler's fields and conditions.
	scaled := room.Status.DeepCopy()
	old := beforeScaler.Status.DeepCopy()
	old.Streamers = "1/2"
	meta.FindStatusCondition(old.Conditions, chatrv1.ConditionDegraded).Message = "a stale write"
	must(roomStatusPart.apply(ctx, k8s, beforeScaler, old))
	room = f.current()
	if !reflect.DeepEqual(room.Status.Autoscaler, scaled.Autoscaler) || !equalPtr(room.Status.Connections, scaled.Connections) ||
		!equalPtr(room.Status.DesiredStreamers, scaled.DesiredStreamers) || !equalPtr(room.Status.CurrentStreamers, scaled.CurrentStreamers) {
		t.Errorf("the ChatRoom reconciler's stale write changed the autoscaler's fields:\n got %+v\nwant %+v", room.Status, scaled)
	}
	for _, typ := range autoscalerStatusPart.conditions {
		if got, want := condition(room, typ), meta.FindStatusCondition(scaled.Conditions, typ); !equality.Semantic.DeepEqual(got, want) {
			t.Errorf("%s after the ChatRoom reconciler's stale write: %+v, want %+v", typ, got, want)
		}
	}

	// The autoscaler's write from a copy of the room older than the ChatRoom
	// reconciler's last write keeps that write: here the streamers lost
	// every pod, and the stale copy says they serve.
	stale := f.current()
	lost := healthy(2)
	lost.ReadyReplicas, lost.AvailableReplicas = 0, 0
	setDeploymentStatus(t, deployment(f.room, chatrv1.ComponentStreamer), lost)
	wantCondition(t, f.room, chatrv1.ConditionAvailable, metav1.ConditionFalse, chatrv1.ReasonComponentUnavailable)
	latest := f.current().Status
	st := stale.Status.DeepCopy()
	st.Connections = ptr(int64(4242))
	must(f.a.writeStatus(ctx, stale, st))
	room = f.current()
	if *room.Status.Connections != 4242 {
		t.Fatalf("the autoscaler's write did not land: connections %d", *room.Status.Connections)
	}
	if same, err := roomStatusPart.equal(&room.Status, &latest); err != nil || !same {
		t.Errorf("the autoscaler's stale write changed the ChatRoom reconciler's part:\n got %+v\nwant %+v", room.Status, latest)
	}
	if got := statusOwners(t, room); !reflect.DeepEqual(got, want) {
		t.Errorf("status owners after the stale writes:\n got %v\nwant %v", got, want)
	}
}

// TestAutoscalerDecidesFromTheStateItWrote: the cache can still hold the
// room as it was before the autoscaler's own last status write. Deciding
// from that older state would forget the scale just made and spend the
// rate limit twice; the evaluation reads the room from the API server
// instead, and decides as if the cache had caught up.
func TestAutoscalerDecidesFromTheStateItWrote(t *testing.T) {
	f := newFleet(t, testenv.RedisURL(), nil)
	f.syncPods()
	var stale atomic.Pointer[chatrv1.ChatRoom]
	var staleReads atomic.Int32
	c, err := client.NewWithWatch(restCfg, client.Options{Scheme: testScheme})
	must(err)
	f.a = f.newAutoscaler(interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if r, ok := obj.(*chatrv1.ChatRoom); ok && stale.Load() != nil {
				staleReads.Add(1)
				stale.Load().DeepCopyInto(r)
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
	}))
	before := f.current()

	// The surge: 2 → 6 at once (the scale-up limit allows +4 per 15 s).
	f.spread(600)
	if ev := f.evaluate(); ev.to != 6 {
		t.Fatalf("surge: %d → %d", ev.from, ev.to)
	}
	written := f.current().Status.Autoscaler.DeepCopy()
	f.syncPods()
	f.spread(600)

	// Within the same period, from a cache that still holds the room as it
	// was before the surge: the limit still holds.
	stale.Store(before)
	f.clock.Step(2 * time.Second)
	ev := f.evaluate()
	if staleReads.Load() == 0 {
		t.Fatal("the stale room was never read")
	}
	if ev.to != 6 {
		t.Fatalf("from a cache that missed the last status write: %d → %d, want 6 (the rate limit holds): %s",
			ev.from, ev.to, ev.result.ScalingLimited.Message)
	}
	if got := f.current().Status.Autoscaler; len(got.ScaleEvents) == 0 || got.ScaleEvents[0] != written.ScaleEvents[0] {
		t.Errorf("the surge's scale event was lost: %+v, want it as written %+v", got, written)
	}
}
