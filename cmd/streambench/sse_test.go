package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chunked frames events the way the streamer does: one HTTP chunk each.
func chunked(events ...string) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(e), e)
	}
	return b.String()
}

func TestParserSplitsAnywhere(t *testing.T) {
	long := strings.Repeat("x", 5000)
	body := chunked(
		"retry: 2000\n\n",
		`id: 41`+"\n"+`data: {"type":"history","data":[{"content":"`+long+`"}]}`+"\n\n",
		`data: {"type":"stats","data":{"totalMessages":41}}`+"\n\n",
		": ping\n\n",
		`id: 42`+"\n"+`data: {"type":"message","data":{"id":"42"}}`+"\n\n",
		`id: 43`+"\n"+`data: {"type":"message","data":{"id":"43","content":"`+long+`"}}`+"\n\n",
	) + "0\r\n\r\n"
	want := "history 41,message 42,message 43,"
	for seed := range uint64(200) {
		var p parser
		if got := feedInPieces(t, &p, body, seed, 700); got != want || !p.ended {
			t.Fatalf("seed %d: got %q (ended %v), want %q", seed, got, p.ended, want)
		}
	}
}

// feedInPieces feeds body to p in random pieces of at most most bytes (the
// seed picks them) and returns what it reported: "kind id," per line.
func feedInPieces(t *testing.T, p *parser, body string, seed uint64, most int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var got strings.Builder
	rest := []byte(body)
	for len(rest) > 0 {
		n := 1 + rng.IntN(min(len(rest), most))
		if err := p.feed(rest[:n], func(k lineKind, id, _ int64) {
			got.WriteString([]string{"other", "message", "history"}[k] + " " + strconv.FormatInt(id, 10) + ",")
		}); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		rest = rest[n:]
	}
	return got.String()
}

func TestParserRejectsBadChunk(t *testing.T) {
	var p parser
	if err := p.feed([]byte("zz\r\n"), func(lineKind, int64, int64) {}); err == nil {
		t.Fatal("a bad chunk size was accepted")
	}
}

// The send time a message's content carries is found wherever the reads
// split the line, and only there: near misses and other fields don't count.
func TestParserFindsSendTimeSplitAnywhere(t *testing.T) {
	long := strings.Repeat("y", 3000)
	msg := func(id int, fields string) string {
		return fmt.Sprintf("id: %d\ndata: {\"type\":\"message\",\"data\":{\"id\":\"%d\",%s}}\n\n", id, id, fields)
	}
	body := chunked(
		"retry: 2000\n\n",
		`id: 9`+"\n"+`data: {"type":"history","data":[{"id":"9","content":"bench t=111 old"}]}`+"\n\n",
		msg(10, `"agentName":"a","content":"bench t=1700000000123456789 about the length of a typical agent's chatter"`),
		msg(11, `"contentType":"bench t=5","content":"no time here"`),
		msg(12, `"a":"","content":"bench x=5","b":"\"content\":\"bench t=6"`),
		msg(13, `"a":"`+long+`","b":"""content":"bench t=42","c":1`),
		": ping\n\n",
		msg(14, `"content":"bench t=7"`),
		msg(15, `"content":"bench t=`+long+`"`),
		msg(16, `"content":"bench t=8`+long+`"`),
	) + "0\r\n\r\n"
	want := "history 9 0,message 10 1700000000123456789,message 11 0,message 12 0,message 13 42,message 14 7,message 15 0,message 16 8,"
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 2))
		p := parser{times: true}
		var got strings.Builder
		rest := []byte(body)
		for len(rest) > 0 {
			n := 1 + rng.IntN(min(len(rest), []int{1, 3, 25, 700}[seed%4]))
			if err := p.feed(rest[:n], func(k lineKind, id, at int64) {
				fmt.Fprintf(&got, "%s %d %d,", []string{"other", "message", "history"}[k], id, at)
			}); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			rest = rest[n:]
		}
		if got.String() != want {
			t.Fatalf("seed %d:\n got %q\nwant %q", seed, got.String(), want)
		}
	}
	// Without times, no time is looked for.
	var p parser
	_ = p.feed([]byte(body), func(k lineKind, id, at int64) {
		if at != 0 {
			t.Fatalf("id %d: time %d without times", id, at)
		}
	})
}

var sinkAt int64

func TestParserTimeAllocatesNothing(t *testing.T) {
	ev := []byte(chunked("id: 10\n" + `data: {"type":"message","data":{"id":"10","agentName":"a","content":"bench t=1700000000123456789 about the length of a typical agent's chatter"}}` + "\n\n"))
	p := parser{times: true}
	onLine := func(_ lineKind, _, at int64) { sinkAt = at }
	if n := testing.AllocsPerRun(100, func() {
		_ = p.feed(ev[:37], onLine)
		_ = p.feed(ev[37:], onLine)
	}); n != 0 {
		t.Fatalf("%v allocations per event", n)
	}
	if sinkAt != 1700000000123456789 {
		t.Fatalf("time %d", sinkAt)
	}
}

// Centrifugo's unidirectional SSE (-target centrifugo): the connect reply
// stands for the history, a publication on the run's channel is a message
// whose id is its offset; other channels and pings are not messages.
func TestParserReadsCentrifugoStreams(t *testing.T) {
	oldMarker, oldPrefix := timeMarker, cfPubPrefix
	t.Cleanup(func() { setMarker(string(oldMarker)); cfPubPrefix = oldPrefix })
	cfPubPrefix = []byte(`data: {"channel":"bench1","pub":{"data":`)
	setMarker(`"offset":`)
	body := chunked("\r\n",
		`data: {"connect":{"client":"c1","version":"6.9.1","subs":{"bench1":{}},"ping":25}}`+"\n\n",
		`data: {"channel":"bench1","pub":{"data":{"content":"bench message, \"offset\":99"},"offset":7}}`+"\n\n",
		"data: {}\n\n",
		`data: {"channel":"other","pub":{"data":{"content":"x"},"offset":8}}`+"\n\n",
		`data: {"channel":"bench1","pub":{"data":{"content":"`+strings.Repeat("y", 3000)+`"},"offset":1234567890}}`+"\n\n",
	)
	for seed := range uint64(50) {
		p := parser{times: true}
		if got, want := feedInPieces(t, &p, body, seed, 40), "history 0,message 7,message 1234567890,"; got != want {
			t.Fatalf("seed %d: got %q, want %q", seed, got, want)
		}
	}
}

func TestCentrifugoTokenIsHS256(t *testing.T) {
	tok, err := cfToken("s3cret", "bench", []string{"bench"}, time.Unix(2000000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q: want three parts", tok)
	}
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if got := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); got != parts[2] {
		t.Errorf("signature %s, want %s", parts[2], got)
	}
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if string(claims) != `{"channels":["bench"],"exp":2000000000,"sub":"bench"}` {
		t.Errorf("claims %s", claims)
	}
}
