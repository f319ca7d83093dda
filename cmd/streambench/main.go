// Command streambench loads a running streamer and checks what it delivers.
// It opens C stream connections spread over many 127.x.y.z source addresses
// (so the per-IP limit holds as in production), publishes messages the way
// the API does (insert into Postgres, then publish on Redis), and prints the
// fan-out latency (p50/p99, from just before the publish to the client's
// read), deliveries per second, lost, duplicated and out-of-order counts,
// and the server's RSS per connection. It is self-checking: any loss,
// duplicate or reordering makes it exit non-zero.
//
//	streambench -url http://127.0.0.1:18090 -pid 1234 -mode latency -conns 1000 -rate 10
//
// Modes: latency (a message rate), throughput (as fast as the streamer takes
// them), connect (C simultaneous connects, each timed to its history event),
// idle (C idle connections, RSS per connection).
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
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
	common   config.Common
}

func main() {
	var o options
	fs := flag.CommandLine
	config.RegisterCommon(fs, &o.common)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:18090", "streamer base URL")
	fs.IntVar(&o.pid, "pid", 0, "streamer process id (for RSS)")
	fs.StringVar(&o.mode, "mode", "latency", "latency | throughput | connect | idle")
	fs.IntVar(&o.conns, "conns", 1000, "stream connections")
	fs.Float64Var(&o.rate, "rate", 10, "messages per second (latency mode)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to publish")
	fs.IntVar(&o.batch, "batch", 20, "messages per insert in throughput mode")
	fs.IntVar(&o.window, "window", 400, "throughput mode: most messages published ahead of the slowest client")
	fs.IntVar(&o.sources, "sources", 0, "distinct 127.x.y.z source addresses (0: one per 5 connections)")
	flag.Parse()
	if o.sources <= 0 {
		o.sources = max(1, o.conns/5)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "streambench:", err)
		os.Exit(1)
	}
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

// client is one stream connection and what it saw.
type client struct {
	last       int64
	received   uint64
	dups, ooo  uint64
	lat        hist
	historyAt  time.Time
	err        error
	conn       net.Conn
	historyGot chan struct{}
}

// sent holds, per message id (minus base), when it was published (Unix ns).
type sentTimes struct {
	base  int64
	times []atomic.Int64
}

func (s *sentTimes) at(id int64) int64 {
	i := id - s.base
	if i < 0 || i >= int64(len(s.times)) {
		return 0
	}
	return s.times[i].Load()
}

func sourceAddr(i, sources int) *net.TCPAddr {
	k := i % sources
	return &net.TCPAddr{IP: net.IPv4(127, byte(1+k/62500), byte(k/250%250), byte(1+k%250))}
}

// dial opens one stream with a raw HTTP/1.1 request and returns the body reader.
func (c *client) dial(u *url.URL, src *net.TCPAddr, bufSize int) (*bufio.Reader, error) {
	d := net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	c.conn = nc
	if _, err := fmt.Fprintf(nc, "GET /api/stream HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", u.Host); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, bufSize)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return bufio.NewReaderSize(resp.Body, bufSize), nil
}

var (
	idPrefix   = []byte("id: ")
	msgPrefix  = []byte(`data: {"type":"message"`)
	histPrefix = []byte(`data: {"type":"history"`)
)

// read parses the stream: id lines give the order, the send table the latency.
func (c *client) read(br *bufio.Reader, sent *sentTimes) {
	var id int64
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err != bufio.ErrBufferFull {
				c.err = err
				return
			}
		}
		now := time.Now().UnixNano()
		switch {
		case bytes.HasPrefix(line, idPrefix):
			id, _ = strconv.ParseInt(string(bytes.TrimSpace(line[len(idPrefix):])), 10, 64)
		case bytes.HasPrefix(line, histPrefix):
			atomic.StoreInt64(&c.last, id)
			c.historyAt = time.Now()
			close(c.historyGot)
		case bytes.HasPrefix(line, msgPrefix):
			switch {
			case c.last != 0 && id <= c.last:
				c.dups++
				continue
			case c.last != 0 && id != c.last+1:
				c.ooo++
			}
			atomic.StoreInt64(&c.last, id)
			c.received++
			if t := sent.at(id); t > 0 {
				c.lat.add(time.Duration(now - t))
			}
		}
	}
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

