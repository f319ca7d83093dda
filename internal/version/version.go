// Package version holds what a chatr binary knows about its own build: the
// version and commit stamped in at link time, and the Go release that built
// it. One place so that `chatrd version`, `chatr-operator --version`, the
// start log line and the chatr_build_info metric always agree.
//
// The build stamps the two variables with the linker:
//
//	go build -ldflags "-X github.com/chatr-ai/chatr/internal/version.Version=$(git describe --always --dirty) \
//	                   -X github.com/chatr-ai/chatr/internal/version.Commit=$(git rev-parse HEAD)" ./cmd/...
//
// (`make build` and `make image` do). An unstamped binary (`go run`, `go
// test`) reports "devel" and, when the Go toolchain recorded it, the VCS
// revision from the build info, so it still says where it came from.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Version and Commit are set with -ldflags -X; they are variables (not
// constants) for that reason only and must not be written at run time.
var (
	// Version is `git describe --always --dirty` of the built tree.
	Version = ""
	// Commit is the full commit hash of the built tree.
	Commit = ""
)

// Info is one binary's build identity.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
}

// Get returns the build identity, with fallbacks for unstamped builds:
// "devel" for the version and the toolchain's recorded VCS revision (or
// "unknown") for the commit.
func Get() Info {
	i := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version()}
	if i.Commit == "" {
		i.Commit = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					i.Commit = s.Value
				}
			}
		}
	}
	if i.Version == "" {
		i.Version = "devel"
	}
	return i
}

// String is the one-line form `chatrd version` prints:
// "v0.3.0-4-gabcdef0 (commit abcdef0…, go1.26.0)".
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, %s)", i.Version, i.Commit, i.GoVersion)
}

// LogAttrs are the build identity as slog key/value pairs, for the line a
// process logs when it starts.
func (i Info) LogAttrs() []any {
	return []any{"version", i.Version, "commit", i.Commit, "goversion", i.GoVersion}
}

// MetricName is the build-info gauge every component exports.
const MetricName = "chatr_build_info"

// NewCollector returns a chatr_build_info gauge, always 1, labelled with the
// build identity and the component that exports it. Every component puts
// one in its own registry; the component label keeps them apart when
// several components share one process and one /metrics (chatrd dev), where
// identical series from two registries would make the scrape fail.
func NewCollector(component string) prometheus.Collector {
	i := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: MetricName,
		Help: "Always 1; the labels say which build of chatr this process runs (version, commit, Go release) and which component exports it.",
		ConstLabels: prometheus.Labels{
			"component": component,
			"version":   i.Version,
			"commit":    i.Commit,
			"goversion": i.GoVersion,
		},
	})
	g.Set(1)
	return g
}
