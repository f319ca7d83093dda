package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeAPI answers registrations and posts like the API's contract (the load
// tool is under test here, not the server). Posts wait until release is
// closed; status, when set, is their answer.
type fakeAPI struct {
	release chan struct{}
	status  int
	posts   atomic.Int64
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/register":
		fmt.Fprint(w, `{"success":true,"agent":{"apiKey":"chatr_k"}}`)
	case "/api/messages":
		<-f.release
		f.posts.Add(1)
		if f.status != 0 {
			w.WriteHeader(f.status)
		}
		fmt.Fprint(w, `{"success":true}`)
	default:
		http.NotFound(w, r)
	}
}

// A post due while the server stalls is measured from when it was due, not
// from when the stalled tool got round to sending it: the schedule runs to
// its end with every worker blocked, and every latency covers the stall.
func TestOpenLoopMeasuresFromTheDueTime(t *testing.T) {
	api := &fakeAPI{release: make(chan struct{})}
	srv := httptest.NewServer(api)
	defer srv.Close()
	var released time.Time
	var once sync.Once
	o := &openLoop{url: srv.URL, agents: 3, rate: 200, workers: 2, duration: 500 * time.Millisecond, warmup: 100 * time.Millisecond,
		scheduled: func() { once.Do(func() { released = time.Now(); close(api.release) }) }}
	if err := o.run(); err != nil {
		t.Fatal(err)
	}
	if want := 100; len(o.results) != want {
		t.Fatalf("%d posts measured, want %d (rate × duration)", len(o.results), want)
	}
	for i, r := range o.results {
		if r.kind != "" {
			t.Fatalf("post %d: %s", i, r.kind)
		}
		if r.lat != r.done.Sub(r.due) || r.lat < released.Sub(r.due) || r.lag < 0 || r.lag > r.lat {
			t.Fatalf("post %d due %s, answered %s after the stall ended %s: latency %s, send lag %s",
				i, r.due.Format(time.StampMicro), r.done.Format(time.StampMicro), released.Format(time.StampMicro), r.lat, r.lag)
		}
	}
	if got := api.posts.Load(); got != 120 {
		t.Fatalf("server got %d posts, want 120 (warm-up included)", got)
	}
}

// Failures are counted by kind, and none is taken for a success.
func TestOpenLoopErrorKinds(t *testing.T) {
	api := &fakeAPI{release: make(chan struct{}), status: http.StatusTooManyRequests}
	close(api.release)
	srv := httptest.NewServer(api)
	defer srv.Close()
	o := &openLoop{url: srv.URL, agents: 1, rate: 100, workers: 4, duration: 200 * time.Millisecond, warmup: 0}
	if err := o.run(); err != nil {
		t.Fatal(err)
	}
	for i, r := range o.results {
		if r.kind != "http 429" {
			t.Fatalf("post %d: kind %q, want http 429", i, r.kind)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if k := postKind(http.DefaultClient, "http://"+addr, "k", "{}"); k != "connection refused" {
		t.Fatalf("closed port: %q", k)
	}
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
	}))
	defer hang.Close()
	if k := postKind(http.DefaultClient, hang.URL, "k", "{}"); k != "eof" && k != "connection reset" {
		t.Fatalf("connection closed without an answer: %q", k)
	}
}

// A server with the contract's registration limit is refused with a hint,
// not taken for a bench failure of the API.
func TestRegistrationLimitSaysWhatToDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"success":false,"error":"Too many registrations"}`)
	}))
	defer srv.Close()
	_, err := registerAgents(http.DefaultClient, srv.URL, 2)
	if err == nil || !strings.Contains(err.Error(), "-print-server-env") {
		t.Fatalf("got %v", err)
	}
}

// procCPU reads this very process's CPU time, which only grows.
func TestProcCPU(t *testing.T) {
	a, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	b := a
	for x := 0; b == a; x++ {
		for i := 0; i < 1e6; i++ {
			x ^= i
		}
		if b, err = procCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	if b < a {
		t.Fatalf("CPU time went from %v to %v", a, b)
	}
}
