package controllers

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/log"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/roomevents"
)

// roomEventsPerEvaluation bounds the events relayed per evaluation, so a
// burst of summaries never holds a room's evaluation; the rest wait for
// the next one (every evaluation interval).
const roomEventsPerEvaluation = 32

// eventActionRoom is the action of the Events relayed from the room's pods.
const eventActionRoom = "Relay"

// relayRoomEvents emits, as Events on the room, the summaries the room's
// pods published on its Redis stream (internal/roomevents: the verifier's
// retention passes, and whatever else a part of the room publishes), and
// acknowledges them once emitted. The autoscaler does it because it already
// holds a client of each room's Redis and visits every room every
// evaluation interval. Failures are logged and retried at the next
// evaluation; they never hold the scaling.
func (a *StreamerAutoscaler) relayRoomEvents(ctx context.Context, room, desired *chatrv1.ChatRoom) {
	maxAge := a.SecretResync
	if maxAge <= 0 {
		maxAge = defaultSecretResync
	}
	rdb, err := a.redis.forRoom(ctx, a.APIReader, desired, a.now(), maxAge)
	if err != nil {
		return // readCounts reports an unreachable Redis
	}
	rctx, cancel := context.WithTimeout(ctx, countsReadTimeout)
	defer cancel()
	events, err := roomevents.Read(rctx, rdb, desired.PostgresSchema(), roomEventsPerEvaluation)
	if err != nil {
		log.FromContext(ctx).V(1).Info("room events not read", "err", err.Error())
		return
	}
	ids := make([]string, 0, len(events))
	for _, e := range events {
		ids = append(ids, e.ID)
		if e.Reason == "" {
			continue // not a valid event: skipped, and acknowledged
		}
		note := e.Message
		if e.Source != "" {
			note += " (from " + e.Source + ")"
		}
		a.Recorder.Eventf(room, nil, e.Type, e.Reason, eventActionRoom, "%s", note)
	}
	if err := roomevents.Ack(rctx, rdb, desired.PostgresSchema(), ids...); err != nil {
		log.FromContext(ctx).V(1).Info("room events not acknowledged", "err", err.Error())
	}
}
