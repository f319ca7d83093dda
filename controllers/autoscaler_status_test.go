package controllers

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/autoscale"
)

func TestAutoscalePods(t *testing.T) {
	deleted := metav1.Now()
	pod := func(name string, ready corev1.ConditionStatus, terminating bool) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if ready != "" {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: ready}}
		}
		if terminating {
			p.DeletionTimestamp = &deleted
		}
		return p
	}
	got := autoscalePods([]corev1.Pod{
		pod("ready", corev1.ConditionTrue, false),
		pod("unready", corev1.ConditionFalse, false),
		pod("no-condition", "", false),
		pod("leaving", corev1.ConditionTrue, true),
		pod("silent", corev1.ConditionTrue, false),
	}, map[string]int64{"ready": 10, "unready": 20, "no-condition": 30, "leaving": 40})
	want := []autoscale.Pod{
		{Name: "ready", Ready: true, Reported: true, Connections: 10},
		{Name: "unready", Reported: true, Connections: 20},
		{Name: "no-condition", Reported: true, Connections: 30},
		{Name: "leaving", Ready: true, Terminating: true, Reported: true, Connections: 40},
		{Name: "silent", Ready: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("pod %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestAutoscalerStatus: the autoscaler's part of the status is filled in,
// the ChatRoom reconciler's is kept, and a write is due only when something
// other than the count and the messages changed.
func TestAutoscalerStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 500_000_000, time.UTC)
	room := &chatrv1.ChatRoom{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
	room.Status.Streamers = "2/2"
	meta.SetStatusCondition(&room.Status.Conditions, metav1.Condition{Type: chatrv1.ConditionAvailable, Status: metav1.ConditionTrue, Reason: "Available"})
	pods := []autoscale.Pod{{Name: "a", Ready: true, Reported: true, Connections: 70}, {Name: "b"}, {Name: "c", Terminating: true}}
	in := autoscale.Input{Replicas: 2, Pods: pods, Now: now}
	res := autoscale.Decide(autoscale.DefaultPolicy(), in)
	st := autoscalerStatus(room, in, res)

	if st.Streamers != "2/2" || meta.FindStatusCondition(st.Conditions, chatrv1.ConditionAvailable) == nil {
		t.Errorf("the ChatRoom reconciler's status was not kept: %+v", st)
	}
	if *st.Connections != 70 || *st.CurrentStreamers != 2 || *st.DesiredStreamers != 2 || st.LastScaleTime != nil || st.Autoscaler == nil {
		t.Errorf("autoscaler status %+v", st)
	}
	for _, typ := range []string{chatrv1.ConditionScalingActive, chatrv1.ConditionScalingLimited} {
		c := meta.FindStatusCondition(st.Conditions, typ)
		if c == nil || c.ObservedGeneration != 3 || !c.LastTransitionTime.Time.Equal(now.Truncate(time.Second)) {
			t.Errorf("%s: %+v", typ, c)
		}
	}
	if !autoscalerStatusChanged(&room.Status, st) {
		t.Error("a first status is not seen as a change")
	}

	// The next evaluation, 2 s later, with another count: the state does
	// not move (no new recommendation within 10 s), so nothing to write,
	// although the count and the message differ.
	room.Status = *st
	pods[0].Connections = 75
	in2 := autoscale.Input{Replicas: 2, Pods: pods, State: stateFromStatus(st.Autoscaler), Now: now.Add(2 * time.Second)}
	st2 := autoscalerStatus(room, in2, autoscale.Decide(autoscale.DefaultPolicy(), in2))
	if *st2.Connections != 75 || autoscalerStatusChanged(&room.Status, st2) {
		t.Errorf("connections %d, changed %v: a new count alone must not cause a write", *st2.Connections, autoscalerStatusChanged(&room.Status, st2))
	}
	// 10 s later the state records a recommendation: written.
	in3 := in2
	in3.Now = now.Add(11 * time.Second)
	if !autoscalerStatusChanged(&room.Status, autoscalerStatus(room, in3, autoscale.Decide(autoscale.DefaultPolicy(), in3))) {
		t.Error("a state that moved is not seen as a change")
	}
	// Redis down: the last known count stays, ScalingActive turns False.
	in4 := in2
	in4.CountsErr = errors.New("connection refused")
	st4 := autoscalerStatus(room, in4, autoscale.Decide(autoscale.DefaultPolicy(), in4))
	if *st4.Connections != 70 || !autoscalerStatusChanged(&room.Status, st4) {
		t.Errorf("Redis down: connections %d, changed %v", *st4.Connections, autoscalerStatusChanged(&room.Status, st4))
	}
	if c := meta.FindStatusCondition(st4.Conditions, chatrv1.ConditionScalingActive); c.Status != metav1.ConditionFalse ||
		c.Reason != autoscale.ReasonFailedGetCounts || !strings.Contains(c.Message, "connection refused") {
		t.Errorf("ScalingActive %+v", c)
	}
	// A new generation of the spec: the conditions must say they saw it.
	room.Generation = 4
	if !autoscalerStatusChanged(&room.Status, autoscalerStatus(room, in2, autoscale.Decide(autoscale.DefaultPolicy(), in2))) {
		t.Error("a new observedGeneration is not seen as a change")
	}
}

func TestAutoscalerStatusChanged(t *testing.T) {
	base := func() *chatrv1.ChatRoomStatus {
		st := &chatrv1.ChatRoomStatus{
			Connections: ptr(int64(10)), CurrentStreamers: ptr(int32(2)), DesiredStreamers: ptr(int32(2)),
			LastScaleTime: &metav1.Time{Time: time.Unix(1000, 0)},
			Autoscaler:    &chatrv1.AutoscalerState{Recommendations: []chatrv1.ScaleRecommendation{{UnixMilli: 1, Replicas: 2}}},
		}
		for _, typ := range []string{chatrv1.ConditionScalingActive, chatrv1.ConditionScalingLimited} {
			meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: "R", Message: "m", ObservedGeneration: 1})
		}
		return st
	}
	cases := []struct {
		name    string
		change  func(*chatrv1.ChatRoomStatus)
		changed bool
	}{
		{"nothing", func(*chatrv1.ChatRoomStatus) {}, false},
		{"connections", func(s *chatrv1.ChatRoomStatus) { s.Connections = ptr(int64(11)) }, false},
		{"a message", func(s *chatrv1.ChatRoomStatus) { s.Conditions[0].Message = "other" }, false},
		{"the ChatRoom reconciler's fields", func(s *chatrv1.ChatRoomStatus) { s.Streamers = "1/2" }, false},
		{"empty state lists", func(s *chatrv1.ChatRoomStatus) { s.Autoscaler.ScaleEvents = []chatrv1.ScaleEvent{} }, false},
		{"desired", func(s *chatrv1.ChatRoomStatus) { s.DesiredStreamers = ptr(int32(3)) }, true},
		{"current", func(s *chatrv1.ChatRoomStatus) { s.CurrentStreamers = nil }, true},
		{"first count", func(s *chatrv1.ChatRoomStatus) { s.Connections = nil }, true},
		{"last scale", func(s *chatrv1.ChatRoomStatus) { s.LastScaleTime = &metav1.Time{Time: time.Unix(1001, 0)} }, true},
		{"state", func(s *chatrv1.ChatRoomStatus) { s.Autoscaler.Recommendations[0].Replicas = 3 }, true},
		{"state gone", func(s *chatrv1.ChatRoomStatus) { s.Autoscaler = nil }, true},
		{"condition status", func(s *chatrv1.ChatRoomStatus) { s.Conditions[1].Status = metav1.ConditionFalse }, true},
		{"condition reason", func(s *chatrv1.ChatRoomStatus) { s.Conditions[0].Reason = "Other" }, true},
		{"condition generation", func(s *chatrv1.ChatRoomStatus) { s.Conditions[0].ObservedGeneration = 2 }, true},
		{"condition missing", func(s *chatrv1.ChatRoomStatus) { s.Conditions = s.Conditions[:1] }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := base()
			tc.change(next)
			if got := autoscalerStatusChanged(base(), next); got != tc.changed {
				t.Errorf("changed = %v, want %v", got, tc.changed)
			}
		})
	}
}

