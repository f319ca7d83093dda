package autoscale

import (
	"slices"
	"time"
)

// State is the autoscaler's memory between evaluations. The operator keeps
// it in the ChatRoom status (converted to the API's own type,
// v1alpha1.AutoscalerState) so that a new operator leader keeps the
// stabilization windows and rate limits of the old one. It stays small: only
// entries that can still change a future decision are kept, and both lists
// are capped. Times are Unix milliseconds, as the status stores them.
type State struct {
	// Recommendations are recent recommendations, oldest first.
	Recommendations []Recommendation `json:"recommendations,omitempty"`
	// ScaleEvents are the replica changes of the last rate-limit period, oldest first.
	ScaleEvents []ScaleEvent `json:"scaleEvents,omitempty"`
	// LastScaleUnixMilli is when the replicas last changed; 0 means never.
	LastScaleUnixMilli int64 `json:"lastScaleUnixMilli,omitempty"`
}

// Recommendation is one recommendation (before stabilization) and when it was made.
type Recommendation struct {
	UnixMilli int64 `json:"unixMilli"`
	Replicas  int32 `json:"replicas"`
}

// ScaleEvent is one change of the replicas, positive for up.
type ScaleEvent struct {
	UnixMilli int64 `json:"unixMilli"`
	Change    int32 `json:"change"`
}

// Caps on the state lists. Pruning keeps far fewer in practice: one
// recommendation per distinct value still inside a window, one event per
// scale within a period.
const (
	maxRecommendations = 48
	maxScaleEvents     = 16
)

// resolution is how finely the state tracks time. A recommendation equal to
// the newest one and made less than resolution after it is not recorded, so
// a steady load leaves the state (and so the ChatRoom status) unchanged
// between evaluations. The newest time can then be up to resolution too
// old; the scale-down window makes up for it by reaching resolution further
// back, so it is never shorter than asked (at most resolution longer).
const resolution = 10 * time.Second

// downCut and upCut are the oldest times (exclusive) inside the windows.
// A zero window looks at the current recommendation only.
func downCut(p Policy, now int64) int64 {
	if p.ScaleDownWindow == 0 {
		return now
	}
	return now - p.ScaleDownWindow.Milliseconds() - resolution.Milliseconds()
}

func upCut(p Policy, now int64) int64 { return now - p.ScaleUpWindow.Milliseconds() }

// LastScaleTime is when the replicas last changed, or the zero time.
func (s State) LastScaleTime() time.Time {
	if s.LastScaleUnixMilli == 0 {
		return time.Time{}
	}
	return time.UnixMilli(s.LastScaleUnixMilli).UTC()
}

// DeepCopyInto copies s into out, sharing no memory with it.
func (s *State) DeepCopyInto(out *State) {
	*out = *s
	out.Recommendations = slices.Clone(s.Recommendations)
	out.ScaleEvents = slices.Clone(s.ScaleEvents)
}

// DeepCopy returns a copy of s that shares no memory with it.
func (s *State) DeepCopy() *State {
	if s == nil {
		return nil
	}
	out := new(State)
	s.DeepCopyInto(out)
	return out
}

// clone returns a copy whose slices can be modified freely, so Decide never
// writes into the caller's State.
func (s State) clone() State {
	var out State
	s.DeepCopyInto(&out)
	return out
}

// addRecommendation records rec at now and drops what can no longer matter:
// entries older than both windows, and entries a newer entry dominates. For
// the scale-down window only the highest recent value counts, so an older
// entry is useless once a newer one is at least as high; for the scale-up
// window the same holds with "at least as low". An entry goes when it is
// useless to both windows.
func (s *State) addRecommendation(p Policy, now int64, rec int32) {
	if n := len(s.Recommendations); n > 0 {
		last := s.Recommendations[n-1]
		if last.Replicas == rec && now >= last.UnixMilli && now-last.UnixMilli < resolution.Milliseconds() {
			return
		}
	}
	recs := append(s.Recommendations, Recommendation{UnixMilli: now, Replicas: rec})
	up, down := upCut(p, now), downCut(p, now)
	kept := recs[:0]
	for i, r := range recs {
		last := i == len(recs)-1
		usefulUp, usefulDown := r.UnixMilli > up, r.UnixMilli > down
		for _, later := range recs[i+1:] {
			if later.Replicas <= r.Replicas {
				usefulUp = false
			}
			if later.Replicas >= r.Replicas {
				usefulDown = false
			}
		}
		if last || usefulUp || usefulDown {
			kept = append(kept, r)
		}
	}
	// Over the cap (only with a huge replica range and a long, steadily
	// moving load), merge the two oldest into one that carries the higher
	// value at the newer time: scale-down then waits longer, never less.
	for len(kept) > maxRecommendations {
		kept[1].Replicas = max(kept[0].Replicas, kept[1].Replicas)
		kept = kept[1:]
	}
	s.Recommendations = slices.Clip(kept)
}

// stabilize returns the bounds the windows put on rec at now: the lowest
// recommendation of the up window and the highest of the down window, both
// including rec itself.
func (s State) stabilize(p Policy, now int64, rec int32) (upBound, downBound int32) {
	upBound, downBound = rec, rec
	up, down := upCut(p, now), downCut(p, now)
	for _, r := range s.Recommendations {
		if r.UnixMilli > up {
			upBound = min(upBound, r.Replicas)
		}
		if r.UnixMilli > down {
			downBound = max(downBound, r.Replicas)
		}
	}
	return upBound, downBound
}

// pruneEvents drops scale events older than the period: they no longer
// limit anything.
func (s *State) pruneEvents(p Policy, now int64) {
	cut := now - p.Period.Milliseconds()
	kept := s.ScaleEvents[:0]
	for _, e := range s.ScaleEvents {
		if e.UnixMilli > cut {
			kept = append(kept, e)
		}
	}
	s.ScaleEvents = slices.Clip(kept)
}

// addEvent records a change of the replicas at now. Over the cap (only when
// evaluations come many times a period), the two oldest events merge into
// one at the newer time, which limits for longer, never less.
func (s *State) addEvent(now int64, change int32) {
	s.ScaleEvents = append(s.ScaleEvents, ScaleEvent{UnixMilli: now, Change: change})
	for len(s.ScaleEvents) > maxScaleEvents {
		// Merging two changes of opposite signs would hide both from the
		// limit of their direction; keep them apart and drop the oldest.
		if (s.ScaleEvents[0].Change > 0) == (s.ScaleEvents[1].Change > 0) {
			s.ScaleEvents[1].Change += s.ScaleEvents[0].Change
		}
		s.ScaleEvents = s.ScaleEvents[1:]
	}
	s.LastScaleUnixMilli = now
}

// periodChanges sums the replicas added and removed within the period.
func (s State) periodChanges(p Policy, now int64) (added, removed int32) {
	cut := now - p.Period.Milliseconds()
	for _, e := range s.ScaleEvents {
		if e.UnixMilli <= cut {
			continue
		}
		if e.Change > 0 {
			added += e.Change
		} else {
			removed -= e.Change
		}
	}
	return added, removed
}
