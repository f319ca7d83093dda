//go:build linux

package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A stream the server ends reconnects with Last-Event-ID and gets the rest:
// the fake server ends the first stream after message 3 (as a streamer does
// with a reader too slow for it) and serves 4 and 5 only to a resume from 3.
func TestListenerResumesAnEndedStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	resumes := make(chan string, 4)
	endFirst := make(chan struct{})
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				req, err := http.ReadRequest(bufio.NewReader(nc))
				if err != nil {
					return
				}
				last := req.Header.Get("Last-Event-ID")
				var events []string
				from, to := 1, 3
				if last == "" {
					events = append(events, "retry: 2000\n\n", "id: 0\ndata: {\"type\":\"history\",\"data\":[]}\n\n")
				} else {
					resumes <- last
					from, to = 4, 5
				}
				for id := from; id <= to; id++ {
					events = append(events, fmt.Sprintf("id: %d\ndata: {\"type\":\"message\",\"data\":{\"id\":\"%d\",\"content\":\"bench t=%d\"}}\n\n", id, id, time.Now().UnixNano()))
				}
				var b strings.Builder
				b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
				for _, e := range events {
					fmt.Fprintf(&b, "%x\r\n%s\r\n", len(e), e)
				}
				_, _ = nc.Write([]byte(b.String()))
				if last == "" {
					<-endFirst // the reader owns the stream now
					_, _ = nc.Write([]byte("0\r\n\r\n"))
				}
				if last != "" {
					time.Sleep(5 * time.Second) // the resumed one stays open
				}
			}()
		}
	}()
	u, _ := url.Parse("http://" + ln.Addr().String())
	c := &client{fd: -1, historyGot: make(chan struct{})}
	c.p.times = true
	clients := []*client{c}
	r, err := newReader(clients, &sentTimes{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.tally.phases = newPhaseTally([]uint64{5})
	r.resume = true
	if err := c.dial(u, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, r); err != nil {
		t.Fatal(err)
	}
	if err := r.add(0); err != nil {
		t.Fatal(err)
	}
	go r.run()
	defer r.halt()
	close(endFirst)
	select {
	case last := <-resumes:
		if last != "3" {
			t.Fatalf("resumed from %q, want 3", last)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the ended stream never resumed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.tally.phases.complete[0].Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("phase incomplete: last id %d, err %v", c.last.Load(), c.err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c.last.Load() != 5 || c.dups != 0 || c.ooo != 0 || c.err != nil || c.reconnects != 1 {
		t.Fatalf("last %d, dups %d, ooo %d, err %v, reconnects %d", c.last.Load(), c.dups, c.ooo, c.err, c.reconnects)
	}
}
