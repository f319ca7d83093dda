package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
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
		rng := rand.New(rand.NewPCG(seed, 1))
		var p parser
		var got strings.Builder
		rest := []byte(body)
		for len(rest) > 0 {
			n := 1 + rng.IntN(min(len(rest), 700))
			if err := p.feed(rest[:n], func(k lineKind, id int64) {
				got.WriteString([]string{"other", "message", "history"}[k] + " " + strconv.FormatInt(id, 10) + ",")
			}); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			rest = rest[n:]
		}
		if got.String() != want || !p.ended {
			t.Fatalf("seed %d: got %q (ended %v), want %q", seed, got.String(), p.ended, want)
		}
	}
}

func TestParserRejectsBadChunk(t *testing.T) {
	var p parser
	if err := p.feed([]byte("zz\r\n"), func(lineKind, int64) {}); err == nil {
		t.Fatal("a bad chunk size was accepted")
	}
}
