package main

import (
	"context"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/chatr-ai/chatr/internal/version"
)

// --version prints the build and exits before any cluster is looked for.
func TestVersionFlag(t *testing.T) {
	oldV, oldC := version.Version, version.Commit
	version.Version, version.Commit = "v1.0.0-3-gdeadbee", "deadbeef"
	t.Cleanup(func() { version.Version, version.Commit = oldV, oldC })

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	err = run(context.Background(), []string{"--version", "--kubeconfig=/nonexistent"}, nil)
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := "chatr-operator v1.0.0-3-gdeadbee (commit deadbeef, " + runtime.Version() + ")\n"; string(out) != want {
		t.Errorf("printed %q, want %q", out, want)
	}
}

// The manager's registry (its /metrics) carries chatr_build_info once, even
// when run registers it again.
func TestBuildInfoRegistered(t *testing.T) {
	for range 2 {
		if err := registerBuildInfo(crmetrics.Registry); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != version.MetricName {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%d series", len(mf.GetMetric()))
		}
		labels := map[string]string{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["component"] != "operator" || labels["goversion"] != runtime.Version() || !strings.Contains(mf.GetHelp(), "build") {
			t.Errorf("labels %v", labels)
		}
		return
	}
	t.Fatal("no chatr_build_info in the manager's registry")
}
