package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// serverProc is one server process (or every process of one command, such
// as Postgres' backends) whose CPU time the benchmark reports.
type serverProc struct {
	name string
	pid  int    // 0: by command
	comm string // with pid 0: /proc/<pid>/comm to match
}

type serverProcs []serverProc

// parseProcs reads -procs: name=pid or name=comm:NAME, comma-separated.
func parseProcs(s string) (serverProcs, error) {
	var ps serverProcs
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		name, v, ok := strings.Cut(f, "=")
		if !ok || name == "" || v == "" {
			return nil, fmt.Errorf("-procs %q: want name=pid or name=comm:NAME", f)
		}
		if comm, ok := strings.CutPrefix(v, "comm:"); ok {
			ps = append(ps, serverProc{name: name, comm: comm})
			continue
		}
		pid, err := strconv.Atoi(v)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("-procs %q: %q is not a process id", f, v)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
			return nil, fmt.Errorf("-procs %q: no such process", f)
		}
		ps = append(ps, serverProc{name: name, pid: pid})
	}
	return ps, nil
}

// ticks returns each process's CPU time so far (utime+stime, clock ticks),
// in the order of ps. A command's processes are summed over those alive now:
// a process that ended in between takes its time with it, so long-lived
// connections (pools) are what this counts well.
func (ps serverProcs) ticks() []int64 {
	out := make([]int64, len(ps))
	var all []string
	for i, p := range ps {
		if p.pid > 0 {
			out[i] = procTicks(p.pid)
			continue
		}
		if all == nil {
			all, _ = filepath.Glob("/proc/[0-9]*")
		}
		for _, d := range all {
			if b, err := os.ReadFile(d + "/comm"); err == nil && string(bytes.TrimSpace(b)) == p.comm {
				pid, _ := strconv.Atoi(filepath.Base(d))
				out[i] += procTicks(pid)
			}
		}
	}
	return out
}

// procTicks is utime+stime of one process (0 if it is gone).
func procTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command's closing parenthesis: utime and stime
	// are the 12th and 13th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) <= 12 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// report prints the CPU each process took between a and b, per delivery
// and per post, and the sum. The line is parsed by hack/bench-compare.sh:
//
//	server cpu per delivery: all 2.91 µs, streamer 1.90 µs, ...; per post: all 290 µs, streamer 190 µs, ...
func (ps serverProcs) report(a, b []int64, deliveries, posts int64) string {
	const tick = float64(10 * time.Millisecond / time.Microsecond) // USER_HZ is 100 on Linux
	var total int64
	for i := range ps {
		total += b[i] - a[i]
	}
	per := func(n int64) string {
		if n == 0 {
			return "n/a"
		}
		parts := []string{fmt.Sprintf("all %.2f µs", float64(total)*tick/float64(n))}
		for i, p := range ps {
			parts = append(parts, fmt.Sprintf("%s %.2f µs", p.name, float64(b[i]-a[i])*tick/float64(n)))
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprintf("server cpu per delivery: %s; per post: %s", per(deliveries), per(posts))
}

// coreTicks is the time CPU cpu has been busy so far (clock ticks: user,
// nice, system, irq, softirq and steal; not idle or iowait), whatever ran
// there: with the server side pinned to that core, this counts the kernel
// work no process is charged for, such as network receive processing that
// lands while the core is otherwise idle.
func coreTicks(cpu int) int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	return coreTicksIn(b, cpu)
}

// coreTicksIn reads CPU cpu's busy ticks from the text of /proc/stat.
func coreTicksIn(b []byte, cpu int) int64 {
	name := "cpu" + strconv.Itoa(cpu)
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 9 || f[0] != name {
			continue
		}
		var busy int64
		for i, v := range f[1:9] {
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			busy += n
		}
		return busy
	}
	return 0
}

// coreReport prints the core's busy time between a and b per delivery and
// per post. Parsed by hack/bench-compare.sh:
//
//	server core (CPU 0) busy per delivery: 3.10 µs; per post: 3100.00 µs
func coreReport(cpu int, a, b, deliveries, posts int64) string {
	const tick = float64(10 * time.Millisecond / time.Microsecond)
	per := func(n int64) string {
		if n == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f µs", float64(b-a)*tick/float64(n))
	}
	return fmt.Sprintf("server core (CPU %d) busy per delivery: %s; per post: %s", cpu, per(deliveries), per(posts))
}