func TestStripPodForAutoscaler(t *testing.T) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"c": "d"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "x"}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1",
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "c"}}},
	}
	out, err := stripPodForAutoscaler(p)
	if err != nil {
		t.Fatal(err)
	}
	q := out.(*corev1.Pod)
	if len(q.Spec.Containers) != 0 || q.ManagedFields != nil || q.Status.PodIP != "" || q.Status.ContainerStatuses != nil {
		t.Errorf("not stripped: %+v", q)
	}
	if q.Labels["a"] != "b" || q.Annotations["c"] != "d" || q.Status.Phase != corev1.PodRunning || !podReady(q) {
		t.Errorf("stripped too much: %+v", q)
	}
	// Other objects (tombstones, metadata) pass through.
	other := &metav1.PartialObjectMetadata{}
	if out, _ := stripPodForAutoscaler(other); out != other {
		t.Error("a non-pod was changed")
	}
}

// TestRedisClientErrorsKeepTheURLSecret: a Redis URL can hold a password,
// and the error ends up in a condition anyone who reads the room sees.
func TestRedisClientErrorsKeepTheURLSecret(t *testing.T) {
	_, err := newRedisClient("http://user:s3cret@redis:6379/0")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %v", err)
	}
	rdb, err := newRedisClient("redis://:pw@127.0.0.1:6379/0")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	o := rdb.(*redis.Client).Options()
	if o.DialTimeout != redisDialTimeout || o.ReadTimeout != redisIOTimeout || o.MaxRetries != 1 || o.PoolSize != 2 {
		t.Errorf("options %+v", o)
	}
	rdb2, err := newRedisClient("redis://127.0.0.1:6379/0?dial_timeout=5s&pool_size=7")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb2.Close()
	if o := rdb2.(*redis.Client).Options(); o.DialTimeout != 5*time.Second || o.PoolSize != 7 {
		t.Errorf("the URL's own settings were overridden: %+v", o)
	}
}
