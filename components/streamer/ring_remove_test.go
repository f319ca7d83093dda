package streamer

import (
	"slices"
	"testing"
)

// remove takes one entry out of a ring, wrapped or not, and keeps the rest
// in order; after and floor stay right around the hole.
func TestRingRemove(t *testing.T) {
	r := newRing(4)
	for id := int64(1); id <= 6; id++ { // wraps: holds 3..6
		r.push(entry{id: id, f: &frame{id: id}})
	}
	idsOf := func(fs []*frame) []int64 {
		var out []int64
		for _, f := range fs {
			out = append(out, f.id)
		}
		return out
	}
	if r.remove(2) || r.remove(7) {
		t.Fatal("removed an id the ring does not hold")
	}
	if !r.remove(4) || r.remove(4) {
		t.Fatal("remove(4) twice")
	}
	if got := idsOf(r.after(0)); !slices.Equal(got, []int64{3, 5, 6}) {
		t.Fatalf("after(0) = %v", got)
	}
	if got := idsOf(r.after(3)); !slices.Equal(got, []int64{5, 6}) {
		t.Fatalf("after(3) = %v", got)
	}
	if r.floor() != 2 || r.newest() != 6 {
		t.Fatalf("floor %d newest %d", r.floor(), r.newest())
	}
	r.push(entry{id: 7, f: &frame{id: 7}}) // room for it: nothing falls out
	if got := idsOf(r.after(0)); !slices.Equal(got, []int64{3, 5, 6, 7}) {
		t.Fatalf("after a push: %v", got)
	}
	if !r.remove(7) || !r.remove(3) || r.oldest() != 5 || r.newest() != 6 || r.floor() != 4 {
		t.Fatalf("ends: oldest %d newest %d floor %d", r.oldest(), r.newest(), r.floor())
	}
}
