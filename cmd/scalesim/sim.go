package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/chatr-ai/chatr/internal/autoscale"
)

// Config is the world the simulation runs the real autoscaler in. The
// defaults (DefaultConfig) follow docs/runtime.md where it fixes a value and
// are deliberately unkind where it does not.
type Config struct {
	Policy autoscale.Policy
	// Step is the simulation's time step.
	Step time.Duration
	// SyncInterval is how often the operator evaluates (its requeue period).
	SyncInterval time.Duration
	// ReportInterval and ReportTTL: each streamer writes its count every
	// ReportInterval, and a count older than ReportTTL has expired.
	ReportInterval, ReportTTL time.Duration
	// StartDelay is how long a new pod takes to become Ready (scheduling,
	// start, readiness probe, endpoint update).
	StartDelay time.Duration
	// DrainTime: a terminating pod closes its connections evenly over it.
	DrainTime time.Duration
	// RetryMin and RetryMax bound the client's reconnection delay (the
	// streamer's retry hint plus jitter); reconnections spread evenly over it.
	RetryMin, RetryMax time.Duration
	// MaxConnsPerPod is the streamer's hard cap (CHATR_MAX_CONNECTIONS).
	MaxConnsPerPod int64
}

// DefaultConfig is the world the goals are checked in.
func DefaultConfig() Config {
	return Config{
		Policy:         autoscale.DefaultPolicy(),
		Step:           100 * time.Millisecond,
		SyncInterval:   autoscale.DefaultInterval,
		ReportInterval: 5 * time.Second,
		ReportTTL:      15 * time.Second,
		StartDelay:     5 * time.Second,
		DrainTime:      30 * time.Second,
		RetryMin:       500 * time.Millisecond,
		RetryMax:       3 * time.Second,
		MaxConnsPerPod: 20000,
	}
}

// Trace is one load scenario.
type Trace struct {
	Name        string
	Description string
	Duration    time.Duration
	// Demand is the number of clients that want a stream at t.
	Demand func(t time.Duration) float64
	// InitialReplicas are Ready at 0, and Demand(0) clients are spread over
	// them; 0 means minReplicas.
	InitialReplicas int32
	// Evictions take pods away (a node drain): the Deployment replaces them.
	Evictions []Eviction
	// NoFlap makes "no flap" a goal of this trace.
	NoFlap bool
	// Settles makes "ends at need + spare pods" a goal: the trace ends on a
	// plateau longer than the scale-down window.
	Settles bool
}

// Eviction evicts the Pods most loaded Ready pods at At.
type Eviction struct {
	At   time.Duration
	Pods int
}

// ScaleEvent is one change of the Deployment's replicas.
type ScaleEvent struct {
	At       time.Duration
	From, To int32
	Reason   string
}

// Report is what a run measured.
type Report struct {
	Trace  string
	Target int64
	// PeakNeed is the most pods the load needed: ceil(demand / target).
	PeakNeed int32
	// PeakReplicas is the most replicas the operator asked for.
	PeakReplicas int32
	// CapacityLag is the longest time, over every pod-count level the load
	// reached, from the load needing that many pods to that many being Ready.
	CapacityLag time.Duration
	// MaxPerPod is the most connections any pod held.
	MaxPerPod int64
	// MaxPerPodAt is when it first did.
	MaxPerPodAt time.Duration
	// LongestAbove is the longest a pod stayed above 1.2 × target.
	LongestAbove time.Duration
	// Overshoot is, over every scale-up, the replicas asked for minus the
	// most pods the load needed within flapWindow before it (at least
	// minReplicas): pods the load never asked for.
	Overshoot int32
	// MeanAboveNeed is the time-average of replicas minus need: what the
	// spare pod, the windows and the scale-down tolerance cost.
	MeanAboveNeed float64
	// Flaps counts reversals of direction within flapWindow.
	Flaps  int
	Events []ScaleEvent
	// FinalReplicas and FinalNeed are the replicas and max(min, need) at the end.
	FinalReplicas, FinalNeed int32
	// RoundTrips counts the JSON round trips of the state (one per evaluation).
	RoundTrips int
	// Goals failed, in words; empty when every goal held.
	Failed []string
}

