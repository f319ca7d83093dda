package autoscale

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// Pruning must never change what the windows see: the bounds from the
// pruned state equal the bounds from every recommendation ever recorded.
func TestPruningKeepsTheWindowsExact(t *testing.T) {
	for _, windows := range [][2]time.Duration{{0, 300 * time.Second}, {60 * time.Second, 300 * time.Second}, {30 * time.Second, 0}} {
		p := DefaultPolicy()
		p.MaxReplicas = 20
		p.ScaleUpWindow, p.ScaleDownWindow = windows[0], windows[1]
		rng := rand.New(rand.NewPCG(1, 2))
		var st State
		var all []Recommendation // what addRecommendation chose to record, never pruned
		now := t0.UnixMilli()
		longest := 0
		for i := range 5000 {
			now += int64(rng.IntN(5000) + 200)
			rec := int32(rng.IntN(int(p.MaxReplicas-p.MinReplicas+1))) + p.MinReplicas
			if rng.IntN(3) > 0 && len(all) > 0 { // loads mostly stay put
				rec = all[len(all)-1].Replicas
			}
			probe := int32(rng.IntN(25))
			gotUp, gotDown := st.stabilize(p, now, probe)
			wantUp, wantDown := State{Recommendations: all}.stabilize(p, now, probe)
			if gotUp != wantUp || gotDown != wantDown {
				t.Fatalf("windows %v step %d: bounds (%d, %d) from the pruned state, (%d, %d) from all", windows, i, gotUp, gotDown, wantUp, wantDown)
			}
			st.addRecommendation(p, now, rec)
			if st.Recommendations[len(st.Recommendations)-1] == (Recommendation{now, rec}) { // recorded, not skipped
				all = append(all, Recommendation{now, rec})
			}
			longest = max(longest, len(st.Recommendations))
		}
		if limit := 2*int(p.MaxReplicas-p.MinReplicas+1) + 1; longest > limit {
			t.Errorf("windows %v: state held %d recommendations, more than %d", windows, longest, limit)
		}
	}
}

// A steady load leaves the state unchanged between evaluations, so the
// controller writes the status only when something happened.
func TestSteadyLoadLeavesTheStateUnchanged(t *testing.T) {
	p := DefaultPolicy()
	var st State
	now := t0.UnixMilli()
	st.addRecommendation(p, now, 7)
	before := st.DeepCopy()
	for range 4 {
		now += every.Milliseconds()
		st.addRecommendation(p, now, 7)
	}
	if !reflect.DeepEqual(&st, before) {
		t.Errorf("state changed within the resolution: %+v, was %+v", st, before)
	}
	st.addRecommendation(p, now+resolution.Milliseconds(), 7)
	if reflect.DeepEqual(&st, before) {
		t.Error("state never records the time moving on")
	}
}

// Over the cap, merging errs towards a longer scale-down window.
func TestRecommendationsCapped(t *testing.T) {
	p := DefaultPolicy()
	p.MaxReplicas = 1000
	var st State
	now := t0.UnixMilli()
	for rec := int32(1000); rec > 900; rec-- { // a steady fall: every value stays useful
		now += 1000
		st.addRecommendation(p, now, rec)
	}
	if len(st.Recommendations) != maxRecommendations {
		t.Fatalf("%d recommendations, want the cap %d", len(st.Recommendations), maxRecommendations)
	}
	if _, down := st.stabilize(p, now, 0); down != 1000 {
		t.Errorf("the highest recommendation of the window is %d after merging, want 1000", down)
	}
}

func TestScaleEvents(t *testing.T) {
	p := DefaultPolicy()
	var st State
	now := t0.UnixMilli()
	for i := range 40 {
		now += 100
		st.addEvent(now, int32(1+i%2))
	}
	if len(st.ScaleEvents) > maxScaleEvents {
		t.Errorf("%d events, cap %d", len(st.ScaleEvents), maxScaleEvents)
	}
	if added, removed := st.periodChanges(p, now); added != 60 || removed != 0 {
		t.Errorf("period changes +%d -%d after merging, want +60 -0", added, removed)
	}
	st.addEvent(now, -3)
	if added, removed := st.periodChanges(p, now); added != 60 || removed != 3 {
		t.Errorf("period changes +%d -%d, want +60 -3", added, removed)
	}
	now += p.Period.Milliseconds()
	st.pruneEvents(p, now)
	if len(st.ScaleEvents) != 0 {
		t.Errorf("events older than the period kept: %+v", st.ScaleEvents)
	}
	if st.LastScaleTime().IsZero() {
		t.Error("pruning forgot the last scale time")
	}
}

// The JSON form is what the CRD status schema will describe; renaming a
// field breaks every stored status, so it is pinned here.
func TestStateJSON(t *testing.T) {
	st := State{
		Recommendations:    []Recommendation{{UnixMilli: 1767268800000, Replicas: 7}},
		ScaleEvents:        []ScaleEvent{{UnixMilli: 1767268790000, Change: -1}},
		LastScaleUnixMilli: 1767268790000,
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"recommendations":[{"unixMilli":1767268800000,"replicas":7}],"scaleEvents":[{"unixMilli":1767268790000,"change":-1}],"lastScaleUnixMilli":1767268790000}`
	if string(b) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b, want)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, st) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if b, _ := json.Marshal(State{}); string(b) != `{}` {
		t.Errorf("empty state is %s, want {}", b)
	}
}

func TestDeepCopy(t *testing.T) {
	st := &State{Recommendations: []Recommendation{{1, 2}}, ScaleEvents: []ScaleEvent{{3, 4}}, LastScaleUnixMilli: 5}
	cp := st.DeepCopy()
	cp.Recommendations[0].Replicas = 9
	cp.ScaleEvents[0].Change = 9
	if st.Recommendations[0].Replicas != 2 || st.ScaleEvents[0].Change != 4 || cp.LastScaleUnixMilli != 5 {
		t.Errorf("the copy shares memory or lost fields: %+v / %+v", st, cp)
	}
	if (*State)(nil).DeepCopy() != nil {
		t.Error("DeepCopy of nil is not nil")
	}
}
