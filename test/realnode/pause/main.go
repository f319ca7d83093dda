// Command pause is the sandbox ("pause") image of the real-node test's
// containerd: the process that holds a pod's namespaces open. The usual pause
// image comes from a registry this machine cannot reach, so the test builds
// this one into an image of its own. It waits for SIGTERM or SIGINT and reaps
// any child re-parented to it meanwhile.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
