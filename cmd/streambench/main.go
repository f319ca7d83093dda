// Command streambench loads a running streamer and checks what it delivers.
// It opens C stream connections spread over many 127.x.y.z source addresses
// (so the per-IP limit holds as in production), publishes messages the way
// the API does (insert into Postgres, then publish on Redis), and prints the
// fan-out latency (p50/p99, from the moment the insert has committed, before
// the publish, to the return of the client's read that completed the
// event), deliveries per second, lost, duplicated and out-of-order counts,
// the server's RSS per connection, and the CPU the server, the tool and the
// machine's other processes took meanwhile (the machine may be shared). It
// is self-checking: any loss, duplicate, reordering or broken stream makes
// it exit non-zero.
//
// The streams are read by epoll loops (-readers, one per CPU by default, as
// many clients would read in parallel), not by a goroutine each: on the
// server's own cores, 1,000 goroutine wake-ups per message cost the tool
// more CPU than the server spent writing.
//
//	streambench -url http://127.0.0.1:18090 -pid 1234 -mode latency -conns 1000 -rate 10
//
// Modes: latency (a message rate), throughput (as fast as the streamer takes
// them), connect (C simultaneous connects, each timed to its history event),
// idle (C idle connections, RSS per connection); and for a fleet of
// streamers and load processes (hack/bench-fleet.sh, listen.go): listen (C
// streams over several streamers, checked and timed through phases of
// broadcasts), post (publish at a rate) and merge (add up the listeners).
//
// -netns runs the tool's side of every connection in a network namespace
// of its own (the servers' CPU then excludes the clients' kernel receive
// work; hack/bench-compare.sh sets it up), and -target centrifugo loads
// Centrifugo instead of chatr with the same checks and figures.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatr-ai/chatr/internal/bus"
	"github.com/chatr-ai/chatr/internal/config"
	"github.com/chatr-ai/chatr/internal/store"
)

type options struct {
	url      string
	pid      int
	mode     string
	conns    int
	rate     float64
	duration time.Duration
	batch    int
	sources  int
	window   int
	readers  int
	verbose  bool
	resume   bool
	api      string
	agents   int
	procs    string
	common   config.Common
	// the fleet modes (listen.go)
	expect         string
	timeout        time.Duration
	connectTimeout time.Duration
	sourceOffset   int
	count          int
	labels         string
	hold           bool
	netns          string
	sourceNet      string
	serverCPU      int
	target         string
	cfKey          string
	cfSecret       string
}

