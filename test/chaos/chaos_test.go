package chaos

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/testenv"
)

// faultTime is how long each fault lasts: short under make test, 30 s under
// make chaos (CHATR_CHAOS_FAULT).
func faultTime(t *testing.T) time.Duration {
	if s := os.Getenv("CHATR_CHAOS_FAULT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("CHATR_CHAOS_FAULT=%q: %v", s, err)
		}
		return d
	}
	return 3 * time.Second
}

// scenario is one fault: start applies it and returns what ends it (nil:
// nothing to undo, as after a crash); check, if set, runs while it lasts.
type scenario struct {
	name    string
	start   func(t *testing.T, r *room) (end func())
	during  func(t *testing.T, r *room) string // a finding for the verdict
	control bool                               // the negative control: must be caught
	pair    bool                               // the room runs on its own primary and synchronous replica
	redis   string                             // "sentinel" or "cluster": the room runs on a Redis of its own of that kind
	// long faults last at least longFault, even under make test, so that
	// their verdict can judge whether goroutines and memory stop growing.
	long bool
}

// longFault is long enough for a fault's second half to show growth: five
// times the request deadline, in which every kind of wait has timed out
// more than once.
const longFault = 10 * time.Second

func (sc scenario) faultTime(t *testing.T) time.Duration {
	if sc.long {
		return max(faultTime(t), longFault)
	}
	return faultTime(t)
}

func freeze(pick func(*part) *testenv.FaultProxy, parts func(*room) []*part) func(*testing.T, *room) func() {
	return func(t *testing.T, r *room) func() {
		for _, p := range parts(r) {
			pick(p).Pause()
		}
		return func() {
			for _, p := range parts(r) {
				pick(p).Resume()
			}
		}
	}
}

func cut(pick func(*part) *testenv.FaultProxy, parts func(*room) []*part) func(*testing.T, *room) func() {
	return func(t *testing.T, r *room) func() {
		for _, p := range parts(r) {
			pick(p).Down()
		}
		return func() {
			for _, p := range parts(r) {
				pick(p).Up()
			}
		}
	}
}

var (
	pg        = func(p *part) *testenv.FaultProxy { return p.pg }
	rd        = func(p *part) *testenv.FaultProxy { return p.rd }
	all       = func(r *room) []*part { return r.parts() }
	streamerA = func(r *room) []*part { return r.streamers[:1] }
	apiA      = func(r *room) []*part { return r.apis[:1] }
)

// notReady waits for part's readiness to fail (the Service then stops
// sending it new connections) and says how long that took.
func notReady(which func(*room) []*part) func(*testing.T, *room) string {
	return func(t *testing.T, r *room) string {
		p := which(r)[0]
		start := time.Now()
		err := testenv.Poll(context.Background(), 15*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if p.ready(ctx) == nil {
				return fmt.Errorf("%s still ready", p.name)
			}
			return nil
		})
		if err != nil {
			return "readiness: " + err.Error()
		}
		return fmt.Sprintf("%s not ready after %s", p.name, time.Since(start).Round(10*time.Millisecond))
	}
}

var scenarios = []scenario{
	{name: "no fault"},
	{name: "postgres frozen", start: freeze(pg, all), long: true},
	{name: "redis frozen", start: freeze(rd, all), long: true},
	{name: "postgres down", start: cut(pg, all)},
	{name: "redis down", start: cut(rd, all)},
	{name: "streamer-a cut off from redis (silent)", start: freeze(rd, streamerA), during: notReady(streamerA)},
	{name: "api-a cut off from postgres", start: cut(pg, apiA), during: notReady(apiA)},
	{name: "streamer-a crashes", start: func(t *testing.T, r *room) func() { r.stopPart(r.streamers[0]); return nil }},
	{name: "postgres primary fails over to its replica", pair: true, start: func(t *testing.T, r *room) func() {
		d := r.pair.failover(t)
		t.Logf("primary killed and replica promoted in %s", d.Round(time.Millisecond))
		return nil
	}},
	{name: "redis sentinel fails the master over to its replica", redis: "sentinel", start: func(t *testing.T, r *room) func() {
		d := r.sentinel.KillMaster(t)
		t.Logf("master killed and replica promoted by the Sentinels in %s", d.Round(time.Millisecond))
		return nil
	}},
	{name: "redis cluster of 3 masters", redis: "cluster"},
	{name: "redis cluster moves the room's slot", redis: "cluster", start: func(t *testing.T, r *room) func() {
		channel := bus.Key(r.schema, "messages")
		to := r.cluster.Nodes[0]
		if to == r.cluster.NodeOf(t, channel) {
			to = r.cluster.Nodes[1]
		}
		start := time.Now()
		r.cluster.MoveSlot(t, channel, to)
		t.Logf("the room's slot and its keys moved to %s in %s", to.Addr, time.Since(start).Round(time.Millisecond))
		return nil
	}},
	{name: "negative control: a reader skips a message", control: true},
}

