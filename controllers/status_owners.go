package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
)

// Every field of a room's status has exactly one owner, and each owner
// writes its fields with server-side apply under a field manager of its own,
// sending its fields and no other. The API server then merges the two
// writers' fields (conditions are a map keyed by type, so each owner's
// condition types are entries of their own): neither writer needs the
// other's fields to write its own, a write computed from an old copy of the
// room cannot remove or reset the other's fields, and there is no conflict
// to retry. The managed fields of a room show who owns what.
//
//	kubectl get chatroom NAME -o yaml --show-managed-fields

// Field managers of the status writers.
const (
	// roomStatusManager is the ChatRoom reconciler's (the operator's name).
	roomStatusManager = chatrv1.ManagerName
	// autoscalerStatusManager is the streamer autoscaler's.
	autoscalerStatusManager = "chatr-autoscaler"
)

// statusPart is the part of a room's status one reconciler owns: top-level
// status fields, by JSON name, and condition types.
type statusPart struct {
	manager    string
	fields     []string
	conditions []string
}

// roomStatusPart is the ChatRoom reconciler's part of the status: what it
// observes of the room's Deployments and derives from the spec.
var roomStatusPart = statusPart{
	manager: roomStatusManager,
	fields:  []string{"observedGeneration", "api", "streamer", "verifier", "streamers", "postgresSchema", "endpoints"},
	conditions: []string{
		chatrv1.ConditionAvailable, chatrv1.ConditionProgressing, chatrv1.ConditionDegraded,
		chatrv1.ConditionAPIAvailable, chatrv1.ConditionStreamerAvailable, chatrv1.ConditionVerifierAvailable,
		chatrv1.ConditionMonitoring,
	},
}

// autoscalerStatusPart is the streamer autoscaler's part: what it found and
// decided, and its memory between evaluations.
var autoscalerStatusPart = statusPart{
	manager:    autoscalerStatusManager,
	fields:     []string{"connections", "postsPerSecond", "currentStreamers", "desiredStreamers", "lastScaleTime", "autoscaler"},
	conditions: []string{chatrv1.ConditionScalingActive, chatrv1.ConditionScalingLimited},
}

// view returns this part of status as the API server receives it: its
// fields that are set, as JSON values, and its conditions, always (an empty
// list removes the owner's conditions), in the order of status.
func (p statusPart) view(status *chatrv1.ChatRoomStatus) (map[string]any, error) {
	b, err := json.Marshal(status)
	if err != nil {
		return nil, fmt.Errorf("while encoding the status: %w", err)
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("while decoding the status: %w", err)
	}
	out := map[string]any{}
	for _, f := range p.fields {
		if v, ok := all[f]; ok {
			out[f] = v
		}
	}
	conditions := []any{}
	listed, _ := all["conditions"].([]any)
	for _, v := range listed {
		if t, _ := v.(map[string]any)["type"].(string); slices.Contains(p.conditions, t) {
			conditions = append(conditions, v)
		}
	}
	out["conditions"] = conditions
	return out, nil
}

// equal reports whether a and b agree on this part of the status. The order
// of the conditions does not count: the API server merges the two owners'
// entries into one list, in an order of its choosing.
func (p statusPart) equal(a, b *chatrv1.ChatRoomStatus) (bool, error) {
	va, err := p.view(a)
	if err != nil {
		return false, err
	}
	vb, err := p.view(b)
	if err != nil {
		return false, err
	}
	for _, v := range []map[string]any{va, vb} {
		slices.SortFunc(v["conditions"].([]any), func(x, y any) int {
			return strings.Compare(x.(map[string]any)["type"].(string), y.(map[string]any)["type"].(string))
		})
	}
	return equality.Semantic.DeepEqual(va, vb), nil
}

// applyConfiguration returns the server-side apply of this part of status
// to room: the room's identity and this part, nothing else.
func (p statusPart) applyConfiguration(room *chatrv1.ChatRoom, status *chatrv1.ChatRoomStatus) (runtime.ApplyConfiguration, error) {
	part, err := p.view(status)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": chatrv1.GroupVersion.String(),
		"kind":       "ChatRoom",
		"metadata":   map[string]any{"name": room.Name, "namespace": room.Namespace},
		"status":     part,
	}}
	return client.ApplyConfigurationFromUnstructured(u), nil
}

// apply writes this part of status to room with server-side apply, as its
// owner. The owner takes its fields over from whoever held them (a
// previous version of the operator wrote with merge patches), and leaves
// every other field as it is.
func (p statusPart) apply(ctx context.Context, c client.Client, room *chatrv1.ChatRoom, status *chatrv1.ChatRoomStatus) error {
	ac, err := p.applyConfiguration(room, status)
	if err != nil {
		return err
	}
	if err := c.Status().Apply(ctx, ac, client.FieldOwner(p.manager), client.ForceOwnership); err != nil {
		return fmt.Errorf("while applying the %s part of chatroom %s/%s status: %w", p.manager, room.Namespace, room.Name, err)
	}
	return nil
}
