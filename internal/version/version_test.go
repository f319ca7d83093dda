package version

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func stamp(t *testing.T, v, c string) {
	oldV, oldC := Version, Commit
	Version, Commit = v, c
	t.Cleanup(func() { Version, Commit = oldV, oldC })
}

func TestGet(t *testing.T) {
	stamp(t, "v1.2.3-4-gabcdef0-dirty", "abcdef0123")
	i := Get()
	if i.Version != "v1.2.3-4-gabcdef0-dirty" || i.Commit != "abcdef0123" || i.GoVersion != runtime.Version() {
		t.Fatalf("%+v", i)
	}
	if s := i.String(); s != "v1.2.3-4-gabcdef0-dirty (commit abcdef0123, "+runtime.Version()+")" {
		t.Errorf("String %q", s)
	}
	if a := i.LogAttrs(); len(a) != 6 || a[0] != "version" || a[1] != i.Version {
		t.Errorf("LogAttrs %v", a)
	}
}

// An unstamped binary says so instead of printing empty fields.
func TestGetUnstamped(t *testing.T) {
	stamp(t, "", "")
	i := Get()
	if i.Version != "devel" || i.Commit == "" {
		t.Fatalf("%+v", i)
	}
}

// gather returns the chatr_build_info series of g as "label=value,..." strings.
func gather(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != MetricName {
			continue
		}
		if mf.GetType() != dto.MetricType_GAUGE {
			t.Errorf("type %v", mf.GetType())
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			if m.GetGauge().GetValue() != 1 {
				t.Errorf("value %v", m.GetGauge().GetValue())
			}
			out = append(out, strings.Join(ls, ","))
		}
	}
	return out
}

func TestCollector(t *testing.T) {
	stamp(t, "v9", "c0ffee")
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector("api"))
	want := "commit=c0ffee,component=api,goversion=" + runtime.Version() + ",version=v9"
	if got := gather(t, reg); len(got) != 1 || got[0] != want {
		t.Fatalf("series %v, want %s", got, want)
	}
	// Two components in one process (chatrd dev) export one series each,
	// and one /metrics serves both without a duplicate.
	other := prometheus.NewRegistry()
	other.MustRegister(NewCollector("streamer"))
	if got := gather(t, prometheus.Gatherers{reg, other}); len(got) != 2 {
		t.Fatalf("series %v", got)
	}
}
