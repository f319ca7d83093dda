package streamer

// entry is one message the pod remembers: its JSON (for history frames) and
// its message frame (for live delivery and resumes).
type entry struct {
	id   int64
	json []byte
	f    *frame
}

// ring keeps the most recent messages in id order, so that history and
// recent resumes never touch Postgres. It is not safe for concurrent use;
// the hub guards it.
type ring struct {
	buf   []entry
	start int // index of the oldest entry
	n     int
	// partial is set once the ring may lack older messages of the room (it
	// wrapped, or was warmed with a full window); until then it holds them all.
	partial bool
}

func newRing(size int) *ring { return &ring{buf: make([]entry, size)} }

// push appends e; the caller guarantees e.id is above every id in the ring.
func (r *ring) push(e entry) {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = e
		r.n++
		return
	}
	r.buf[r.start] = e
	r.start = (r.start + 1) % len(r.buf)
	r.partial = true
}

// floor is the id above which the ring holds every message of the room: a
// resume from below it needs Postgres.
func (r *ring) floor() int64 {
	if !r.partial {
		return 0
	}
	return r.oldest() - 1
}

func (r *ring) at(i int) *entry { return &r.buf[(r.start+i)%len(r.buf)] }

// oldest and newest are the ids at both ends (0 when empty).
func (r *ring) oldest() int64 {
	if r.n == 0 {
		return 0
	}
	return r.at(0).id
}

func (r *ring) newest() int64 {
	if r.n == 0 {
		return 0
	}
	return r.at(r.n - 1).id
}

// after returns the frames of the entries with id > id, oldest first.
func (r *ring) after(id int64) []*frame {
	// Binary search: ids are increasing.
	lo, hi := 0, r.n
	for lo < hi {
		mid := (lo + hi) / 2
		if r.at(mid).id <= id {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	out := make([]*frame, 0, r.n-lo)
	for i := lo; i < r.n; i++ {
		out = append(out, r.at(i).f)
	}
	return out
}

// last returns the JSON of the newest k entries, oldest first.
func (r *ring) last(k int) [][]byte {
	if k > r.n {
		k = r.n
	}
	out := make([][]byte, 0, k)
	for i := r.n - k; i < r.n; i++ {
		out = append(out, r.at(i).json)
	}
	return out
}

// remove drops the entry of id, if the ring holds it, keeping the others in
// order; it reports whether it did. Ids are never reused, so a removed id
// simply stays absent (a deleted message).
func (r *ring) remove(id int64) bool {
	lo, hi := 0, r.n
	for lo < hi {
		mid := (lo + hi) / 2
		if r.at(mid).id < id {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == r.n || r.at(lo).id != id {
		return false
	}
	for i := lo; i < r.n-1; i++ {
		*r.at(i) = *r.at(i + 1)
	}
	*r.at(r.n - 1) = entry{}
	r.n--
	return true
}
