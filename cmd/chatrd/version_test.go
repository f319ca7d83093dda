package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chatr-ai/chatr/internal/testenv"
	"github.com/chatr-ai/chatr/internal/version"
)

const (
	stampedVersion = "v0.0.0-test-gabc1234-dirty"
	stampedCommit  = "abc1234abc1234abc1234abc1234abc1234abc12"
)

// TestStamped builds chatrd the way `make build` and the images do, with the
// version and commit given to the linker, and checks what it reports.
func TestStamped(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "chatrd")
	pkg := "github.com/chatr-ai/chatr/internal/version"
	// The image build's settings (hack/image.mk), so the packages it compiled
	// are reused.
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", bin,
		"-ldflags", "-s -w -X "+pkg+".Version="+stampedVersion+" -X "+pkg+".Commit="+stampedCommit, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("version command", func(t *testing.T) { testVersionCommand(t, bin) })
	t.Run("start log and metrics", func(t *testing.T) { testBuildInfoMetric(t, bin) })
}

func testVersionCommand(t *testing.T, bin string) {
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("chatrd version: %v\n%s", err, out)
	}
	want := "chatrd " + stampedVersion + " (commit " + stampedCommit + ", " + runtime.Version() + ")\n"
	if string(out) != want {
		t.Errorf("chatrd version printed %q, want %q", out, want)
	}
	out, err = exec.Command(bin, "version", "-json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var i version.Info
	if err := json.Unmarshal(out, &i); err != nil || i != (version.Info{Version: stampedVersion, Commit: stampedCommit, GoVersion: runtime.Version()}) {
		t.Errorf("chatrd version -json: %s (%v)", out, err)
	}
}

// A stamped chatrd logs its version when it starts and exports
// chatr_build_info for each of its components on /metrics.
func testBuildInfoMetric(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dev")
	cmd.Env = append(os.Environ(),
		"CHATR_LISTEN=127.0.0.1:0",
		"CHATR_DB_SCHEMA="+testenv.Schema(t),
		"CHATR_DATABASE_URL="+testenv.DatabaseURL(),
		"CHATR_REDIS_URL="+testenv.RedisURL(),
		"CHATR_LOG_FORMAT=text",
		"CHATR_MOLTBOOK_URL=",
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	// Read the log until serve reports its address; the start line comes first.
	var logged []string
	listenRE := regexp.MustCompile(`msg=serving listen=(\S+)`)
	sc := bufio.NewScanner(stderr)
	addr := ""
	for addr == "" && sc.Scan() {
		logged = append(logged, sc.Text())
		if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	if addr == "" {
		t.Fatalf("chatrd dev never served (%v):\n%s", sc.Err(), strings.Join(logged, "\n"))
	}
	startRE := regexp.MustCompile(`msg="starting chatrd dev" version=` + regexp.QuoteMeta(stampedVersion) + ` commit=` + stampedCommit + ` goversion=` + regexp.QuoteMeta(runtime.Version()))
	if !startRE.MatchString(strings.Join(logged, "\n")) {
		t.Errorf("no start line with the version in:\n%s", strings.Join(logged, "\n"))
	}

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", resp.StatusCode, body)
	}
	for _, comp := range []string{"api", "streamer", "verifier"} {
		want := `chatr_build_info{commit="` + stampedCommit + `",component="` + comp + `",goversion="` + runtime.Version() + `",version="` + stampedVersion + `"} 1`
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
