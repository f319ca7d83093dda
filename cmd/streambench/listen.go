package main

// The fleet modes, for many streamer processes and many load processes
// (hack/bench-fleet.sh): listen opens streams and checks what they receive,
// post publishes, merge adds up the listeners' figures.
//
//	streambench -mode listen -url http://127.0.0.1:18100,http://127.0.0.1:18101 -conns 16700 -expect 20,200 -source-offset 0
//	streambench -mode post -rate 10 -count 200
//	streambench -mode merge -labels "1 msg/s,10 msg/s" listener0.log listener1.log
//
// The latency of a delivery runs from the time the poster wrote into the
// message's content (`bench t=<Unix ns> ...`, taken just before the insert)
// to the return of the listener's read that completed the event: the
// poster and the listeners are separate processes on one machine's clock.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chatr-ai/chatr/internal/store"
)

// phaseTally is one reader's record in listen mode. The messages a stream
// receives after its history are numbered 1, 2, ...; phase p holds those
// numbered above targets[p-1] up to targets[p] (each stream's messages come
// in order, which is checked, so numbering is enough to tell the phases
// apart). Only the reader's loop writes it, except for the atomics.
type phaseTally struct {
	targets   []uint64 // cumulative messages per stream at the end of each phase
	lat       []hist
	max       []int64 // ns
	untimed   []uint64
	complete  []atomic.Int64 // streams that received all of phase p
	abandoned []atomic.Int64 // streams that broke before receiving all of phase p
}

func newPhaseTally(targets []uint64) *phaseTally {
	n := len(targets)
	return &phaseTally{targets: targets, lat: make([]hist, n), max: make([]int64, n), untimed: make([]uint64, n),
		complete: make([]atomic.Int64, n), abandoned: make([]atomic.Int64, n)}
}

// add records a stream's received-th message, sent at at and read at now
// (Unix ns; at 0: its content carried no time).
func (pt *phaseTally) add(received uint64, at, now int64) {
	p := 0
	for p < len(pt.targets) && received > pt.targets[p] {
		p++
	}
	if p == len(pt.targets) {
		return // beyond what was expected: counted from received
	}
	if at > 0 {
		d := now - at
		pt.lat[p].add(time.Duration(d))
		pt.max[p] = max(pt.max[p], d)
	} else {
		pt.untimed[p]++
	}
	if received == pt.targets[p] {
		pt.complete[p].Add(1)
	}
}

// gone records a stream that broke after received messages.
func (pt *phaseTally) gone(received uint64) {
	for p, t := range pt.targets {
		if received < t {
			pt.abandoned[p].Add(1)
		}
	}
}

// parseExpect reads -expect: messages per stream in each phase,
// comma-separated; it returns the cumulative counts.
func parseExpect(s string) ([]uint64, error) {
	var out []uint64
	var sum uint64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("-expect %q: want positive message counts per phase, comma-separated", s)
		}
		sum += n
		out = append(out, sum)
	}
	return out, nil
}

func parseURLs(s string) ([]*url.URL, error) {
	var us []*url.URL
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		u, err := url.Parse(f)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("-url %q: not a base URL", f)
		}
		us = append(us, u)
	}
	if len(us) == 0 {
		return nil, errors.New("-url: no streamer URL")
	}
	return us, nil
}

