// Command seccomp writes the streamer's opt-in seccomp profile,
// config/seccomp/chatr-streamer.json (hack/generate-operator.sh runs it):
// the profile containerd applies as RuntimeDefault to a container without
// capabilities (every chatr container drops them all) on amd64, taken from
// containerd's own code at the version go.mod names, plus one rule that
// allows io_uring_setup and io_uring_enter, the two system calls of the
// streamer's batched writes. Nothing else is added.
//
// containerd loads a Localhost profile as the OCI runtime spec's seccomp
// section, so that is the format written. It lives in its own module so
// containerd's dependencies stay out of the project's.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func main() {
	if runtime.GOARCH != "amd64" {
		// containerd picks the architecture's system calls from the running
		// binary's; the shipped profile is amd64's.
		fmt.Fprintf(os.Stderr, "seccomp: the profile is generated on amd64 (this is %s)\n", runtime.GOARCH)
		os.Exit(2)
	}
	// No capabilities: containerd then leaves out every rule that needs one.
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}}
	p := seccomp.DefaultProfile(spec)
	for _, s := range p.Syscalls {
		for _, n := range s.Names {
			if n == "io_uring_setup" || n == "io_uring_enter" {
				fmt.Fprintf(os.Stderr, "seccomp: containerd's default already has a rule for %s (%s): nothing to add\n", n, s.Action)
				os.Exit(1)
			}
		}
	}
	p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{
		Names:  []string{"io_uring_enter", "io_uring_setup"},
		Action: specs.ActAllow,
	})
	e := json.NewEncoder(os.Stdout)
	e.SetIndent("", "  ")
	if err := e.Encode(p); err != nil {
		fmt.Fprintln(os.Stderr, "seccomp:", err)
		os.Exit(1)
	}
}
