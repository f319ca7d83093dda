package client

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func parseAll(r io.Reader, max int) ([]sseEvent, *sseParser, error) {
	p := newSSEParser(r, max)
	var evs []sseEvent
	for {
		ev, err := p.Next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return evs, p, err
		}
		evs = append(evs, ev)
	}
}

// TestSSEParser runs the examples of the WHATWG HTML standard (§9.2.5) and
// the corners of §9.2.6 that chatr's streams and proxies can produce.
func TestSSEParser(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []sseEvent
	}{
		{"multi-line data", "data: YHOO\ndata: +2\ndata: 10\n\n", []sseEvent{{Data: "YHOO\n+2\n10"}}},
		{"ids persist and reset", ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
			[]sseEvent{{Data: "first event", ID: "1"}, {Data: "second event"}, {Data: " third event"}}},
		{"empty data, unfinished event dropped", "data\n\ndata\ndata\n\ndata:", []sseEvent{{Data: ""}, {Data: "\n"}}},
		{"one optional space", "data:test\n\ndata: test\n\n", []sseEvent{{Data: "test"}, {Data: "test"}}},
		{"CRLF", "id: 7\r\ndata: a\r\n\r\n", []sseEvent{{Data: "a", ID: "7"}}},
		{"CR", "data: a\rdata: b\r\r", []sseEvent{{Data: "a\nb"}}},
		{"mixed endings", "data: a\r\n\ndata: b\r\rdata: c\n\r\n", []sseEvent{{Data: "a"}, {Data: "b"}, {Data: "c"}}},
		{"BOM skipped once", "\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n", []sseEvent{{Data: "a"}}},
		{"no data, no event", "id: 3\nevent: x\n\ndata: y\n\n", []sseEvent{{Data: "y", ID: "3"}}},
		{"named event", "event: update\ndata: y\n\n", []sseEvent{{Type: "update", Data: "y"}}},
		{"id with NUL ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", []sseEvent{{Data: "a", ID: "1"}, {Data: "b", ID: "1"}}},
		{"unknown fields and comments", "foo: bar\n: ping\ndata: a\n:\n\n", []sseEvent{{Data: "a"}}},
		{"colon in value", "data: {\"a\":\"b:c\"}\n\n", []sseEvent{{Data: `{"a":"b:c"}`}}},
		{"chatr frames", "retry: 2000\n\nid: 42\ndata: {\"type\":\"history\",\"data\":[]}\n\n: ping\n\ndata: {\"type\":\"stats\",\"data\":{}}\n\n",
			[]sseEvent{{Data: `{"type":"history","data":[]}`, ID: "42"}, {Data: `{"type":"stats","data":{}}`, ID: "42"}}},
	} {
		for _, oneByte := range []bool{false, true} {
			var r io.Reader = strings.NewReader(c.in)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			got, _, err := parseAll(r, 1<<20)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if len(got) != len(c.want) {
				t.Errorf("%s (one byte at a time: %v): got %q, want %q", c.name, oneByte, got, c.want)
				continue
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("%s (one byte at a time: %v): event %d = %q, want %q", c.name, oneByte, i, got[i], c.want[i])
				}
			}
		}
	}
}

func TestSSERetry(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"retry: 2000\n\n":                    2 * time.Second,
		"retry: 2s\n\n":                      0, // not digits: ignored
		"retry: -5\n\n":                      0,
		"retry:\n\n":                         0,
		"retry: 1500\nretry: x\n\n":          1500 * time.Millisecond,
		"retry: 99999999999999999999999\n\n": maxRetryAfter,
	} {
		_, p, err := parseAll(strings.NewReader(in), 1<<20)
		if err != nil || p.retry != want {
			t.Errorf("%q: retry %v (err %v), want %v", in, p.retry, err, want)
		}
	}
}

// TestSSELoneCRDoesNotWait: a line ended by CR must be handed over without
// waiting for the next byte, which may come only with the next ping.
func TestSSELoneCRDoesNotWait(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	p := newSSEParser(pr, 1<<10)
	go func() { _, _ = pw.Write([]byte("data: a\r\r")) }()
	done := make(chan sseEvent, 1)
	go func() {
		ev, _ := p.Next()
		done <- ev
	}()
	select {
	case ev := <-done:
		if ev.Data != "a" {
			t.Fatalf("got %q", ev.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the parser waited for a byte after the closing CR")
	}
}

func TestSSEBounds(t *testing.T) {
	for _, in := range []string{
		"data: " + strings.Repeat("x", 200) + "\n\n",                    // one long line
		strings.Repeat("data: "+strings.Repeat("x", 50)+"\n", 5) + "\n", // a long event of short lines
		": " + strings.Repeat("x", 200),                                 // a long comment with no end
	} {
		_, _, err := parseAll(strings.NewReader(in), 128)
		if !errors.Is(err, errSSETooLarge) {
			t.Errorf("%.20q...: err %v, want errSSETooLarge", in, err)
		}
	}
}

// encodeSSE writes events back in the format, for the fuzzer's round trip.
func encodeSSE(evs []sseEvent) string {
	var b strings.Builder
	last := ""
	for _, ev := range evs {
		if ev.Type != "" {
			b.WriteString("event: " + ev.Type + "\n")
		}
		if ev.ID != last {
			b.WriteString("id: " + ev.ID + "\n")
			last = ev.ID
		}
		for _, l := range strings.Split(ev.Data, "\n") {
			b.WriteString("data: " + l + "\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// FuzzSSEParser: the stream is untrusted input. Whatever arrives, the parser
// must not panic, must give the same events however the bytes are split
// into reads, must respect its bound, and what it parsed must survive being
// written back and parsed again.
func FuzzSSEParser(f *testing.F) {
	for _, s := range []string{
		"data: YHOO\ndata: +2\ndata: 10\n\n",
		"retry: 2000\n\nid: 42\ndata: {\"type\":\"history\",\"data\":[]}\n\n: ping\n\n",
		"data:a\r\ndata:b\r\rid:\x00\n\n",
		"\xEF\xBB\xBFevent: x\ndata\n\ndata:",
		"id: 1\ndata: a\n\nid\ndata: b\n\n",
	} {
		f.Add(s)
	}
	const max = 256
	f.Fuzz(func(t *testing.T, in string) {
		whole, _, errWhole := parseAll(strings.NewReader(in), max)
		bytewise, _, errBytes := parseAll(iotest.OneByteReader(strings.NewReader(in)), max)
		if (errWhole == nil) != (errBytes == nil) || len(whole) != len(bytewise) {
			t.Fatalf("split reads differ: %q (%v) vs %q (%v)", whole, errWhole, bytewise, errBytes)
		}
		for i := range whole {
			if whole[i] != bytewise[i] {
				t.Fatalf("event %d differs: %q vs %q", i, whole[i], bytewise[i])
			}
			if len(whole[i].Data) > max {
				t.Fatalf("event %d has %d bytes of data, over the bound %d", i, len(whole[i].Data), max)
			}
		}
		if errWhole != nil {
			return
		}
		again, _, err := parseAll(strings.NewReader(encodeSSE(whole)), 1<<20)
		if err != nil || len(again) != len(whole) {
			t.Fatalf("round trip: %q (%v), want %q", again, err, whole)
		}
		for i := range whole {
			if again[i] != whole[i] {
				t.Fatalf("round trip event %d: %q, want %q", i, again[i], whole[i])
			}
		}
	})
}