func main() {
	var o options
	fs := flag.CommandLine
	config.RegisterCommon(fs, &o.common)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:18090", "streamer base URL (listen mode: comma-separated, the streams spread round-robin)")
	fs.IntVar(&o.pid, "pid", 0, "streamer process id (for RSS)")
	fs.StringVar(&o.mode, "mode", "latency", "latency | throughput | connect | idle | listen | post | merge")
	fs.IntVar(&o.conns, "conns", 1000, "stream connections")
	fs.Float64Var(&o.rate, "rate", 10, "messages per second (latency mode)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to publish")
	fs.IntVar(&o.batch, "batch", 20, "messages per insert in throughput mode")
	fs.IntVar(&o.window, "window", 400, "throughput mode: most messages published ahead of the slowest client")
	fs.IntVar(&o.readers, "readers", runtime.GOMAXPROCS(0), "epoll loops reading the streams (default: one per CPU)")
	fs.BoolVar(&o.verbose, "v", false, "latency mode: print each message's first and last delivery")
	fs.StringVar(&o.api, "api", "", "latency mode: post through this API (open loop at -rate) instead of inserting and publishing directly")
	fs.IntVar(&o.agents, "agents", 20, "with -api: agents posting in turn")
	fs.StringVar(&o.procs, "procs", "", "server processes whose CPU is reported per delivery and per post: name=pid or name=comm:NAME (every process of that command), comma-separated")
	fs.IntVar(&o.sources, "sources", 0, "distinct 127.x.y.z source addresses (0: one per 5 connections)")
	fs.StringVar(&o.expect, "expect", "", "listen mode: messages each stream must receive after its history, per phase, comma-separated (e.g. 20,200)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "listen mode: longest wait for every phase after the streams are ready")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Minute, "listen mode: longest wait for every stream's history")
	fs.IntVar(&o.sourceOffset, "source-offset", 0, "listen mode: index of the first source address (listen processes of one fleet take disjoint ranges)")
	fs.IntVar(&o.count, "count", 0, "post mode: messages to publish (0: -rate × -duration)")
	fs.StringVar(&o.labels, "labels", "", "merge mode: a name for each phase, comma-separated")
	fs.BoolVar(&o.resume, "resume", true, "listen mode: a stream the server ends (too slow a reader, a restart) reconnects with Last-Event-ID, as a client does, and must still get every message")
	fs.BoolVar(&o.hold, "hold", false, "listen mode: once every phase is complete, keep the streams open until SIGTERM or SIGINT (or -timeout), then report")
	fs.StringVar(&o.netns, "netns", "", "open the streams and the posts' connections from inside this network namespace (a path such as /run/netns/NAME); Postgres and Redis are reached from where the tool runs")
	fs.StringVar(&o.sourceNet, "source-net", "", "take the source addresses from this /16 (e.g. 10.214.0.0/16, routed to the client's side) instead of 127.0.0.0/8")
	fs.IntVar(&o.serverCPU, "server-cpu", -1, "latency mode: the CPU the server side is pinned to; its busy time (every process and interrupt on it) is reported per delivery and per post")
	fs.StringVar(&o.target, "target", "chatr", "the server under test: chatr (streamer at -url; posts through -api or directly) or centrifugo (Centrifugo at -url: its unidirectional SSE and its HTTP API; centrifugo.go)")
	fs.StringVar(&o.cfKey, "centrifugo-api-key", "", "-target centrifugo: the HTTP API key")
	fs.StringVar(&o.cfSecret, "centrifugo-secret", "", "-target centrifugo: the HMAC key its connection tokens are signed with")
	flag.Parse()
	if o.sources <= 0 {
		o.sources = max(1, o.conns/5)
	}
	err := setupDials(o)
	switch {
	case err != nil:
	case o.mode == "listen":
		err = runListen(o)
	case o.mode == "post":
		err = runPost(o)
	case o.mode == "merge":
		err = runMerge(o, flag.Args())
	case o.mode == "latency", o.mode == "throughput", o.mode == "connect", o.mode == "idle":
		err = run(o)
	default:
		err = fmt.Errorf("unknown -mode %q", o.mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streambench:", err)
		os.Exit(1)
	}
}

// setupDials applies -netns and -source-net before anything is dialled.
func setupDials(o options) error {
	if o.sourceNet != "" {
		_, n, err := net.ParseCIDR(o.sourceNet)
		if err != nil || n.IP.To4() == nil {
			return fmt.Errorf("-source-net %q: want an IPv4 /16 such as 10.214.0.0/16", o.sourceNet)
		}
		if ones, _ := n.Mask.Size(); ones != 16 {
			return fmt.Errorf("-source-net %q: want a /16", o.sourceNet)
		}
		if need := o.sourceOffset + min(o.sources, max(o.conns, 1)); need > 62500 {
			return fmt.Errorf("-source-net %s holds 62,500 source addresses; %d are needed", o.sourceNet, need)
		}
		sourceNet = n.IP.To4()
	}
	if o.netns != "" {
		return useNetns(o.netns)
	}
	return nil
}

// latency histogram: log-linear buckets from 1 µs to ~100 s, 40 per decade.
const perDecade = 40

type hist [8 * perDecade]uint64

func (h *hist) add(d time.Duration) {
	us := float64(d) / float64(time.Microsecond)
	i := 0
	if us > 1 {
		i = int(math.Log10(us) * perDecade)
	}
	if i >= len(h) {
		i = len(h) - 1
	}
	h[i]++
}

func (h *hist) merge(o *hist) {
	for i := range h {
		h[i] += o[i]
	}
}

func (h *hist) quantile(q float64) time.Duration {
	var n uint64
	for _, c := range h {
		n += c
	}
	if n == 0 {
		return 0
	}
	target := uint64(math.Ceil(q * float64(n)))
	var seen uint64
	for i, c := range h {
		seen += c
		if seen >= target {
			return time.Duration(math.Pow(10, float64(i+1)/perDecade) * float64(time.Microsecond))
		}
	}
	return 0
}

// client is one stream connection and what it saw. Once its handshake is
// read, only its reader's loop touches it (last is also read by run).
type client struct {
	last       atomic.Int64
	received   uint64
	dups, ooo  uint64
	historyAt  time.Time
	err        error
	fd         int
	p          parser
	historyGot chan struct{}
	once       sync.Once
	// where the stream was opened, for a resume (listen mode)
	u          *url.URL
	src        *net.TCPAddr
	reconnects uint64
}

func (c *client) gotHistory() { c.once.Do(func() { close(c.historyGot) }) }

// sentTimes holds, per message id (minus base), when it was published (Unix ns).
type sentTimes struct {
	base  atomic.Int64
	times []atomic.Int64
	// deferred: the times are set after the deliveries may have come (-api).
	deferred bool
}

// at returns when message id was published (0: not by this run) and its index.
func (s *sentTimes) at(id int64) (int64, int) {
	i := id - s.base.Load()
	if i < 0 || i >= int64(len(s.times)) {
		return 0, 0
	}
	return s.times[i].Load(), int(i)
}

func sourceAddr(i, sources int) *net.TCPAddr { return sourceAddrAt(i % sources) }

// sourceAddrAt is the k-th source address: 127.1.0.1, 127.1.0.2, ...
// (distinct for k below 15,875,000), or with -source-net a.b.0.1, a.b.0.2,
// ... (distinct for k below 62,500). Listen processes of one fleet take
// disjoint ranges (-source-offset), since the per-IP limit is fleet-wide.
func sourceAddrAt(k int) *net.TCPAddr {
	if sourceNet != nil {
		return &net.TCPAddr{IP: net.IPv4(sourceNet[0], sourceNet[1], byte(k/250%250), byte(1+k%250))}
	}
	return &net.TCPAddr{IP: net.IPv4(127, byte(1+k/62500), byte(k/250%250), byte(1+k%250))}
}

// sourceNet is -source-net's network (nil: 127.0.0.0/8).
var sourceNet net.IP

// dialIn opens the tool's connections to the servers under test; -netns
// makes it dial from inside another network namespace (netns_linux.go).
var dialIn = func(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	return d.DialContext(ctx, network, addr)
}

// dial opens one stream with a raw HTTP/1.1 request, reads the response
// head, and leaves the socket (c.fd) to a reader's epoll loop; the bytes of
// the body already read with the head are parsed here.
func (c *client) dial(u *url.URL, src *net.TCPAddr, r *reader) error {
	c.u, c.src = u, src
	fd, rest, now, err := open(u, src, 0)
	if err != nil {
		return err
	}
	c.fd = fd
	// What came with the head is parsed here, before the loop owns c: it
	// holds the history at most (publishing starts once every client has
	// it), so no latency is recorded (nil tally).
	return c.take(rest, now, nil)
}

// open opens one stream (a resume from lastID when it is positive, as a
// client's Last-Event-ID) and returns its descriptor and the body bytes
// read with the head, received at now (Unix ns).
func open(u *url.URL, src *net.TCPAddr, lastID int64) (fd int, rest []byte, now int64, err error) {
	d := net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}
	nc, err := dialIn(context.Background(), &d, "tcp", u.Host)
	if err != nil {
		return -1, nil, 0, err
	}
	resume := ""
	if lastID > 0 {
		resume = "Last-Event-ID: " + strconv.FormatInt(lastID, 10) + "\r\n"
	}
	if _, err := fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s\r\n", streamPath, u.Host, resume); err != nil {
		_ = nc.Close()
		return -1, nil, 0, err
	}
	br := bufio.NewReaderSize(nc, 4<<10)
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		_ = nc.Close()
		return -1, nil, 0, err
	}
	if resp.StatusCode != 200 {
		_ = nc.Close()
		return -1, nil, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		_ = nc.Close()
		return -1, nil, 0, fmt.Errorf("the stream is not chunked (%v)", resp.TransferEncoding)
	}
	peeked, _ := br.Peek(br.Buffered())
	rest = append([]byte(nil), peeked...)
	now = time.Now().UnixNano()
	_ = nc.SetReadDeadline(time.Time{})
	if fd, err = detach(nc); err != nil {
		return -1, nil, 0, err
	}
	return fd, rest, now, nil
}

