// Command scalesim drives the streamer autoscaler (internal/autoscale, the
// very code the operator runs) through load traces in simulated time, and
// checks the autoscaler's goals (docs/design.md) at 5,000 connections per pod: capacity
// within 10 s of need, overshoot of at most one pod, no flap on a noisy
// plateau, no pod above 1.2 × target for more than one period. It exits 1
// when a goal fails, so CI can run it:
//
//	go run ./cmd/scalesim            # every trace, default policy
//	go run ./cmd/scalesim -trace surge -events -spare 0
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("scalesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.String("trace", "", "run only this trace (surge, daily, storm, plateau)")
	events := fs.Bool("events", false, "print every scale event")
	spare := fs.Int("spare", int(cfg.Policy.SparePods), "policy: spare pods")
	minReplicas := fs.Int("min", int(cfg.Policy.MinReplicas), "policy: minimum replicas")
	upTol := fs.Float64("up-tolerance", cfg.Policy.ScaleUpTolerance, "policy: scale-up tolerance")
	downTol := fs.Float64("down-tolerance", cfg.Policy.ScaleDownTolerance, "policy: scale-down tolerance")
	downWindow := fs.Duration("down-window", cfg.Policy.ScaleDownWindow, "policy: scale-down stabilization window")
	fs.DurationVar(&cfg.SyncInterval, "sync", cfg.SyncInterval, "world: operator evaluation interval")
	fs.DurationVar(&cfg.StartDelay, "start-delay", cfg.StartDelay, "world: time for a new pod to become Ready")
	fs.DurationVar(&cfg.ReportInterval, "report-interval", cfg.ReportInterval, "world: streamer count report interval")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Policy.SparePods = int32(*spare)
	cfg.Policy.MinReplicas = int32(*minReplicas)
	cfg.Policy.ScaleUpTolerance = *upTol
	cfg.Policy.ScaleDownWindow = *downWindow
	cfg.Policy.ScaleDownTolerance = *downTol
	if err := cfg.Policy.Validate(); err != nil {
		fmt.Fprintln(stderr, "scalesim:", err)
		return 2
	}

	p := cfg.Policy
	fmt.Fprintf(stdout, "policy: min %d, max %d, target %d/pod, spare %d, tolerance up %g down %g, windows up %s down %s, "+
		"per %s up max(+%d pods, +%d%%) down max(-%d pods, -%d%%)\n",
		p.MinReplicas, p.MaxReplicas, p.TargetPerPod, p.SparePods, p.ScaleUpTolerance, p.ScaleDownTolerance,
		p.ScaleUpWindow, p.ScaleDownWindow, p.Period, p.ScaleUpMaxPods, p.ScaleUpMaxPercent, p.ScaleDownMaxPods, p.ScaleDownMaxPercent)
	fmt.Fprintf(stdout, "world: evaluation every %s, counts every %s (TTL %s), pods Ready %s after creation, drain %s, reconnect after %s–%s\n\n",
		cfg.SyncInterval, cfg.ReportInterval, cfg.ReportTTL, cfg.StartDelay, cfg.DrainTime, cfg.RetryMin, cfg.RetryMax)

	failed := false
	ran := 0
	for _, tr := range Traces() {
		if *only != "" && tr.Name != *only {
			continue
		}
		ran++
		r := Run(cfg, tr)
		printReport(stdout, tr, r, *events)
		failed = failed || len(r.Failed) > 0
	}
	if ran == 0 {
		fmt.Fprintf(stderr, "scalesim: no trace named %q\n", *only)
		return 2
	}
	if failed {
		fmt.Fprintln(stdout, "FAIL: a goal does not hold")
		return 1
	}
	fmt.Fprintln(stdout, "ok: every goal holds")
	return 0
}

func printReport(w io.Writer, tr Trace, r Report, events bool) {
	ups, downs := 0, 0
	for _, e := range r.Events {
		if e.To > e.From {
			ups++
		} else {
			downs++
		}
	}
	fmt.Fprintf(w, "%s: %s\n", tr.Name, tr.Description)
	fmt.Fprintf(w, "  time to capacity (worst)  %6.1f s\n", r.CapacityLag.Seconds())
	fmt.Fprintf(w, "  highest conns per pod     %6d (%.2f × target, at %s), longest above 1.2 × target %.1f s\n",
		r.MaxPerPod, float64(r.MaxPerPod)/float64(r.Target), fmtClock(r.MaxPerPodAt), r.LongestAbove.Seconds())
	fmt.Fprintf(w, "  overshoot                 %6d pods (peak need %d, peak replicas %d; %.2f pods above need on average)\n",
		r.Overshoot, r.PeakNeed, r.PeakReplicas, r.MeanAboveNeed)
	fmt.Fprintf(w, "  scale events              %6d (%d up, %d down), flaps %d\n", len(r.Events), ups, downs, r.Flaps)
	fmt.Fprintf(w, "  end                       %6d replicas for a need of %d\n", r.FinalReplicas, r.FinalNeed)
	if events {
		for _, e := range r.Events {
			fmt.Fprintf(w, "    %9s  %2d → %2d  %s\n", fmtClock(e.At), e.From, e.To, e.Reason)
		}
	}
	if len(r.Failed) > 0 {
		fmt.Fprintf(w, "  FAILED: %s\n", strings.Join(r.Failed, "; "))
	}
	fmt.Fprintln(w)
}

func fmtClock(d time.Duration) string {
	d = d.Round(100 * time.Millisecond)
	h, m := int(d.Hours()), int(d.Minutes())%60
	s := d.Seconds() - float64(int(d.Minutes())*60)
	if h > 0 {
		return fmt.Sprintf("%dh%02dm%04.1fs", h, m, s)
	}
	return fmt.Sprintf("%dm%04.1fs", m, s)
}