func run(o options) error {
	ctx := context.Background()
	u, err := url.Parse(o.url)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, store.Options{URL: o.common.DatabaseURL, Schema: o.common.Schema, Migrate: true})
	if err != nil {
		return err
	}
	defer st.Close()
	rdb, err := bus.Connect(o.common.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	b := bus.New(rdb, o.common.Schema)
	agent, err := st.CreateAgent(ctx, fmt.Sprintf("bench%d", time.Now().UnixNano()%1e9), "🏎", []byte(strconv.FormatInt(time.Now().UnixNano(), 10)))
	if err != nil {
		return err
	}

	rssBefore := rssKB(o.pid)
	scansBefore := messageScans(ctx, st)
	bufSize := 64 << 10
	if o.mode == "idle" || o.mode == "connect" {
		bufSize = 4 << 10
	}
	clients := make([]*client, o.conns)
	sent := &sentTimes{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	var failed atomic.Int64
	parallel := make(chan struct{}, 200) // connect pace outside the connect test
	if o.mode == "connect" {
		parallel = make(chan struct{}, o.conns)
	}
	t0 := time.Now()
	for i := range clients {
		c := &client{historyGot: make(chan struct{})}
		clients[i] = c
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if o.mode == "connect" {
				<-start
			}
			parallel <- struct{}{}
			br, err := c.dial(u, sourceAddr(i, o.sources), bufSize)
			if err != nil {
				<-parallel
				c.err = err
				failed.Add(1)
				close(c.historyGot)
				return
			}
			go func() { <-c.historyGot; <-parallel }()
			c.read(br, sent)
		}(i)
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
		return fmt.Errorf("%d of %d connections failed (first: %v)", n, o.conns, firstErr(clients))
	}
	fmt.Printf("mode=%s conns=%d sources=%d connected+history in %s\n", o.mode, o.conns, o.sources, connected.Round(time.Millisecond))

	switch o.mode {
	case "connect":
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
		closeAll(clients)
		return nil
	case "idle":
		// Let the server's garbage from the handshakes be collected and returned.
		time.Sleep(5 * time.Second)
		after := rssKB(o.pid)
		fmt.Printf("idle: server RSS %d MiB -> %d MiB with %d connections: %.2f KiB per connection\n",
			rssBefore>>10, after>>10, o.conns, float64(after-rssBefore)/float64(o.conns))
		closeAll(clients)
		return nil
	}

	// Publish like the API: insert (ids from the room counter), then publish.
	total := int(o.rate * o.duration.Seconds())
	batch := 1
	if o.mode == "throughput" {
		batch = o.batch
		total = 0
	}
	maxMsgs := max(total, 2_000_000)
	sent.times = make([]atomic.Int64, maxMsgs+batch)
	lastID, err := st.Counters(ctx)
	if err != nil {
		return err
	}
	sent.base = lastID.LastMessageID + 1
	pubStart := time.Now()
	posted := 0
	var interval time.Duration
	if o.mode == "latency" {
		interval = time.Duration(float64(time.Second) / o.rate)
	}
	next := time.Now()
	var lastPosted int64
	for time.Since(pubStart) < o.duration && posted+batch <= maxMsgs {
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
			return err
		}
		now := time.Now().UnixNano()
		for _, m := range msgs {
			sent.times[m.ID-sent.base].Store(now)
		}
		if err := b.Publish(ctx, msgs); err != nil {
			return err
		}
		posted += len(msgs)
		lastPosted = msgs[len(msgs)-1].ID
	}
	pubTime := time.Since(pubStart)
	// Wait for the stragglers (bounded).
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		done := true
		for _, c := range clients {
			if atomic.LoadInt64(&c.last) < lastPosted {
				done = false
				break
			}
		}
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	allTime := time.Since(pubStart)
	closeAll(clients)
	wg.Wait()
	var h hist
	var recv, dups, ooo uint64
	for _, c := range clients {
		h.merge(&c.lat)
		recv += c.received
		dups += c.dups
		ooo += c.ooo
	}
	lost := int64(posted)*int64(o.conns) - int64(recv)
	fmt.Printf("%s: %d messages in %s (%.0f msg/s) to %d clients\n", o.mode, posted, pubTime.Round(time.Millisecond), float64(posted)/pubTime.Seconds(), o.conns)
	fmt.Printf("  fan-out latency p50 %s p99 %s\n", h.quantile(0.50).Round(time.Microsecond), h.quantile(0.99).Round(time.Microsecond))
	fmt.Printf("  deliveries %d in %s: %.0f deliveries/s\n", recv, allTime.Round(time.Millisecond), float64(recv)/allTime.Seconds())
	fmt.Printf("  lost %d, duplicated %d, out of order %d\n", lost, dups, ooo)
	fmt.Printf("  server RSS %d MiB (%.2f KiB per connection over the start)\n", rssKB(o.pid)>>10, float64(rssKB(o.pid)-rssBefore)/float64(o.conns))
	if lost != 0 || dups != 0 || ooo != 0 {
		return fmt.Errorf("delivery was not exact: lost %d, duplicated %d, out of order %d", lost, dups, ooo)
	}
	return nil
}

func slowest(cs []*client) int64 {
	m := int64(math.MaxInt64)
	for _, c := range cs {
		m = min(m, atomic.LoadInt64(&c.last))
	}
	return m
}

func closeAll(cs []*client) {
	for _, c := range cs {
		if c.conn != nil {
			_ = c.conn.Close()
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
	var n int64
	_ = st.Pool().QueryRow(ctx, `SELECT coalesce(seq_scan,0) + coalesce(idx_scan,0) FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'messages'`, st.Schema()).Scan(&n)
	return n
}
