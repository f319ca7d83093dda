package streamer

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// testShard is a shard whose writer is driven by the test itself.
func testShard(t *testing.T, ping time.Duration) *shard {
	return testShardWrites(t, ping, "auto")
}

// testShardWrites is testShard with its writes batched through io_uring
// ("auto": the test fails where the kernel refuses it) or with writev.
func testShardWrites(t *testing.T, ping time.Duration, writes string) *shard {
	t.Helper()
	s := &Server{cfg: Config{PingInterval: ping, QueueBytes: 1 << 20, WriteTimeout: time.Second, Writes: writes},
		met: newMetrics(), log: slog.New(slog.DiscardHandler)}
	sh := newHub(s, 1, historySize).shards[0]
	if writes == "auto" && sh.batch == nil {
		t.Fatal("io_uring is not available here: the batched writes cannot be tested")
	}
	t.Cleanup(func() {
		if sh.batch != nil {
			_ = sh.batch.Close()
		}
	})
	return sh
}

// Each stream gets one ping per interval, and a tick pings only its share
// of them, however they connected (here: all at once).
func TestPingWheelSpreadsPings(t *testing.T) {
	sh := testShard(t, 10*time.Second)
	if len(sh.wheel) != 100 {
		t.Fatalf("%d slots for 10s, want 100", len(sh.wheel))
	}
	var cs []*conn
	for range 1000 {
		c := &conn{fd: -1, t: sseChunked, limit: 1 << 20}
		sh.handle(&event{kind: evAdd, c: c})
		cs = append(cs, c)
	}
	cs[7].closed = true // a stream gone meanwhile is skipped and forgotten
	pings := func(c *conn) (n int) {
		for _, f := range c.queue {
			if f == pingFrame {
				n++
			}
		}
		return n
	}
	for round := 1; round <= 2; round++ {
		for range len(sh.wheel) {
			before := 0
			for _, c := range cs {
				before += pings(c)
			}
			sh.pingSlot()
			after := 0
			for _, c := range cs {
				after += pings(c)
			}
			if after-before > 10 {
				t.Fatalf("one tick pinged %d of 1000 streams", after-before)
			}
		}
		for i, c := range cs {
			if want := round; i == 7 {
				if pings(c) != 0 {
					t.Fatal("a closed stream was pinged")
				}
			} else if pings(c) != want {
				t.Fatalf("stream %d has %d pings after %d rounds", i, pings(c), round)
			}
		}
	}
	for _, slot := range sh.wheel {
		for _, c := range slot {
			if c == cs[7] {
				t.Fatal("the closed stream is still on the wheel")
			}
		}
	}
}

// A frame posted while the writer walks its dirty streams is taken during
// the walk: streams not written yet get both frames in one write, the others
// are written again, and nothing waits in the inbox for the next round.
func TestFlushTakesFramesPostedMeanwhile(t *testing.T) {
	for _, writes := range []string{"auto", "writev"} {
		t.Run(writes, func(t *testing.T) { flushTakesFramesPostedMeanwhile(t, writes) })
	}
}

func flushTakesFramesPostedMeanwhile(t *testing.T, writes string) {
	sh := testShardWrites(t, time.Second, writes)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var clients []net.Conn
	for range 100 {
		cl, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		clients = append(clients, cl)
		sh.handle(&event{kind: evAdd, c: &conn{nc: sc, fd: rawFD(sc), t: sseRaw, limit: 1 << 20}})
	}
	sh.flushDirty()
	a, b := sseOnly("data: a\n\n"), sseOnly("data: b\n\n")
	sh.handle(&event{kind: evFrame, f: a})
	sh.post(event{kind: evFrame, f: b})
	sh.flushDirty()
	if len(sh.inbox) != 0 || len(sh.dirty) != 0 {
		t.Fatalf("after the flush: %d events in the inbox, %d dirty streams", len(sh.inbox), len(sh.dirty))
	}
	want := "data: a\n\ndata: b\n\n"
	for i, cl := range clients {
		_ = cl.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(want))
		if _, err := io.ReadFull(cl, got); err != nil || string(got) != want {
			t.Fatalf("client %d: %q, %v", i, got, err)
		}
	}
}
