// Package clients runs the example agents of docs/clients.md — Python
// (python/agent.py: requests and a small SSE reader) and Node
// (node/agent.js: fetch, and eventsource v2 with es.onmessage) — against a
// live room, unchanged but for their base URL (docs/wire-contract.md). The files are the
// documentation's code blocks, byte for byte; a test keeps them so.
//
// This file holds what the tests need to find the interpreters and install
// the Node dependencies.
package clients

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// NPMInstall runs `npm install` in dir (no lock file, no audit) unless
// dir/node_modules already holds every package named in want.
func NPMInstall(dir string, want ...string) error {
	missing := false
	for _, p := range want {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p)); err != nil {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	out, err := exec.Command("npm", "install", "--prefix", dir, "--no-package-lock", "--no-audit", "--no-fund").CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm install in %s: %v\n%s", dir, err, out)
	}
	return nil
}

// Python returns a python3 that can import requests: python3 on the PATH or
// /usr/bin/python3, else what hack/python-deps.sh (Debian's
// python3-requests) provides. repoRoot locates the script.
func Python(repoRoot string) (string, error) {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if path, err := exec.LookPath(py); err == nil && exec.Command(path, "-c", "import requests").Run() == nil {
			return path, nil
		}
	}
	out, err := exec.Command(filepath.Join(repoRoot, "hack", "python-deps.sh")).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg += ": " + string(ee.Stderr)
		}
		return "", fmt.Errorf("no python3 with requests, and hack/python-deps.sh failed: %s", msg)
	}
	return strings.TrimSpace(string(out)), nil
}