var passed, failed atomic.Int32

func TestMain(m *testing.M) {
	code := m.Run()
	if passed.Load()+failed.Load() > 0 {
		fmt.Printf("chaos: %d passed, %d failed\n", passed.Load(), failed.Load())
	}
	os.Exit(code)
}

func TestChaos(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) {
			v := run(t, sc)
			fmt.Println(v.String())
			problems := v.problems(sc.faultTime(t))
			if sc.control {
				// The control passes when the check caught the skipped message.
				if v.lost == 0 {
					problems = []string{"the skipped message went unnoticed: the verdict cannot fail"}
				} else {
					problems = nil
				}
			}
			if len(problems) > 0 {
				failed.Add(1)
				t.Errorf("%s: %s", sc.name, strings.Join(problems, "; "))
				return
			}
			passed.Add(1)
		})
	}
}

// run plays one scenario: readers on both streamers, steady posting, the
// fault for faultTime, a few seconds after, then every reader must hold
// every accepted message.
func run(t *testing.T, sc scenario) verdict {
	var pair *pgPair
	dbURL, redisURL := "", ""
	if sc.pair {
		pair = startPGPair(t)
		dbURL = pair.url()
	}
	var sentinel *testenv.RedisSentinel
	var cluster *testenv.RedisCluster
	switch sc.redis {
	case "sentinel":
		sentinel = testenv.StartRedisSentinel(t)
		redisURL = sentinel.URL()
	case "cluster":
		cluster = testenv.StartRedisCluster(t, 3)
		redisURL = cluster.URL()
	}
	r := newRoomOn(t, dbURL, redisURL)
	r.pair, r.sentinel, r.cluster = pair, sentinel, cluster
	keys := []string{register(t, r, "poster_a"), register(t, r, "poster_b")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var readers []*reader
	urls := r.streamerURLs()
	for i := 0; i < 8; i++ {
		rot := append(append([]string(nil), urls[i%2:]...), urls[:i%2]...)
		readers = append(readers, &reader{name: fmt.Sprintf("r%d", i), ws: i%4 == 3, urls: rot})
	}
	if sc.control {
		readers[1].drop = "chaos 5"
	}
	var wg sync.WaitGroup
	for _, rd := range readers {
		wg.Go(func() { rd.run(ctx) })
	}
	// Every reader is connected before the first post.
	testenv.Eventually(t, 15*time.Second, "readers connected", func() error {
		for _, rd := range readers {
			if !rd.connected.Load() {
				return fmt.Errorf("%s has no history yet", rd.name)
			}
		}
		return nil
	})

	var p poster
	pctx, stopPosting := context.WithCancel(ctx)
	posting := make(chan struct{})
	go func() { defer close(posting); p.run(pctx, r, keys, 50*time.Millisecond) }()

	v := verdict{name: sc.name}
	waitPosts(t, &p, 10)
	var faultEnd time.Time
	if sc.start != nil {
		before := sampleServers()
		v.before = before()[0]
		stopSampling := sampleServers()
		end := sc.start(t, r)
		faultStart := time.Now()
		defer stopSampling()
		if sc.during != nil {
			v.findings = append(v.findings, sc.during(t, r))
		}
		if rest := sc.faultTime(t) - time.Since(faultStart); rest > 0 {
			time.Sleep(rest) // the fault's length is the scenario's subject, not a synchronisation
		}
		v.samples = stopSampling()
		if end != nil {
			end()
		}
		faultEnd = time.Now()
	}
	// Posting goes on until a few posts were accepted after the fault.
	afterFault := len(p.snapshot())
	testenv.Eventually(t, 60*time.Second, "posts accepted after the fault", func() error {
		n := 0
		for _, x := range p.snapshot()[afterFault:] {
			if x.id > 0 {
				n++
			}
		}
		if n < 10 {
			return fmt.Errorf("%d accepted since the fault ended", n)
		}
		return nil
	})
	stopPosting()
	<-posting
	posts := p.snapshot()

	// Every reader catches up with every accepted post (or the verdict says
	// what it lacks).
	accepted := map[int64]post{}
	for _, x := range posts {
		if x.id > 0 {
			accepted[x.id] = x
		}
	}
	_ = testenv.Poll(context.Background(), 20*time.Second, func() error {
		for _, rd := range readers {
			if rd.drop != "" {
				continue
			}
			got, _ := rd.snapshot()
			have := map[int64]bool{}
			for _, d := range got {
				have[d.id] = true
			}
			for id := range accepted {
				if !have[id] {
					return fmt.Errorf("%s lacks %d", rd.name, id)
				}
			}
		}
		return nil
	})
	cancel()
	wg.Wait()
	v.compute(t, r, posts, readers, faultEnd)
	return v
}

func waitPosts(t *testing.T, p *poster, n int) {
	testenv.Eventually(t, 30*time.Second, "the first posts accepted", func() error {
		k := 0
		for _, x := range p.snapshot() {
			if x.id > 0 {
				k++
			}
		}
		if k < n {
			return fmt.Errorf("%d accepted", k)
		}
		return nil
	})
}

// verdict is what one scenario did to the room's promises.
type verdict struct {
	name                  string
	accepted, refused     int
	errors                map[string]int
	slowest               time.Duration
	lost, dup, outOfOrder int
	missing               int // accepted, not in Postgres
	recovery              time.Duration
	worstDelay            time.Duration
	reconnects            int
	findings              []string
	// before is the servers' goroutines and the heap before the fault,
	// samples the same every 100 ms while it lasts.
	before  sample
	samples []sample
}

// harnessFrames mark the goroutines of the test itself: the workload (its
// posters, readers and their HTTP clients), the fault proxies and the
// sampler. Every other goroutine belongs to one of the room's servers.
var harnessFrames = []string{
	"testenv.(*FaultProxy)", "chaos.(*poster)", "chaos.(*reader)", "net/http.(*persistConn)",
	"net/http.(*Transport)", "chaos.sampleServers", "chaos.run", "chaos.TestChaos", "testing.",
	"github.com/gorilla/websocket.(*Dialer)",
}

// serverGoroutines counts the goroutines of the room's servers.
func serverGoroutines(buf []byte) (int, []byte) {
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		harness := false
		for _, f := range harnessFrames {
			if strings.Contains(g, f) {
				harness = true
				break
			}
		}
		if !harness {
			count++
		}
	}
	return count, buf[:cap(buf)]
}

