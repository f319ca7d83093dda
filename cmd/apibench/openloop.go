package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chatr-ai/chatr/components/api"
	"github.com/chatr-ai/chatr/internal/config"
)

// openLoop is the fixed-arrival-rate benchmark: post i is due at
// start + i/rate, whatever happened to the posts before it, and its latency
// is the time from when it was due to when its answer was read. A post that
// waits for a free worker (all busy: the server fell behind) counts that wait,
// so a stall shows in the percentiles instead of silently lowering the rate.
type openLoop struct {
	url              string
	agents           int
	rate             float64
	workers          int
	duration, warmup time.Duration
	pid              int
	dbURL, redisURL  string
	batch, conns     int
	clientTimeout    time.Duration
	keys             []string
	schedule         chan due
	results          []result // of the measured posts, by index from the first
	measureFrom      time.Time
	// scheduled, when set, is called once every post has been queued.
	scheduled func()
}

// due is one scheduled post.
type due struct {
	i  int
	at time.Time
}

// result is what happened to one measured post.
type result struct {
	due  time.Time
	lat  time.Duration // from its due time to its answer
	lag  time.Duration // from its due time to when a worker sent it
	done time.Time
	kind string // "" for a 200, else the error kind
}

func (o *openLoop) run() error {
	if o.url == "" && o.pid > 0 {
		return errors.New("-pid measures a separate server: give its -url too")
	}
	var srv *api.Server
	where := o.url
	if o.url == "" {
		var stop func()
		var err error
		srv, o.url, where, stop, err = startServer(o.dbURL, o.redisURL, o.batch, o.conns)
		if err != nil {
			return err
		}
		defer stop()
	}
	if o.clientTimeout == 0 {
		o.clientTimeout = 10 * time.Second
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: o.workers, MaxIdleConnsPerHost: o.workers,
		MaxConnsPerHost: o.workers, IdleConnTimeout: time.Minute}, Timeout: o.clientTimeout}
	var err error
	o.keys, err = registerAgents(client, o.url, o.agents)
	if err != nil {
		return err
	}
	fmt.Printf("apibench open loop: %.0f posts/s for %s after %s warm-up, %d agents, ≤ %d in flight, GOMAXPROCS=%d, against %s\n",
		o.rate, o.duration, o.warmup, o.agents, o.workers, runtime.GOMAXPROCS(0), where)

	total := int(o.rate * (o.warmup + o.duration).Seconds())
	first := int(o.rate * o.warmup.Seconds()) // the first measured post
	o.schedule = make(chan due, total)        // never full: the schedule never waits for the workers
	o.results = make([]result, total-first)
	var wg sync.WaitGroup
	for w := 0; w < o.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.work(client, first)
		}()
	}
	start := time.Now().Add(50 * time.Millisecond)
	o.measureFrom = start.Add(o.warmup)
	interval := float64(time.Second) / o.rate
	var cpu0 float64
	cpuRead := false
	for i := 0; i < total; {
		now := time.Now()
		if i == first && !cpuRead {
			cpu0, err = procCPU(o.pid)
			if err != nil {
				return err
			}
			cpuRead = true
		}
		// Queue every post due by now (the sender may have slept late; the
		// latencies count from the due times, so that costs nothing).
		for i < total {
			at := start.Add(time.Duration(float64(i) * interval))
			if at.After(now) {
				break
			}
			if i == first && !cpuRead {
				break
			}
			o.schedule <- due{i: i, at: at}
			i++
		}
		if i < total {
			if next := start.Add(time.Duration(float64(i) * interval)); next.After(now) {
				time.Sleep(next.Sub(now))
			}
		}
	}
	close(o.schedule)
	if o.scheduled != nil {
		o.scheduled()
	}
	wg.Wait()
	cpu1, err := procCPU(o.pid)
	if err != nil {
		return err
	}
	o.report(srv, cpu1-cpu0)
	return nil
}

// work sends scheduled posts until the schedule ends.
func (o *openLoop) work(client *http.Client, first int) {
	for d := range o.schedule {
		key := o.keys[d.i%len(o.keys)]
		body := `{"content":"open-loop bench message ` + strconv.Itoa(d.i) + `"}`
		sent := time.Now()
		kind := postKind(client, o.url, key, body)
		now := time.Now()
		if d.i < first {
			continue
		}
		o.results[d.i-first] = result{due: d.at, lat: now.Sub(d.at), lag: sent.Sub(d.at), done: now, kind: kind}
	}
}

