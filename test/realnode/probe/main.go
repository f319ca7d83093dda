// Command probe is the real-node test's stand-in for "some other pod in the
// cluster": run in a pod of its own, it tries a TCP connection to each
// address it is given and prints one line per address, "open ADDR" or
// "closed ADDR: reason", then waits to be deleted. The test reads those lines
// from the pod's log to check that the room's NetworkPolicies are enforced.
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	for _, addr := range os.Args[1:] {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			fmt.Printf("closed %s: %v\n", addr, err)
			continue
		}
		c.Close()
		fmt.Printf("open %s\n", addr)
	}
	fmt.Println("done")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