// sample is the servers' goroutines and the process's heap at one time.
type sample struct {
	at         time.Duration // since the fault began
	goroutines int
	heap       uint64
}

// sampleServers samples every 100 ms until the returned stop is called
// (more than once is fine), and then returns the samples.
func sampleServers() (stop func() []sample) {
	done := make(chan struct{})
	finished := make(chan struct{})
	var out []sample
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		buf := make([]byte, 1<<20)
		var ms runtime.MemStats
		for {
			var n int
			n, buf = serverGoroutines(buf)
			// The live heap: what a collection now leaves in use.
			runtime.GC()
			runtime.ReadMemStats(&ms)
			out = append(out, sample{at: time.Since(start), goroutines: n, heap: ms.HeapInuse})
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() []sample {
		once.Do(func() { close(done); <-finished })
		return out
	}
}

func (v *verdict) compute(t *testing.T, r *room, posts []post, readers []*reader, faultEnd time.Time) {
	v.errors = map[string]int{}
	accepted := map[int64]post{}
	firstAfter := time.Time{}
	for _, x := range posts {
		v.slowest = max(v.slowest, x.took)
		if x.id > 0 {
			v.accepted++
			accepted[x.id] = x
			if !faultEnd.IsZero() && x.sent.After(faultEnd) && (firstAfter.IsZero() || x.sent.Add(x.took).Before(firstAfter)) {
				firstAfter = x.sent.Add(x.took)
			}
			continue
		}
		v.refused++
		v.errors[x.kind]++
	}
	if !firstAfter.IsZero() {
		v.recovery = firstAfter.Sub(faultEnd)
	}
	for _, rd := range readers {
		got, rc := rd.snapshot()
		v.reconnects += rc
		seen := map[int64]bool{}
		var prev int64
		for _, d := range got {
			if seen[d.id] {
				v.dup++
			}
			seen[d.id] = true
			if d.id < prev {
				v.outOfOrder++
			}
			prev = max(prev, d.id)
			if x, ok := accepted[d.id]; ok {
				if x.content != d.content {
					v.findings = append(v.findings, fmt.Sprintf("%s: id %d carries %q, was %q", rd.name, d.id, d.content, x.content))
				}
				v.worstDelay = max(v.worstDelay, d.at.Sub(x.sent))
			}
		}
		for id := range accepted {
			if !seen[id] {
				v.lost++
			}
		}
	}
	st := r.store(t)
	rows, err := st.Pool().Query(context.Background(), `SELECT id FROM messages`)
	if err != nil {
		t.Fatal(err)
	}
	inPG := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		inPG[id] = true
	}
	rows.Close()
	for id := range accepted {
		if !inPG[id] {
			v.missing++
		}
	}
}

