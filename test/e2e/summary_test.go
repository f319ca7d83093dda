package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatrv1 "github.com/chatr-ai/chatr/api/v1alpha1"
	"github.com/chatr-ai/chatr/test/e2e/localpods"
)

// report collects what the run saw, for the summary.
type report struct {
	start time.Time

	mu       sync.Mutex
	phases   []phase
	timeline []string // streamer fleet changes, "+12.3s ..." lines
	notes    []string
}

type phase struct {
	name string
	took time.Duration
}

func newReport() *report { return &report{start: time.Now()} }

func (r *report) at() string { return fmt.Sprintf("+%5.1fs", time.Since(r.start).Seconds()) }

// phase records how long a named step took, from since.
func (r *report) phase(name string, since time.Time) {
	r.mu.Lock()
	r.phases = append(r.phases, phase{name, time.Since(since)})
	r.mu.Unlock()
}

// note adds a line to the summary, stamped with the time since the start.
func (r *report) note(format string, args ...any) {
	r.mu.Lock()
	r.notes = append(r.notes, r.at()+"  "+fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *report) fleet(line string) {
	r.mu.Lock()
	r.timeline = append(r.timeline, r.at()+"  "+line)
	r.mu.Unlock()
}

// fleetState is one sample of the streamer fleet.
type fleetState struct {
	replicas, ready           int32 // the Deployment's spec.replicas and readyReplicas
	running, ready2, stopping int   // local processes: running, Ready, terminating
	connections               int64 // the room's status.connections (-1: unset)
	desired                   int32 // the room's status.desiredStreamers (-1: unset)
}

func (f fleetState) String() string {
	s := fmt.Sprintf("streamer Deployment replicas %d (ready %d); processes %d running, %d ready, %d terminating",
		f.replicas, f.ready, f.running, f.ready2, f.stopping)
	if f.desired >= 0 || f.connections >= 0 {
		s += fmt.Sprintf("; room status: %d connections, %d desired", f.connections, f.desired)
	}
	return s
}

// fleetLog is what watchFleet saw of the streamer Deployment's replicas.
type fleetLog struct {
	mu      sync.Mutex
	top     int32
	changes []replicaChange
}

type replicaChange struct {
	at       time.Time
	replicas int32
	ready    int // ready, not terminating processes
}

// peak is the highest spec.replicas seen.
func (l *fleetLog) peak() int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.top
}

// firstAbove is when spec.replicas was first seen above n after since
// (zero: not yet).
func (l *fleetLog) firstAbove(n int32, since time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.changes {
		if !c.at.Before(since) && c.replicas > n {
			return c.at
		}
	}
	return time.Time{}
}

// firstReady is when n ready streamer processes were first seen after
// since (zero: not yet).
func (l *fleetLog) firstReady(n int, since time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.changes {
		if !c.at.Before(since) && c.ready >= n {
			return c.at
		}
	}
	return time.Time{}
}

// watchFleet samples the streamer fleet every 100 ms until ctx ends and
// records every change in the report's timeline.
func watchFleet(ctx context.Context, rep *report, k8s client.Client, runner *localpods.Runner, ns, room, deployment string) *fleetLog {
	l := &fleetLog{}
	go func() {
		var last fleetState
		first := true
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			var f fleetState
			f.connections, f.desired = -1, -1
			var d appsv1.Deployment
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: deployment}, &d); err != nil || d.Spec.Replicas == nil {
				// Not made yet.
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					continue
				}
			}
			f.replicas, f.ready = *d.Spec.Replicas, d.Status.ReadyReplicas
			var cr chatrv1.ChatRoom
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: room}, &cr); err == nil {
				if cr.Status.Connections != nil {
					f.connections = *cr.Status.Connections
				}
				if cr.Status.DesiredStreamers != nil {
					f.desired = *cr.Status.DesiredStreamers
				}
			}
			for _, p := range runner.Pods() {
				if p.Deployment != deployment {
					continue
				}
				switch {
				case p.Terminating:
					f.stopping++
				case p.PID > 0:
					f.running++
					if p.Ready {
						f.ready2++
					}
				}
			}
			if ctx.Err() != nil {
				return
			}
			// Connections change all the time; a line per change of the fleet.
			cmp := f
			cmp.connections = last.connections
			if first || cmp != last {
				rep.fleet(f.String())
			}
			l.mu.Lock()
			if first || f.replicas != last.replicas || f.ready2 != last.ready2 {
				l.changes = append(l.changes, replicaChange{time.Now(), f.replicas, f.ready2})
			}
			l.top = max(l.top, f.replicas)
			l.mu.Unlock()
			last, first = f, false
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return l
}

