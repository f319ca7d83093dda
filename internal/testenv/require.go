package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Strict reports whether a missing prerequisite (envtest's binaries,
// Chromium, Node, Python) must fail the test rather than skip it: under CI
// ($CI=true) and in make test ($CHATR_TEST_STRICT=1), so neither can pass
// on tests that never ran.
func Strict() bool {
	return os.Getenv("CI") == "true" || os.Getenv("CHATR_TEST_STRICT") == "1"
}

// Missing ends a test that cannot run because something it needs is not on
// this machine: a failure when Strict, otherwise a skip that says loudly
// what was not tested and how to get it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("MISSING (a failure under CI=true and make test): %s", msg)
	}
	t.Skipf("SKIPPED, NOT TESTED: %s", msg)
}

// EnvtestAssets returns $KUBEBUILDER_ASSETS when it holds kube-apiserver
// and etcd, or why the envtest tests cannot run.
func EnvtestAssets() (dir, missing string) {
	dir = os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		return "", "KUBEBUILDER_ASSETS is unset: the envtest tests need kube-apiserver and etcd; run make test, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)"
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if fi, err := os.Stat(filepath.Join(dir, bin)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Sprintf("KUBEBUILDER_ASSETS=%s has no executable %s: rebuild it with hack/envtest-assets.sh", dir, bin)
		}
	}
	return dir, ""
}