// problems are the promises the scenario broke.
func (v verdict) problems(fault time.Duration) []string {
	var out []string
	if v.lost+v.dup+v.outOfOrder+v.missing > 0 {
		out = append(out, fmt.Sprintf("lost %d, duplicated %d, out of order %d, accepted but missing %d", v.lost, v.dup, v.outOfOrder, v.missing))
	}
	for kind, n := range v.errors {
		if kind != "503" {
			out = append(out, fmt.Sprintf("%d answers of kind %q (every refusal must be a JSON 503 with Retry-After)", n, kind))
		}
	}
	// Every request is answered within its deadline (2 s here), whatever
	// the fault; the 3 s of slack are for a loaded machine (one 30 s
	// Postgres freeze, at a load average of 12 on 2 cores, had an answer at
	// 4.07 s).
	if limit := 2*time.Second + testenv.Slow(3*time.Second); v.slowest > limit {
		out = append(out, fmt.Sprintf("the slowest answer took %s (more than %s)", v.slowest.Round(time.Millisecond), limit))
	}
	// Goroutines and memory stay bounded: over a fault of longFault or
	// more, the servers' goroutines and live heap peak in its second half
	// no more than 20% (and 10 goroutines, 8 MiB) above its first half. A
	// wait without a deadline, or a buffer that fills while a dependency
	// hangs, grows with the fault's length and fails this.
	if b := v.bounds(); fault >= longFault && len(v.samples) > 0 {
		if limit := b.firstG + b.firstG/5 + 10; b.secondG > limit {
			out = append(out, fmt.Sprintf("the servers' goroutines grew from %d in the fault's first half to %d in its second (more than %d)", b.firstG, b.secondG, limit))
		}
		if limit := b.firstH + b.firstH/5 + 8<<20; b.secondH > limit {
			out = append(out, fmt.Sprintf("the live heap grew from %.1f MiB in the fault's first half to %.1f MiB in its second", float64(b.firstH)/(1<<20), float64(b.secondH)/(1<<20)))
		}
	}
	// Whatever the fault and however long it lasts, an accepted message
	// reaches every reader within a bounded delay (a streamer cut off from
	// Redis fills from Postgres).
	if limit := testenv.Slow(10 * time.Second); v.worstDelay > limit {
		out = append(out, fmt.Sprintf("a delivery took %s (more than %s)", v.worstDelay.Round(time.Millisecond), limit))
	}
	for _, f := range v.findings {
		if strings.HasPrefix(f, "readiness:") || strings.Contains(f, " carries ") {
			out = append(out, f)
		}
	}
	return out
}

// growth is the peaks of the servers' goroutines and of the heap in each
// half of the fault.
type growth struct {
	firstG, secondG int
	firstH, secondH uint64
}

func (v verdict) bounds() growth {
	var g growth
	if len(v.samples) == 0 {
		return g
	}
	half := v.samples[len(v.samples)-1].at / 2
	for _, x := range v.samples {
		if x.at <= half {
			g.firstG, g.firstH = max(g.firstG, x.goroutines), max(g.firstH, x.heap)
		} else {
			g.secondG, g.secondH = max(g.secondG, x.goroutines), max(g.secondH, x.heap)
		}
	}
	return g
}

func (v verdict) String() string {
	kinds := make([]string, 0, len(v.errors))
	for k, n := range v.errors {
		kinds = append(kinds, fmt.Sprintf("%s×%d", k, n))
	}
	sort.Strings(kinds)
	errs := "none"
	if len(kinds) > 0 {
		errs = strings.Join(kinds, " ")
	}
	s := fmt.Sprintf("chaos %-44s accepted %4d refused %3d (%s) | lost %d dup %d out-of-order %d missing %d | slowest answer %s, recovery %s, worst delivery %s, reconnects %d",
		v.name+":", v.accepted, v.refused, errs, v.lost, v.dup, v.outOfOrder, v.missing,
		v.slowest.Round(time.Millisecond), v.recovery.Round(time.Millisecond), v.worstDelay.Round(time.Millisecond), v.reconnects)
	if len(v.samples) > 0 {
		b := v.bounds()
		s += fmt.Sprintf(" | servers' goroutines %d → peak %d (first half %d, second half %d), heap %.1f → peak %.1f MiB",
			v.before.goroutines, max(b.firstG, b.secondG), b.firstG, b.secondG,
			float64(v.before.heap)/(1<<20), float64(max(b.firstH, b.secondH))/(1<<20))
	}
	for _, f := range v.findings {
		s += " | " + f
	}
	return s
}