// postKind posts once and names the failure: "" for a 200, "http <status>",
// "timeout", "connection refused", "connection reset", "eof" or the error.
func postKind(c *http.Client, url, key, body string) string {
	req, _ := http.NewRequest("POST", url+"/api/messages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return errKind(err)
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "http " + strconv.Itoa(res.StatusCode)
	}
	if err != nil {
		return errKind(err)
	}
	return ""
}

func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	msg := err.Error()
	if len(msg) > 60 {
		msg = msg[:60]
	}
	return msg
}

func (o *openLoop) report(srv *api.Server, cpu float64) {
	var lat, lag []time.Duration
	kinds := map[string]int{}
	last := o.measureFrom
	for _, r := range o.results {
		if r.done.After(last) {
			last = r.done
		}
		lag = append(lag, r.lag)
		if r.kind != "" {
			kinds[r.kind]++
			continue
		}
		lat = append(lat, r.lat)
	}
	slices.Sort(lat)
	slices.Sort(lag)
	elapsed := last.Sub(o.measureFrom)
	ok := len(lat)
	fmt.Printf("posts:      %d due, %d ok, %d failed; the last answered %.2fs after the first was due\n",
		len(o.results), ok, len(o.results)-ok, elapsed.Seconds())
	fmt.Printf("rate:       %.0f posts/s achieved (target %.0f)\n", float64(ok)/elapsed.Seconds(), o.rate)
	fmt.Printf("latency:    p50 %s  p90 %s  p99 %s  max %s  (from the due time)\n",
		ms(pctOf(lat, .50)), ms(pctOf(lat, .90)), ms(pctOf(lat, .99)), ms(pctOf(lat, 1)))
	fmt.Printf("send lag:   p99 %s  max %s  (due time to send: the load tool or its %d connections behind)\n",
		ms(pctOf(lag, .99)), ms(pctOf(lag, 1)), o.workers)
	if len(kinds) > 0 {
		names := make([]string, 0, len(kinds))
		for k := range kinds {
			names = append(names, k)
		}
		sort.Strings(names)
		var b bytes.Buffer
		for _, k := range names {
			fmt.Fprintf(&b, "  %s: %d", k, kinds[k])
		}
		fmt.Printf("errors:    %s\n", b.String())
	} else {
		fmt.Println("errors:     none")
	}
	if o.pid > 0 && ok > 0 {
		fmt.Printf("server cpu: %.1f µs per post, %.0f%% of a core (pid %d, utime+stime)\n",
			cpu*1e6/float64(ok), 100*cpu/elapsed.Seconds(), o.pid)
	}
	if n, sum := batchStats(srv); n > 0 {
		fmt.Printf("group commit: %.1f posts per transaction (whole run)\n", sum/n)
	}
}

// pctOf is the p-th quantile of sorted d (0 when empty).
func pctOf(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(p*float64(len(d))))]
}

// procCPU is the user+system CPU seconds of process pid (0 without one).
func procCPU(pid int) (float64, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("while reading the server's CPU time: %w", err)
	}
	// The command name (field 2) is parenthesised and may hold spaces:
	// fields are counted after its closing parenthesis.
	rest := string(b[bytes.LastIndexByte(b, ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64) // field 14
	st, err2 := strconv.ParseFloat(f[12], 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return (ut + st) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// benchConnsPerIP is the per-address connection cap of the benchmark's
// servers: all the load tool's connections share one address, where a real
// room's clients have many. The in-flight cap and the request deadline stay
// as they are: shedding load is part of what is measured.
const benchConnsPerIP = 1 << 16

// printServerEnv prints l as the environment of a `chatrd api`.
func printServerEnv(l config.Limits) {
	for _, kv := range []struct {
		k string
		v any
	}{
		{"CHATR_VERIFIED_MESSAGES", l.VerifiedMessages}, {"CHATR_VERIFIED_WINDOW", l.VerifiedWindow},
		{"CHATR_UNVERIFIED_MESSAGES", l.UnverifiedMessages}, {"CHATR_UNVERIFIED_WINDOW", l.UnverifiedWindow},
		{"CHATR_REGISTRATIONS_PER_IP", l.RegistrationsPerIP}, {"CHATR_REGISTRATION_WINDOW", l.RegistrationWindow},
		{"CHATR_REQUESTS_PER_IP", l.RequestsPerIP}, {"CHATR_REQUEST_WINDOW", l.RequestWindow},
		// Every connection of the load tool comes from one address.
		{"CHATR_CONNS_PER_IP", benchConnsPerIP},
	} {
		fmt.Printf("export %s=%v\n", kv.k, kv.v)
	}
}
