package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// envPprofListen names an address for Go's profiler (/debug/pprof/...):
// unset, nothing is served. It is for a benchmark or a developer's machine
// (hack/bench-compare.sh PROFILE=1), never for a pod: the profiles show
// the process's memory and take CPU while they are recorded.
const envPprofListen = "CHATR_PPROF_LISTEN"

// servePprof serves the profiler on CHATR_PPROF_LISTEN, if set.
func servePprof() error {
	addr := os.Getenv(envPprofListen)
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", envPprofListen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return nil
}