// take parses bytes received at now (Unix ns), recording latencies in t.
func (c *client) take(b []byte, now int64, t *tally) error {
	err := c.p.feed(b, func(kind lineKind, id, at int64) { c.line(kind, id, at, now, t) })
	if err == nil && c.p.ended {
		err = io.EOF
	}
	return err
}

// line accounts for a history or message event received at now; at is the
// send time its content carries (listen mode; 0: none).
func (c *client) line(kind lineKind, id, at, now int64, t *tally) {
	last := c.last.Load()
	switch kind {
	case lineHistory:
		c.last.Store(id)
		c.historyAt = time.Unix(0, now)
		c.gotHistory()
	case lineMessage:
		switch {
		case last != 0 && id <= last:
			c.dups++
			return
		case last != 0 && id != last+1:
			c.ooo++
		}
		c.last.Store(id)
		c.received++
		switch {
		case t == nil:
		case t.phases != nil:
			t.phases.add(c.received, at, now)
		default:
			t.add(id, now)
		}
	}
}

// tally is one reader's latency record: a histogram of every delivery and,
// for the first perMessage messages, each one's first and last delivery.
type tally struct {
	sent          *sentTimes
	lat           hist
	first, lastOf []int64 // ns after the publish; 0: none yet
	pending       []arrival
	phases        *phaseTally // listen mode: latencies from the content's time, by phase
}

