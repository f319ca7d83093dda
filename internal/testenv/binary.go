package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

var (
	binMu    sync.Mutex
	binCache = map[string]*builtBinary{}
)

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the Go command pkg (an import path, e.g.
// "github.com/chatr-ai/chatr/cmd/chatrd") once per test process and returns
// the path of the executable, for tests that run the real program.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	binMu.Lock()
	b := binCache[pkg]
	if b == nil {
		b = &builtBinary{}
		binCache[pkg] = b
	}
	binMu.Unlock()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "chatr-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, path.Base(pkg))
		if out, err := exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// RemoveBinaries deletes what Binary built; call it from TestMain after m.Run.
func RemoveBinaries() {
	binMu.Lock()
	defer binMu.Unlock()
	for _, b := range binCache {
		if b.path != "" {
			_ = os.RemoveAll(filepath.Dir(b.path))
		}
	}
}
