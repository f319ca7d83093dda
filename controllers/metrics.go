package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The operator's own series about rooms, on the manager's /metrics (beside
// controller-runtime's): what the streamer autoscaler decided at each
// evaluation, for the ChatRoomAutoscalerLimited alert and the dashboard.
var (
	autoscalerLimited = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "chatr_autoscaler_scaling_limited",
		Help: "1 while something other than the connection counts chose the room's streamer count (min/max, a rate limit, a stabilization window), by reason; 0 otherwise.",
	}, []string{"namespace", "chatroom", "reason"})
	autoscalerDesired = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "chatr_autoscaler_desired_streamers",
		Help: "The streamer replicas the autoscaler last decided for the room.",
	}, []string{"namespace", "chatroom"})
)

func init() {
	crmetrics.Registry.MustRegister(autoscalerLimited, autoscalerDesired)
}

// ObserveAutoscaler records one evaluation's decision for the room: the
// replicas, and whether (and why) the size was limited. The autoscaler calls
// it after every evaluation that decided.
func ObserveAutoscaler(namespace, room string, replicas int32, limited bool, reason string) {
	autoscalerDesired.WithLabelValues(namespace, room).Set(float64(replicas))
	autoscalerLimited.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "chatroom": room})
	v := 0.0
	if limited {
		v = 1
	}
	autoscalerLimited.WithLabelValues(namespace, room, reason).Set(v)
}

// forgetAutoscaler drops the series of a room that is gone.
func forgetAutoscaler(namespace, room string) {
	labels := prometheus.Labels{"namespace": namespace, "chatroom": room}
	autoscalerDesired.DeletePartialMatch(labels)
	autoscalerLimited.DeletePartialMatch(labels)
}