// arrival is a delivery of message id at (Unix ns).
type arrival struct{ id, at int64 }

func newTally(sent *sentTimes, perMessage int) *tally {
	return &tally{sent: sent, first: make([]int64, perMessage), lastOf: make([]int64, perMessage)}
}

func (t *tally) add(id, now int64) {
	at, k := t.sent.at(id)
	if at <= 0 {
		if t.sent.deferred {
			// Posted through the API: the id of a post is known only from
			// its answer, which may come after its deliveries.
			t.pending = append(t.pending, arrival{id, now})
		}
		return
	}
	t.record(k, now-at)
}

// settle records the deliveries that came before their post's answer.
func (t *tally) settle() {
	for _, a := range t.pending {
		if at, k := t.sent.at(a.id); at > 0 {
			t.record(k, a.at-at)
		}
	}
	t.pending = nil
}

func (t *tally) record(k int, d int64) {
	t.lat.add(time.Duration(d))
	if k < len(t.first) {
		if t.first[k] == 0 || d < t.first[k] {
			t.first[k] = d
		}
		t.lastOf[k] = max(t.lastOf[k], d)
	}
}

var (
	idPrefix   = []byte("id: ")
	msgPrefix  = []byte(`data: {"type":"message"`)
	histPrefix = []byte(`data: {"type":"history"`)
)

// cpuTicks returns the CPU time (clock ticks) used by process pid (0: this
// one) and by the whole machine (busy, all CPUs) so far.
func cpuTicks(pid int) (proc, busy int64) {
	if pid <= 0 {
		pid = os.Getpid()
	}
	proc = procTicks(pid)
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i, v := range f[1:] {
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			busy += n
		}
	}
	return proc, busy
}

// cpuUse is the CPU the server, the load tool and everything else took
// over a span: the machine is shared, and a busy neighbour shows up here.
type cpuUse struct{ server, tool, busy int64 }

func cpuNow(pid int) cpuUse {
	s, busy := cpuTicks(pid)
	t, _ := cpuTicks(0)
	return cpuUse{server: s, tool: t, busy: busy}
}

func (a cpuUse) report(b cpuUse, msgs int, span time.Duration) string {
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	server := time.Duration(b.server-a.server) * tick
	tool := time.Duration(b.tool-a.tool) * tick
	other := max(0, time.Duration(b.busy-a.busy)*tick-server-tool)
	per := func(d time.Duration) string {
		if msgs == 0 {
			return d.String()
		}
		return (d / time.Duration(msgs)).Round(10*time.Microsecond).String() + "/msg"
	}
	return fmt.Sprintf("server %s, load tool %s, other processes %.0f%% of %d CPUs",
		per(server), per(tool), 100*other.Seconds()/span.Seconds()/float64(runtime.NumCPU()), runtime.NumCPU())
}

func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	return 0
}