type pod struct {
	name        string
	readyAt     time.Duration
	ready       bool
	terminating bool
	drainEnd    time.Duration
	drainRate   float64 // connections closed per step while draining
	drainCarry  float64
	conns       int64
	reports     bool // the process runs and writes its count
	reported    bool // it has written at least once
	report      int64
	reportAt    time.Duration
	nextReport  time.Duration
	cost        int32
	aboveSince  time.Duration
}

type world struct {
	cfg      Config
	tr       Trace
	t        time.Duration
	step     int64
	pods     []*pod
	created  int
	replicas int32
	state    autoscale.State
	pending  map[int64]int64 // reconnections due at a step
	nPending int64
	rep      Report

	// measurement state
	levelSince map[int32]time.Duration // pod-count level → when the load first needed it
	levelSeen  map[int32]time.Duration // level → when the load last needed it
	needHist   []needAt                // needs within the scale-down window (monotone deque)
	lastUp     time.Duration
	lastDown   time.Duration
	aboveSum   float64
}

type needAt struct {
	t    time.Duration
	need int32
}

// Run plays one trace through the autoscaler and measures it.
func Run(cfg Config, tr Trace) Report {
	w := &world{
		cfg: cfg, tr: tr, pending: map[int64]int64{},
		levelSince: map[int32]time.Duration{}, levelSeen: map[int32]time.Duration{},
		lastUp: -1, lastDown: -1,
	}
	w.rep = Report{Trace: tr.Name, Target: cfg.Policy.TargetPerPod}
	w.replicas = tr.InitialReplicas
	if w.replicas == 0 {
		w.replicas = cfg.Policy.MinReplicas
	}
	w.rep.PeakReplicas = w.replicas
	for i := range w.replicas {
		p := w.newPod()
		p.readyAt, p.ready, p.reports = 0, true, true
		// Running pods write on staggered schedules.
		p.nextReport = cfg.ReportInterval * time.Duration(i) / time.Duration(w.replicas)
	}
	w.connect(int64(math.Round(tr.Demand(0))))
	evictions := slices.Clone(tr.Evictions)
	steps := int64(tr.Duration / cfg.Step)
	syncEvery := int64(cfg.SyncInterval / cfg.Step)
	for w.step = 1; w.step <= steps; w.step++ {
		w.t = time.Duration(w.step) * cfg.Step
		for len(evictions) > 0 && evictions[0].At <= w.t {
			w.evict(evictions[0].Pods)
			evictions = evictions[1:]
		}
		w.replicaSet()
		w.lifecycle()
		w.followDemand()
		w.connect(w.pending[w.step])
		delete(w.pending, w.step)
		w.reportCounts()
		if w.step%syncEvery == 0 {
			w.operator()
		}
		w.measure()
	}
	w.rep.FinalReplicas = w.replicas
	w.rep.FinalNeed = w.need(tr.Demand(tr.Duration))
	w.checkGoals()
	return w.rep
}

func (w *world) newPod() *pod {
	w.created++
	p := &pod{
		name:       fmt.Sprintf("streamer-%03d", w.created),
		readyAt:    w.t + w.cfg.StartDelay,
		nextReport: w.t + w.cfg.StartDelay,
		aboveSince: -1,
	}
	w.pods = append(w.pods, p)
	return p
}

// need is the pods the demand needs, at least minReplicas.
func (w *world) need(demand float64) int32 {
	n := int32(math.Ceil(demand / float64(w.cfg.Policy.TargetPerPod)))
	return max(n, w.cfg.Policy.MinReplicas)
}

// evict starts draining the n most loaded serving pods, as a node drain would.
func (w *world) evict(n int) {
	serving := w.serving()
	sort.SliceStable(serving, func(i, j int) bool { return serving[i].conns > serving[j].conns })
	for _, p := range serving[:min(n, len(serving))] {
		w.terminate(p)
	}
}