// roomEvents lists the Events about the room, oldest first.
func roomEvents(ctx context.Context, k8s client.Client, ns, room string) []string {
	var el corev1.EventList
	if err := k8s.List(ctx, &el, client.InNamespace(ns)); err != nil {
		return []string{"listing events: " + err.Error()}
	}
	sort.SliceStable(el.Items, func(i, j int) bool {
		return eventTime(&el.Items[i]).Before(eventTime(&el.Items[j]))
	})
	var out []string
	for _, e := range el.Items {
		if e.InvolvedObject.Kind != "ChatRoom" || e.InvolvedObject.Name != room {
			continue
		}
		n := ""
		if e.Count > 1 {
			n = fmt.Sprintf(" (x%d)", e.Count)
		}
		out = append(out, fmt.Sprintf("%s %s %s: %s%s", eventTime(&e).Format("15:04:05"), e.Type, e.Reason, e.Message, n))
	}
	return out
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// conditions renders the room's conditions, one per line.
func conditions(cr *chatrv1.ChatRoom) []string {
	var out []string
	for _, c := range cr.Status.Conditions {
		out = append(out, fmt.Sprintf("%s=%s (%s) %s", c.Type, c.Status, c.Reason, c.Message))
	}
	return out
}

func roomCondition(cr *chatrv1.ChatRoom, typ string) (bool, string) {
	c := meta.FindStatusCondition(cr.Status.Conditions, typ)
	if c == nil {
		return false, "no " + typ + " condition"
	}
	return c.Status == "True", fmt.Sprintf("%s=%s (%s) %s", c.Type, c.Status, c.Reason, c.Message)
}

// streamCheck is the verdict on what one client received on the wire.
type streamCheck struct {
	delivered, lost, dup, reordered int
}

// checkWire compares the ids a client received on the wire with the posted
// ids, from from (the first id it was owed) to to (the last posted id it
// must have seen): each exactly once, in order. Ids before from (an older
// history) are ignored.
func checkWire(ids []int64, posted []int64, from, to int64) streamCheck {
	var c streamCheck
	seen := map[int64]int{}
	var prev int64 = -1
	for _, n := range ids {
		if n < from {
			continue
		}
		c.delivered++
		seen[n]++
		if seen[n] > 1 {
			c.dup++
		} else if n <= prev {
			c.reordered++
		}
		prev = max(prev, n)
	}
	for _, p := range posted {
		if p >= from && p <= to && seen[p] == 0 {
			c.lost++
		}
	}
	return c
}

// percentile of durations (p in [0,1]).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s)-1) + 0.5)
	return s[i]
}

// render is the summary text.
func (r *report) render(extra []string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "\n==================== chatr end-to-end summary ====================\n")
	fmt.Fprintf(&b, "total %s\n\nphases:\n", time.Since(r.start).Round(100*time.Millisecond))
	for _, p := range r.phases {
		fmt.Fprintf(&b, "  %-44s %s\n", p.name, p.took.Round(10*time.Millisecond))
	}
	fmt.Fprintf(&b, "\nstreamer fleet over time:\n")
	for _, l := range r.timeline {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	fmt.Fprintf(&b, "\nwhat happened:\n")
	for _, l := range r.notes {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	for _, l := range extra {
		fmt.Fprintf(&b, "%s\n", l)
	}
	fmt.Fprintf(&b, "==================================================================\n")
	return b.String()
}
