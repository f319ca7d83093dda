// Command busyloop keeps one CPU core at 100 % for a bounded time, so the
// test suite can be run on a machine as loaded as a shared CI runner
// (make test-stress). It stops by itself when -for has passed or when the
// process that started it is gone, so a killed make never leaves it
// spinning.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

func main() {
	bound := flag.Duration("for", 30*time.Minute, "stop after this long")
	cores := flag.Int("cores", 1, "how many cores to keep busy")
	flag.Parse()
	if *bound <= 0 || *bound > 4*time.Hour || *cores < 1 || *cores > runtime.NumCPU() {
		fmt.Fprintln(os.Stderr, "busyloop: -for must be in (0, 4h] and -cores in [1, NumCPU]")
		os.Exit(2)
	}
	parent := os.Getppid()
	deadline := time.Now().Add(*bound)
	for range *cores - 1 {
		go spin(deadline, parent)
	}
	spin(deadline, parent)
}

// spin burns the CPU, looking at the clock and the parent every few million
// iterations (cheap enough not to leave the core idle).
func spin(deadline time.Time, parent int) {
	x := uint64(1)
	for {
		for range 1 << 22 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if time.Now().After(deadline) || os.Getppid() != parent {
			if x == 42 { // keep the loop from being optimised away
				fmt.Println(x)
			}
			return
		}
	}
}