// openRoom connects to the room's Postgres and Redis as the API does and
// creates the agent the tool posts as (named prefix + a number).
func openRoom(ctx context.Context, c config.Common, prefix string) (*store.Store, *bus.Bus, store.Agent, func(), error) {
	st, err := store.Open(ctx, store.Options{URL: c.DatabaseURL, Schema: c.Schema, Migrate: true})
	if err != nil {
		return nil, nil, store.Agent{}, nil, err
	}
	rdb, err := bus.Connect(c.RedisURL)
	if err != nil {
		st.Close()
		return nil, nil, store.Agent{}, nil, err
	}
	closeRoom := func() { _ = rdb.Close(); st.Close() }
	agent, err := st.CreateAgent(ctx, fmt.Sprintf("%s%d", prefix, time.Now().UnixNano()%1e9), "🏎", []byte(strconv.FormatInt(time.Now().UnixNano(), 10)))
	if err != nil {
		closeRoom()
		return nil, nil, store.Agent{}, nil, err
	}
	return st, bus.New(rdb, c.Schema), agent, closeRoom, nil
}

func run(o options) error {
	ctx := context.Background()
	u, err := url.Parse(o.url)
	if err != nil {
		return err
	}
	var (
		st    *store.Store
		b     *bus.Bus
		agent store.Agent
	)
	switch o.target {
	case "chatr":
		var closeRoom func()
		if st, b, agent, closeRoom, err = openRoom(ctx, o.common, "bench"); err != nil {
			return err
		}
		defer closeRoom()
	case "centrifugo":
		if o.mode != "latency" && o.mode != "idle" {
			return errors.New("-target centrifugo runs -mode latency or idle")
		}
		if err := useCentrifugo(o); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-target %q: want chatr or centrifugo", o.target)
	}

	rssBefore := rssKB(o.pid)
	scansBefore := messageScans(ctx, st)

	// Publish like the API: insert (ids from the room counter), then publish.
	total := int(o.rate * o.duration.Seconds())
	batch := 1
	if o.mode == "throughput" {
		batch = o.batch
		total = 0
	}
	maxMsgs := max(total, 2_000_000)
	sent := &sentTimes{}
	perMessage := 0
	if o.mode == "latency" {
		sent.times = make([]atomic.Int64, maxMsgs+batch)
		perMessage = total
	} else if o.mode == "throughput" {
		sent.times = make([]atomic.Int64, maxMsgs+batch)
	}

	clients := make([]*client, o.conns)
	for i := range clients {
		clients[i] = &client{fd: -1, historyGot: make(chan struct{})}
		// Centrifugo's ids are the offsets its lines carry (centrifugo.go).
		clients[i].p.times = o.target == "centrifugo"
	}
	readers := make([]*reader, max(1, o.readers))
	for i := range readers {
		r, err := newReader(clients, sent, perMessage)
		if err != nil {
			return err
		}
		readers[i] = r
		go r.run()
	}
	var stopOnce sync.Once
	stopReaders := func() {
		stopOnce.Do(func() {
			for _, r := range readers {
				r.halt()
			}
		})
	}
	defer func() {
		stopReaders()
		closeAll(clients)
	}()
	start := make(chan struct{})
	var failed atomic.Int64
	parallel := make(chan struct{}, 200) // connect pace outside the connect test
	if o.mode == "connect" {
		parallel = make(chan struct{}, o.conns)
	}
	t0 := time.Now()
	for i, c := range clients {
		go func() {
			if o.mode == "connect" {
				<-start
			}
			parallel <- struct{}{}
			r := readers[i%len(readers)]
			err := c.dial(u, sourceAddr(i, o.sources), r)
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
	if o.mode == "connect" {
		t0 = time.Now()
		close(start)
	}
	for _, c := range clients {
		<-c.historyGot
	}
	connected := time.Since(t0)
	if n := failed.Load(); n > 0 {
		stopReaders()
		return fmt.Errorf("%d of %d connections failed (first: %v)", n, o.conns, firstErr(clients))
	}
	fmt.Printf("mode=%s conns=%d sources=%d readers=%d connected+history in %s\n", o.mode, o.conns, o.sources, len(readers), connected.Round(time.Millisecond))

	switch o.mode {
	case "connect":
		stopReaders()
		if err := firstErr(clients); err != nil {
			return fmt.Errorf("a stream failed: %w", err)
		}
		var ts []time.Duration
		for _, c := range clients {
			ts = append(ts, c.historyAt.Sub(t0))
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		time.Sleep(1500 * time.Millisecond) // Postgres flushes table statistics about every second
		scans := messageScans(ctx, st) - scansBefore
		fmt.Printf("connect: %d simultaneous; history received p50 %s p99 %s max %s; within 1s: %v; Postgres scans of messages: %d\n",
			o.conns, ts[len(ts)/2].Round(time.Millisecond), ts[len(ts)*99/100].Round(time.Millisecond), ts[len(ts)-1].Round(time.Millisecond),
			ts[len(ts)-1] <= time.Second, scans)
		return nil
	case "idle":
		// Let the server's garbage from the handshakes be collected and returned.
		time.Sleep(5 * time.Second)
		after := rssKB(o.pid)
		stopReaders()
		if err := firstErr(clients); err != nil {
			return fmt.Errorf("a stream failed: %w", err)
		}
		fmt.Printf("idle: server RSS %d MiB -> %d MiB with %d connections: %.2f KiB per connection\n",
			rssBefore>>10, after>>10, o.conns, float64(after-rssBefore)/float64(o.conns))
		return nil
	}

	var poster *openLoop
	if o.target == "centrifugo" {
		// A fresh channel's offsets start at 1; they come with the answers.
		sent.base.Store(1)
		sent.deferred = true
		poster = newCentrifugoPoster(o.url, o.cfKey)
	} else {
		lastID, err := st.Counters(ctx)
		if err != nil {
			stopReaders()
			return err
		}
		sent.base.Store(lastID.LastMessageID + 1)
	}
	if o.api != "" && poster == nil {
		if o.mode != "latency" {
			stopReaders()
			return errors.New("-api posts at a fixed rate: use it with -mode latency")
		}
		if poster, err = newAPIPoster(ctx, o.api, o.agents); err != nil {
			stopReaders()
			return err
		}
		sent.deferred = true
	}
	procs, err := parseProcs(o.procs)
	if err != nil {
		stopReaders()
		return err
	}
	proc0 := procs.ticks()
	core0 := coreTicks(o.serverCPU)
	cpu0 := cpuNow(o.pid)
	pubStart := time.Now()
	posted := 0
	var interval time.Duration
	if o.mode == "latency" {
		interval = time.Duration(float64(time.Second) / o.rate)
	}
	next := time.Now()
	var lastPosted int64
	if poster != nil {
		lastPosted = poster.run(ctx, total, o.rate, sent)
		posted = poster.posted
	}
	for poster == nil && time.Since(pubStart) < o.duration && posted+batch <= maxMsgs {
		if interval > 0 {
			time.Sleep(time.Until(next))
			next = next.Add(interval)
		} else {
			// Full rate is what the streamer sustains: publish ahead of the
			// slowest client by at most a window, as a steady room would.
			for lastPosted-slowest(clients) > int64(o.window) && time.Since(pubStart) < o.duration {
				time.Sleep(200 * time.Microsecond)
			}
		}
		nm := make([]store.NewMessage, batch)
		for i := range nm {
			nm[i] = store.NewMessage{Agent: agent, Content: "bench message, about the length of a typical agent's chatter in the room"}
		}
		msgs, err := st.InsertMessages(ctx, nm)
		if err != nil {
			stopReaders()
			return err
		}
		// The clock starts when the insert has committed, before the publish.
		now := time.Now().UnixNano()
		for _, m := range msgs {
			sent.times[m.ID-sent.base.Load()].Store(now)
		}
		if err := b.Publish(ctx, msgs); err != nil {
			stopReaders()
			return err
		}
		posted += len(msgs)
		lastPosted = msgs[len(msgs)-1].ID
	}
	pubTime := time.Since(pubStart)
	// Wait for the stragglers (bounded).
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && slowest(clients) < lastPosted {
		time.Sleep(time.Millisecond)
	}
	allTime := time.Since(pubStart)
	cpu1 := cpuNow(o.pid)
	core1 := coreTicks(o.serverCPU)
	proc1 := procs.ticks()
	stopReaders()
	for _, r := range readers {
		r.tally.settle()
	}
	var h hist
	var recv, dups, ooo uint64
	first := make([]int64, perMessage)
	lastOf := make([]int64, perMessage)
	for _, r := range readers {
		h.merge(&r.tally.lat)
		for k := range first {
			if f := r.tally.first[k]; f > 0 && (first[k] == 0 || f < first[k]) {
				first[k] = f
			}
			lastOf[k] = max(lastOf[k], r.tally.lastOf[k])
		}
	}
	for _, c := range clients {
		recv += c.received
		dups += c.dups
		ooo += c.ooo
	}
	lost := int64(posted)*int64(o.conns) - int64(recv)
	fmt.Printf("%s: %d messages in %s (%.0f msg/s) to %d clients\n", o.mode, posted, pubTime.Round(time.Millisecond), float64(posted)/pubTime.Seconds(), o.conns)
	fmt.Printf("  fan-out latency p50 %s p99 %s (publish -> client read, every delivery)\n", h.quantile(0.50).Round(time.Microsecond), h.quantile(0.99).Round(time.Microsecond))
	if perMessage > 0 && o.verbose {
		fmt.Print("  each message, first/last client (ms):")
		for k := range first {
			fmt.Printf(" %.1f/%.1f", float64(first[k])/1e6, float64(lastOf[k])/1e6)
		}
		fmt.Println()
	}
	if perMessage > 0 {
		fmt.Printf("  per message: first client p50 %s, last client p50 %s max %s\n",
			median(first).Round(time.Microsecond), median(lastOf).Round(time.Microsecond), maxDur(lastOf).Round(time.Microsecond))
	}
	fmt.Printf("  deliveries %d in %s: %.0f deliveries/s\n", recv, allTime.Round(time.Millisecond), float64(recv)/allTime.Seconds())
	fmt.Printf("  lost %d, duplicated %d, out of order %d\n", lost, dups, ooo)
	fmt.Printf("  CPU while publishing: %s\n", cpu0.report(cpu1, posted, allTime))
	if poster != nil {
		fmt.Printf("  %s\n", poster.report())
	}
	if len(procs) > 0 {
		fmt.Printf("  %s\n", procs.report(proc0, proc1, int64(recv), int64(posted)))
	}
	if o.serverCPU >= 0 {
		fmt.Printf("  %s\n", coreReport(o.serverCPU, core0, core1, int64(recv), int64(posted)))
	}
	fmt.Printf("  server RSS %d MiB (%.2f KiB per connection over the start)\n", rssKB(o.pid)>>10, float64(rssKB(o.pid)-rssBefore)/float64(o.conns))
	if err := firstErr(clients); err != nil {
		return fmt.Errorf("a stream failed: %w", err)
	}
	if lost != 0 || dups != 0 || ooo != 0 {
		return fmt.Errorf("delivery was not exact: lost %d, duplicated %d, out of order %d", lost, dups, ooo)
	}
	return nil
}

// median and maxDur summarize per-message latencies (ns; 0: not delivered).
func median(ns []int64) time.Duration {
	var v []int64
	for _, n := range ns {
		if n > 0 {
			v = append(v, n)
		}
	}
	if len(v) == 0 {
		return 0
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return time.Duration(v[len(v)/2])
}

func maxDur(ns []int64) time.Duration {
	var m int64
	for _, n := range ns {
		m = max(m, n)
	}
	return time.Duration(m)
}

func slowest(cs []*client) int64 {
	m := int64(math.MaxInt64)
	for _, c := range cs {
		m = min(m, c.last.Load())
	}
	return m
}

func closeAll(cs []*client) {
	for _, c := range cs {
		if c.fd >= 0 {
			closeFD(c.fd)
			c.fd = -1
		}
	}
}

func firstErr(cs []*client) error {
	for _, c := range cs {
		if c.err != nil {
			return c.err
		}
	}
	return nil
}

// messageScans is how often the room's messages table was scanned (Postgres
// statistics): the connect test shows it does not move.
func messageScans(ctx context.Context, st *store.Store) int64 {
	if st == nil {
		return 0
	}
	var n int64
	_ = st.Pool().QueryRow(ctx, `SELECT coalesce(seq_scan,0) + coalesce(idx_scan,0) FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'messages'`, st.Schema()).Scan(&n)
	return n
}
