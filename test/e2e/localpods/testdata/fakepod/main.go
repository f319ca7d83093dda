// Command fakepod is the process the localpods tests run in their pods. It
// follows the runtime contract's addresses and says who it is:
//
//	CHATR_LISTEN        GET /env (JSON: pod, args, environment), GET
//	                    /api/stream (one SSE event, then holds the stream),
//	                    /api/ws (WebSocket echo), anything else: "pod=<name> path=<path>"
//	CHATR_ADMIN_LISTEN  GET /readyz, /healthz; POST /ready?v=0|1 flips
//	                    readiness; POST /exit?code=N exits
//
// On SIGTERM it prints "fakepod: SIGTERM", turns not ready, waits
// FAKEPOD_TERM_DELAY (default 0) and exits 0 — or ignores the signal when
// FAKEPOD_IGNORE_TERM=1.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	name := os.Getenv("HOSTNAME")
	var ready atomic.Bool
	ready.Store(true)

	mux := http.NewServeMux()
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"pod": name, "args": os.Args[1:], "env": env})
	})
	mux.HandleFunc("/api/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: 1\ndata: %s\n\n", name)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	upgrader := websocket.Upgrader{}
	mux.HandleFunc("/api/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			t, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(t, []byte(name+": "+string(msg))); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pod=%s path=%s xff=%s", name, r.URL.Path, r.Header.Get("X-Forwarded-For"))
	})

	admin := http.NewServeMux()
	admin.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	admin.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	admin.HandleFunc("POST /ready", func(w http.ResponseWriter, r *http.Request) {
		ready.Store(r.URL.Query().Get("v") == "1")
		fmt.Printf("fakepod: ready=%v\n", ready.Load())
	})
	admin.HandleFunc("POST /exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		fmt.Printf("fakepod: exit %d on request\n", code)
		go func() { time.Sleep(50 * time.Millisecond); os.Exit(code) }()
	})

	listen, adminListen := os.Getenv("CHATR_LISTEN"), os.Getenv("CHATR_ADMIN_LISTEN")
	fmt.Printf("fakepod %s: listen=%s admin=%s args=%q\n", name, listen, adminListen, os.Args[1:])
	if adminListen == "" {
		mux.Handle("/readyz", admin)
		mux.Handle("/healthz", admin)
	} else {
		go func() { fail(http.ListenAndServe(adminListen, admin)) }()
	}
	go func() { fail(http.ListenAndServe(listen, mux)) }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	fmt.Println("fakepod: SIGTERM")
	ready.Store(false)
	if os.Getenv("FAKEPOD_IGNORE_TERM") == "1" {
		fmt.Println("fakepod: ignoring SIGTERM")
		select {}
	}
	if d, err := time.ParseDuration(os.Getenv("FAKEPOD_TERM_DELAY")); err == nil {
		time.Sleep(d)
	}
	fmt.Println("fakepod: exiting")
}

func fail(err error) {
	fmt.Println("fakepod:", err)
	os.Exit(2)
}