func (w *world) terminate(p *pod) {
	p.terminating = true
	p.ready = false
	p.drainEnd = w.t + w.cfg.DrainTime
	p.drainRate = float64(p.conns) / float64(w.cfg.DrainTime/w.cfg.Step)
}

// serving lists the Ready, non-terminating pods.
func (w *world) serving() []*pod {
	var out []*pod
	for _, p := range w.pods {
		if p.ready && !p.terminating {
			out = append(out, p)
		}
	}
	return out
}

// replicaSet brings the non-terminating pods to the replicas, removing as
// the ReplicaSet controller does: unready first, then the lowest
// pod-deletion-cost, then the newest.
func (w *world) replicaSet() {
	var active []*pod
	for _, p := range w.pods {
		if !p.terminating {
			active = append(active, p)
		}
	}
	for i := int32(len(active)); i < w.replicas; i++ {
		w.newPod()
	}
	if extra := len(active) - int(w.replicas); extra > 0 {
		sort.SliceStable(active, func(i, j int) bool {
			a, b := active[i], active[j]
			if a.ready != b.ready {
				return !a.ready
			}
			if a.cost != b.cost {
				return a.cost < b.cost
			}
			return a.readyAt > b.readyAt
		})
		for _, p := range active[:extra] {
			w.terminate(p)
		}
	}
}

// lifecycle makes pods Ready, drains terminating pods and removes them when
// their drain time is over.
func (w *world) lifecycle() {
	kept := w.pods[:0]
	for _, p := range w.pods {
		if !p.terminating && !p.ready && w.t >= p.readyAt {
			p.ready, p.reports = true, true
		}
		if p.terminating {
			p.drainCarry += p.drainRate
			n := min(int64(p.drainCarry), p.conns)
			p.drainCarry -= float64(n)
			if w.t >= p.drainEnd {
				n = p.conns
			}
			p.conns -= n
			w.reconnectLater(n)
			if w.t >= p.drainEnd {
				continue // the process exits; its key is gone with it
			}
		}
		kept = append(kept, p)
	}
	w.pods = kept
}

// reconnectLater spreads n clients' reconnections evenly over the retry delay.
func (w *world) reconnectLater(n int64) {
	if n <= 0 {
		return
	}
	first := w.step + int64(w.cfg.RetryMin/w.cfg.Step)
	last := w.step + int64(w.cfg.RetryMax/w.cfg.Step)
	span := last - first + 1
	for i := range span {
		share := n / span
		if i < n%span {
			share++
		}
		if share > 0 {
			w.pending[first+i] += share
		}
	}
	w.nPending += n
}

func (w *world) connected() int64 {
	var n int64
	for _, p := range w.pods {
		n += p.conns
	}
	return n
}

// followDemand adds arriving clients and removes leaving ones (from every
// pod in proportion to its connections, then from those waiting).
func (w *world) followDemand() {
	want := int64(math.Round(w.tr.Demand(w.t)))
	have := w.connected()
	delta := want - have - w.nPending
	if delta > 0 {
		w.pending[w.step] += delta
		w.nPending += delta
		return
	}
	leave := -delta
	if leave == 0 {
		return
	}
	if have > 0 {
		take := min(leave, have)
		var taken int64
		for _, p := range w.pods {
			n := take * p.conns / have
			p.conns -= n
			taken += n
		}
		for _, p := range w.pods { // the rounding remainder, from the fullest
			if taken == take {
				break
			}
			if p.conns > 0 {
				p.conns--
				taken++
			}
		}
		leave -= taken
	}
	horizon := w.step + int64(w.cfg.RetryMax/w.cfg.Step)
	for s := w.step; s <= horizon && leave > 0; s++ {
		n := min(leave, w.pending[s])
		w.pending[s] -= n
		w.nPending -= n
		leave -= n
	}
}

