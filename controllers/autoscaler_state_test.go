package controllers

import (
	"encoding/json"
	"reflect"
	"testing"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/internal/autoscale"
)

// TestAutoscalerStateConversion: the state the status keeps and the
// algorithm's state convert into each other without loss, share no memory,
// and store the same JSON (rooms written before the API had a type of its
// own read back unchanged).
func TestAutoscalerStateConversion(t *testing.T) {
	s := autoscale.State{
		Recommendations:    []autoscale.Recommendation{{UnixMilli: 1000, Replicas: 3}, {UnixMilli: 2000, Replicas: 5}},
		ScaleEvents:        []autoscale.ScaleEvent{{UnixMilli: 1500, Change: 2}, {UnixMilli: 2500, Change: -1}},
		LastScaleUnixMilli: 2500,
	}
	st := statusFromState(s)
	if back := stateFromStatus(st); !reflect.DeepEqual(back, s) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, s)
	}
	a, err := json.Marshal(s)
	must(err)
	b, err := json.Marshal(st)
	must(err)
	if string(a) != string(b) {
		t.Errorf("stored JSON differs:\n algorithm %s\n status    %s", a, b)
	}

	st.Recommendations[0].Replicas = 9
	back := stateFromStatus(st)
	back.ScaleEvents[0].Change = 7
	if s.Recommendations[0].Replicas != 3 || st.ScaleEvents[0].Change != 2 {
		t.Error("a converted state shares memory with its source")
	}

	if got := stateFromStatus(nil); !reflect.DeepEqual(got, autoscale.State{}) {
		t.Errorf("no stored state: %+v, want the zero state", got)
	}
	if got := statusFromState(autoscale.State{}); !equalState(got, nil) {
		t.Errorf("the zero state: %+v, want an empty one", got)
	}
	var empty chatrv1.AutoscalerState
	if b, _ := json.Marshal(empty); string(b) != "{}" {
		t.Errorf("an empty state stores %s", b)
	}
}