// failureKinds counts the clients' errors by kind, for a clear message.
func failureKinds(cs []*client) string {
	kinds := map[string]int{}
	for _, c := range cs {
		if c.err == nil {
			continue
		}
		k := c.err.Error()
		switch {
		case strings.Contains(k, "too many open files"):
			k = "too many open files (ulimit -n)"
		case k == "status 503":
			k += " (a streamer is full, CHATR_MAX_CONNECTIONS, or draining)"
		case k == "status 429":
			k += " (the per-IP limit, CHATR_STREAMS_PER_IP, fleet-wide)"
		case strings.HasPrefix(k, "status "):
		case strings.Contains(k, "connection refused"):
			k = "connection refused"
		case strings.Contains(k, "i/o timeout"):
			k = "timeout"
		case len(k) > 120:
			k = k[:120]
		}
		kinds[k]++
	}
	var parts []string
	for k, n := range kinds {
		parts = append(parts, fmt.Sprintf("%d× %s", n, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func runListen(o options) error {
	urls, err := parseURLs(o.url)
	if err != nil {
		return err
	}
	targets, err := parseExpect(o.expect)
	if err != nil {
		return err
	}
	total := targets[len(targets)-1]
	// Go raises the soft limit to the hard one at start; a stream is one
	// descriptor, plus a few for the process itself.
	if cur, hard, ok := openFileLimit(); ok {
		fmt.Printf("listen: open-file limit %d (hard %d)\n", cur, hard)
		if uint64(o.conns)+64 > cur {
			return fmt.Errorf("cannot open %d streams: this process may open %d files (ulimit -n; hard limit %d), one per stream and a few more: use more listen processes", o.conns, cur, hard)
		}
	}
	clients := make([]*client, o.conns)
	for i := range clients {
		clients[i] = &client{fd: -1, historyGot: make(chan struct{})}
		clients[i].p.times = true
	}
	sent := &sentTimes{}
	readers := make([]*reader, max(1, o.readers))
	for i := range readers {
		r, err := newReader(clients, sent, 0)
		if err != nil {
			return err
		}
		r.tally.phases = newPhaseTally(targets)
		r.resume = o.resume
		readers[i] = r
		go r.run()
	}
	stopped := false
	stopReaders := func() {
		if !stopped {
			stopped = true
			for _, r := range readers {
				r.halt()
			}
		}
	}
	defer func() {
		stopReaders()
		closeAll(clients)
	}()

	var failed atomic.Int64
	parallel := make(chan struct{}, 200)
	t0 := time.Now()
	for i, c := range clients {
		go func() {
			parallel <- struct{}{}
			r := readers[i%len(readers)]
			err := c.dial(urls[i%len(urls)], sourceAddrAt(o.sourceOffset+i%o.sources), r)
			if err == nil {
				err = r.add(i)
			}
			if err != nil {
				<-parallel
				c.err = err
				failed.Add(1)
				c.gotHistory()
				return
			}
			<-c.historyGot
			<-parallel
		}()
	}
	connectBy := time.NewTimer(o.connectTimeout)
	for i, c := range clients {
		select {
		case <-c.historyGot:
		case <-connectBy.C:
			stopReaders()
			return fmt.Errorf("after %s, %d of %d streams have their history (%d failed: %s)", o.connectTimeout, i, o.conns, failed.Load(), failureKinds(clients))
		}
	}
	connectBy.Stop()
	connected := time.Since(t0)
	if n := failed.Load(); n > 0 {
		stopReaders()
		return fmt.Errorf("%d of %d streams failed to open: %s", n, o.conns, failureKinds(clients))
	}
	fmt.Printf("listen: %d streams over %d streamers, source addresses %s-%s (%d streams each at most), %d epoll loops; connected with history in %s\n",
		o.conns, len(urls), sourceAddrAt(o.sourceOffset).IP, sourceAddrAt(o.sourceOffset+min(o.sources, o.conns)-1).IP,
		(o.conns+o.sources-1)/o.sources, len(readers), connected.Round(time.Millisecond))
	fmt.Println("ready")

	// Until every stream has every phase (or broke), a signal, or -timeout.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sig)
	ready := time.Now()
	deadline := time.NewTimer(o.timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	phase := 0
	var endedBy string
wait:
	for phase < len(targets) {
		select {
		case s := <-sig:
			endedBy = "stopped by " + s.String()
			break wait
		case <-deadline.C:
			endedBy = fmt.Sprintf("timed out after %s", o.timeout)
			break wait
		case <-tick.C:
		}
		for phase < len(targets) {
			var n int64
			for _, r := range readers {
				n += r.tally.phases.complete[phase].Load() + r.tally.phases.abandoned[phase].Load()
			}
			if n < int64(o.conns) {
				break
			}
			phase++
			fmt.Printf("phase %d complete (%s after ready)\n", phase, time.Since(ready).Round(time.Millisecond))
		}
	}
	if endedBy == "" && o.hold {
		// Every phase is complete: the streams stay open (and this
		// process's CPU countable) until the caller says stop.
		select {
		case <-sig:
		case <-deadline.C:
		}
	}
	stopReaders()
	if endedBy != "" {
		fmt.Printf("listen: %s with %d of %d phases complete\n", endedBy, phase, len(targets))
	}

	var recv, dups, ooo, extra, broken, reconnects uint64
	perPhase := make([]uint64, len(targets))
	for _, c := range clients {
		reconnects += c.reconnects
		recv += c.received
		dups += c.dups
		ooo += c.ooo
		extra += c.received - min(c.received, total)
		if c.err != nil {
			broken++
		}
		lo := uint64(0)
		for p, hi := range targets {
			perPhase[p] += min(max(c.received, lo), hi) - lo
			lo = hi
		}
	}
	n := uint64(o.conns)
	lo := uint64(0)
	var lostAll int64
	for p, hi := range targets {
		var h hist
		var mx int64
		var untimed uint64
		for _, r := range readers {
			pt := r.tally.phases
			h.merge(&pt.lat[p])
			mx = max(mx, pt.max[p])
			untimed += pt.untimed[p]
		}
		// A bucket's upper bound may lie above the slowest delivery.
		p50, p99 := min(h.quantile(0.5), time.Duration(mx)), min(h.quantile(0.99), time.Duration(mx))
		expected := (hi - lo) * n
		lost := int64(expected) - int64(perPhase[p])
		lostAll += lost
		fmt.Printf("phase %d: %d messages to %d streams: received %d of %d (lost %d), %d without a send time; fan-out p50 %s p99 %s max %s\n",
			p+1, hi-lo, n, perPhase[p], expected, lost, untimed, p50.Round(time.Microsecond), p99.Round(time.Microsecond),
			time.Duration(mx).Round(time.Microsecond))
		fmt.Printf("result phase=%d streams=%d expected=%d received=%d lost=%d untimed=%d p50_us=%d p99_us=%d max_us=%d\n",
			p+1, n, expected, perPhase[p], lost, untimed, p50.Microseconds(), p99.Microseconds(), mx/1000)
		fmt.Printf("hist phase=%d %s\n", p+1, h.encode())
		lo = hi
	}
	fmt.Printf("total streams=%d expected=%d received=%d lost=%d dup=%d ooo=%d extra=%d broken=%d reconnects=%d\n",
		n, total*n, recv, lostAll, dups, ooo, extra, broken, reconnects)
	fmt.Printf("listen: lost %d, duplicated %d, out of order %d, beyond the expected %d, broken streams %d\n", lostAll, dups, ooo, extra, broken)
	if err := firstErr(clients); err != nil {
		fmt.Printf("listen: broken streams: %s\n", failureKinds(clients))
	}
	switch {
	case lostAll != 0 || dups != 0 || ooo != 0 || extra != 0 || broken != 0:
		return fmt.Errorf("delivery was not exact: lost %d, duplicated %d, out of order %d, beyond the expected %d, broken streams %d", lostAll, dups, ooo, extra, broken)
	case endedBy != "":
		return errors.New(endedBy)
	}
	return nil
}

// encode writes the non-empty buckets as index:count, comma-separated
// ("-" if none), for merge.
func (h *hist) encode() string {
	var b strings.Builder
	for i, c := range h {
		if c == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(i))
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(c, 10))
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// decode adds the buckets encode wrote to h.
func (h *hist) decode(s string) error {
	if s == "-" {
		return nil
	}
	for _, f := range strings.Split(s, ",") {
		is, cs, ok := strings.Cut(f, ":")
		i, err1 := strconv.Atoi(is)
		c, err2 := strconv.ParseUint(cs, 10, 64)
		if !ok || err1 != nil || err2 != nil || i < 0 || i >= len(h) {
			return fmt.Errorf("bad histogram bucket %q", f)
		}
		h[i] += c
	}
	return nil
}

// runPost publishes -count messages (default -rate × -duration) at -rate,
// directly: insert into Postgres, then publish on Redis, as the API does.
// Each message's content starts with its send time, taken just before the
// insert.
func runPost(o options) error {
	ctx := context.Background()
	count := o.count
	if count <= 0 {
		count = int(o.rate * o.duration.Seconds())
	}
	if count <= 0 || o.rate <= 0 {
		return errors.New("post: -rate and -count (or -duration) must be positive")
	}
	st, b, agent, closeRoom, err := openRoom(ctx, o.common, "fleet")
	if err != nil {
		return err
	}
	defer closeRoom()
	const pad = " about the length of a typical agent's chatter in the room"
	interval := time.Duration(float64(time.Second) / o.rate)
	var took hist
	var worst, behind time.Duration
	var firstID, lastID int64
	start := time.Now()
	for k := range count {
		due := start.Add(time.Duration(k) * interval)
		time.Sleep(time.Until(due))
		t := time.Now()
		behind = max(behind, t.Sub(due))
		msgs, err := st.InsertMessages(ctx, []store.NewMessage{{Agent: agent, Content: "bench t=" + strconv.FormatInt(t.UnixNano(), 10) + pad}})
		if err != nil {
			return err
		}
		if err := b.Publish(ctx, msgs); err != nil {
			return err
		}
		d := time.Since(t)
		took.add(d)
		worst = max(worst, d)
		if firstID == 0 {
			firstID = msgs[0].ID
		}
		lastID = msgs[len(msgs)-1].ID
	}
	span := time.Since(start)
	fmt.Printf("post: %d messages (ids %d-%d) in %s at %.2f msg/s, directly (insert into Postgres, then publish on Redis); insert+publish p50 %s p99 %s max %s; behind schedule at most %s\n",
		count, firstID, lastID, span.Round(time.Millisecond), float64(count)/span.Seconds(),
		took.quantile(0.5).Round(10*time.Microsecond), took.quantile(0.99).Round(10*time.Microsecond), worst.Round(10*time.Microsecond),
		behind.Round(10*time.Microsecond))
	return nil
}

// listenResult is one listen process's output, as merge reads it.
type listenResult struct {
	phases                                             map[int]phaseResult
	streams, expected, received, lost, dup, ooo, extra int64
	broken, reconnects                                 int64
	total                                              bool
}

type phaseResult struct {
	expected, received, lost, untimed, p99us, maxus int64
	h                                               hist
	hasHist                                         bool
}

// kv reads the key=value words of a result line.
func kv(fields []string) map[string]int64 {
	m := map[string]int64{}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			m[k] = n
		}
	}
	return m
}

func readListenResult(path string) (*listenResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res := &listenResult{phases: map[int]phaseResult{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) < 2 {
			continue
		}
		switch w[0] {
		case "result":
			m := kv(w[1:])
			p := int(m["phase"])
			pr := res.phases[p]
			pr.expected, pr.received, pr.lost, pr.untimed, pr.p99us, pr.maxus = m["expected"], m["received"], m["lost"], m["untimed"], m["p99_us"], m["max_us"]
			res.phases[p] = pr
		case "hist":
			if len(w) != 3 || !strings.HasPrefix(w[1], "phase=") {
				return nil, fmt.Errorf("%s: bad line %q", path, sc.Text())
			}
			p, _ := strconv.Atoi(strings.TrimPrefix(w[1], "phase="))
			pr := res.phases[p]
			if err := pr.h.decode(w[2]); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			pr.hasHist = true
			res.phases[p] = pr
		case "total":
			m := kv(w[1:])
			res.streams, res.expected, res.received, res.lost = m["streams"], m["expected"], m["received"], m["lost"]
			res.dup, res.ooo, res.extra, res.broken, res.reconnects = m["dup"], m["ooo"], m["extra"], m["broken"], m["reconnects"]
			res.total = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !res.total {
		return nil, fmt.Errorf("%s: the listener printed no result (it failed or was killed; its output is there)", path)
	}
	return res, nil
}

// runMerge adds up the listeners' outputs (the files named as arguments):
// per phase the deliveries and a latency histogram merged from every
// listener's buckets, beside the worst listener's p99.
func runMerge(o options, files []string) error {
	if len(files) == 0 {
		return errors.New("merge: name the listeners' output files")
	}
	labels := strings.Split(o.labels, ",")
	var all []*listenResult
	nPhases := 0
	for _, f := range files {
		r, err := readListenResult(f)
		if err != nil {
			return err
		}
		all = append(all, r)
		for p := range r.phases {
			nPhases = max(nPhases, p)
		}
	}
	var t listenResult
	for _, r := range all {
		t.streams += r.streams
		t.expected += r.expected
		t.received += r.received
		t.lost += r.lost
		t.dup += r.dup
		t.ooo += r.ooo
		t.extra += r.extra
		t.broken += r.broken
		t.reconnects += r.reconnects
	}
	fmt.Printf("fleet: %d listeners, %d streams\n", len(all), t.streams)
	var untimedAll int64
	for p := 1; p <= nPhases; p++ {
		var h hist
		var exp, rec, lost, untimed, worstP99, mx int64
		for _, r := range all {
			pr := r.phases[p]
			h.merge(&pr.h)
			exp += pr.expected
			rec += pr.received
			lost += pr.lost
			untimed += pr.untimed
			worstP99 = max(worstP99, pr.p99us)
			mx = max(mx, pr.maxus)
		}
		untimedAll += untimed
		label := ""
		if p-1 < len(labels) && strings.TrimSpace(labels[p-1]) != "" {
			label = " (" + strings.TrimSpace(labels[p-1]) + ")"
		}
		us := func(n int64) time.Duration { return time.Duration(n) * time.Microsecond }
		fmt.Printf("phase %d%s: received %d of %d deliveries, lost %d; fan-out p50 %s p99 %s max %s (every delivery, merged); worst listener's p99 %s\n",
			p, label, rec, exp, lost, min(h.quantile(0.5), us(mx)).Round(time.Microsecond), min(h.quantile(0.99), us(mx)).Round(time.Microsecond), us(mx), us(worstP99))
		if untimed > 0 {
			fmt.Printf("  %d deliveries carried no send time\n", untimed)
		}
	}
	fmt.Printf("total: received %d of %d deliveries: lost %d, duplicated %d, out of order %d, beyond the expected %d, broken streams %d; streams the servers ended and that resumed from their last id: %d\n",
		t.received, t.expected, t.lost, t.dup, t.ooo, t.extra, t.broken, t.reconnects)
	if t.lost != 0 || t.dup != 0 || t.ooo != 0 || t.extra != 0 || t.broken != 0 || t.received != t.expected || untimedAll != 0 {
		return errors.New("delivery was not exact")
	}
	return nil
}