// connect places n clients on the least-loaded serving pods (water-filling
// up to the per-pod cap); clients that find no room retry later.
func (w *world) connect(n int64) {
	if n <= 0 {
		return
	}
	w.nPending -= n // the caller took them from pending (or they are new)
	if w.nPending < 0 {
		w.nPending = 0
	}
	serving := w.serving()
	sort.SliceStable(serving, func(i, j int) bool { return serving[i].conns < serving[j].conns })
	left := n
	for k := 1; k <= len(serving) && left > 0; k++ {
		// Raise the k least loaded pods towards the next one's level (or the cap).
		level := w.cfg.MaxConnsPerPod
		if k < len(serving) {
			level = min(serving[k].conns, level)
		}
		room := int64(0)
		for _, p := range serving[:k] {
			room += max(level-p.conns, 0)
		}
		if room <= left {
			for _, p := range serving[:k] {
				p.conns = max(p.conns, level)
			}
			left -= room
			continue
		}
		each, extra := left/int64(k), left%int64(k)
		for i, p := range serving[:k] {
			p.conns += each
			if int64(i) < extra {
				p.conns++
			}
		}
		left = 0
	}
	if left > 0 {
		w.pending[w.step+int64(w.cfg.RetryMax/w.cfg.Step)] += left
		w.nPending += left
	}
}

// reportCounts writes each running pod's count on its own schedule.
func (w *world) reportCounts() {
	for _, p := range w.pods {
		if p.reports && w.t >= p.nextReport {
			p.report, p.reportAt, p.reported = p.conns, w.t, true
			p.nextReport += w.cfg.ReportInterval
		}
	}
}

// operator is one evaluation, as the controller will do it: observe the
// pods and the counts (expired ones missing), decide, mark deletion costs
// before a scale-down, write the replicas. The state goes through JSON
// every time, as it would through the ChatRoom status.
func (w *world) operator() {
	obs := make([]autoscale.Pod, 0, len(w.pods))
	for _, p := range w.pods {
		obs = append(obs, autoscale.Pod{
			Name: p.name, Ready: p.ready, Terminating: p.terminating,
			Reported: p.reported && w.t-p.reportAt <= w.cfg.ReportTTL, Connections: p.report,
		})
	}
	res := autoscale.Decide(w.cfg.Policy, autoscale.Input{
		Replicas: w.replicas, Pods: obs, State: w.state, Now: time.Unix(1_700_000_000, 0).Add(w.t),
	})
	b, err := json.Marshal(res.State)
	if err != nil {
		panic(err)
	}
	w.state = autoscale.State{}
	if err := json.Unmarshal(b, &w.state); err != nil {
		panic(err)
	}
	w.rep.RoundTrips++
	if res.Replicas == w.replicas {
		return
	}
	if res.Replicas < w.replicas {
		costs := autoscale.DeletionCosts(w.cfg.Policy, obs)
		for _, p := range w.pods {
			p.cost = costs[p.name]
		}
	}
	ev := ScaleEvent{At: w.t, From: w.replicas, To: res.Replicas, Reason: res.ScalingLimited.Reason}
	w.rep.Events = append(w.rep.Events, ev)
	if ev.To > ev.From {
		if w.lastDown >= 0 && w.t-w.lastDown < flapWindow {
			w.rep.Flaps++
		}
		w.lastUp = w.t
		peak := w.cfg.Policy.MinReplicas
		for _, n := range w.needHist {
			peak = max(peak, n.need)
		}
		w.rep.Overshoot = max(w.rep.Overshoot, ev.To-peak)
	} else {
		if w.lastUp >= 0 && w.t-w.lastUp < flapWindow {
			w.rep.Flaps++
		}
		w.lastDown = w.t
	}
	w.replicas = res.Replicas
	w.rep.PeakReplicas = max(w.rep.PeakReplicas, w.replicas)
}

