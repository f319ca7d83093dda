package autoscale

import (
	"reflect"
	"testing"
)

func TestDeletionCosts(t *testing.T) {
	p := DefaultPolicy()
	tests := []struct {
		name string
		pods []Pod
		want map[string]int32
	}{
		{
			name: "least connected first",
			pods: []Pod{ready("a", 4000), ready("b", 100), ready("c", 2500)},
			want: map[string]int32{"b": 0, "c": 1, "a": 2},
		},
		{
			name: "ties by name",
			pods: []Pod{ready("z", 10), ready("m", 10), ready("a", 10)},
			want: map[string]int32{"a": 0, "m": 1, "z": 2},
		},
		{
			name: "a pod without a count ranks as carrying the target",
			pods: []Pod{missing("x"), ready("a", 4999), ready("b", 5001)},
			want: map[string]int32{"a": 0, "x": 1, "b": 2},
		},
		{
			name: "terminating pods get nothing, unready pods are ranked too",
			pods: []Pod{terminating("t", 0), unready("u", 0, true), ready("a", 300)},
			want: map[string]int32{"u": 0, "a": 1},
		},
		{
			name: "no pods",
			want: map[string]int32{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DeletionCosts(p, tt.pods); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DeletionCosts = %v, want %v", got, tt.want)
			}
		})
	}
}

// Ranks depend on the order of the connections only, so a scale-down while
// every count moves a little patches no annotation.
func TestDeletionCostsStableWhileTheOrderHolds(t *testing.T) {
	p := DefaultPolicy()
	a := DeletionCosts(p, []Pod{ready("a", 100), ready("b", 2000), ready("c", 3000)})
	b := DeletionCosts(p, []Pod{ready("a", 150), ready("b", 2400), ready("c", 2900)})
	if !reflect.DeepEqual(a, b) {
		t.Errorf("costs moved with the counts: %v then %v", a, b)
	}
}