// measure records this step's figures.
func (w *world) measure() {
	need := w.need(w.tr.Demand(w.t))
	w.rep.PeakNeed = max(w.rep.PeakNeed, need)
	w.aboveSum += float64(w.replicas - need)
	w.rep.MeanAboveNeed = w.aboveSum / float64(w.step)

	// Needs within the last flapWindow, as a decreasing deque.
	for len(w.needHist) > 0 && w.needHist[len(w.needHist)-1].need <= need {
		w.needHist = w.needHist[:len(w.needHist)-1]
	}
	w.needHist = append(w.needHist, needAt{w.t, need})
	for w.needHist[0].t < w.t-flapWindow {
		w.needHist = w.needHist[1:]
	}

	ready := int32(len(w.serving()))
	// Capacity lag per level: a level's clock starts when the load first
	// needs it, and stops when that many pods are Ready. A level the load
	// stops needing for longer than the goal's budget is forgotten.
	for k := ready + 1; k <= need; k++ {
		if _, ok := w.levelSince[k]; !ok {
			w.levelSince[k] = w.t
		}
		w.levelSeen[k] = w.t
	}
	for k, since := range w.levelSince {
		switch {
		case ready >= k:
			w.rep.CapacityLag = max(w.rep.CapacityLag, w.t-since)
			delete(w.levelSince, k)
		case w.t-w.levelSeen[k] > capacityGoal:
			delete(w.levelSince, k)
		}
	}
	for _, since := range w.levelSince { // still waiting counts too
		w.rep.CapacityLag = max(w.rep.CapacityLag, w.t-since)
	}

	hot := int64(math.Floor(1.2 * float64(w.cfg.Policy.TargetPerPod)))
	for _, p := range w.pods {
		if p.conns > w.rep.MaxPerPod {
			w.rep.MaxPerPod, w.rep.MaxPerPodAt = p.conns, w.t
		}
		if p.conns > hot {
			if p.aboveSince < 0 {
				p.aboveSince = w.t
			}
			w.rep.LongestAbove = max(w.rep.LongestAbove, w.t-p.aboveSince+w.cfg.Step)
		} else {
			p.aboveSince = -1
		}
	}
}

// The autoscaler's goals (docs/design.md), and the horizon of "flap" and "overshoot": fixed,
// so that a policy cannot pass by shortening its own windows.
const (
	flapWindow    = 5 * time.Minute
	capacityGoal  = 10 * time.Second
	overshootGoal = 1
)

func (w *world) checkGoals() {
	r := &w.rep
	fail := func(format string, args ...any) { r.Failed = append(r.Failed, fmt.Sprintf(format, args...)) }
	if r.CapacityLag > capacityGoal {
		fail("capacity %s after need (goal ≤ %s)", r.CapacityLag, capacityGoal)
	}
	if r.Overshoot > overshootGoal {
		fail("overshoot %d pods (goal ≤ %d)", r.Overshoot, overshootGoal)
	}
	if w.tr.NoFlap && r.Flaps > 0 {
		fail("%d flaps (goal 0)", r.Flaps)
	}
	if r.LongestAbove > w.cfg.Policy.Period {
		fail("a pod above 1.2 × target for %s (goal ≤ one period, %s)", r.LongestAbove, w.cfg.Policy.Period)
	}
	if w.tr.Settles {
		// The fleet must have come down as far as the policy lets it: to
		// the spare plus the pods that carry the last window's peak at
		// (1 - scale-down tolerance) × target, and no lower than need + spare.
		p := w.cfg.Policy
		peak := 0.0
		for t := w.tr.Duration - p.ScaleDownWindow; t <= w.tr.Duration; t += time.Second {
			peak = max(peak, w.tr.Demand(t))
		}
		hi := int32(math.Ceil(peak/(float64(p.TargetPerPod)*(1-p.ScaleDownTolerance)))) + p.SparePods
		hi = min(max(hi, p.MinReplicas), p.MaxReplicas)
		lo := min(max(r.FinalNeed+p.SparePods, p.MinReplicas), p.MaxReplicas)
		if r.FinalReplicas < lo || r.FinalReplicas > hi {
			fail("ends at %d replicas, outside [%d, %d] (need + spare, and what the scale-down tolerance keeps)", r.FinalReplicas, lo, hi)
		}
	}
}
