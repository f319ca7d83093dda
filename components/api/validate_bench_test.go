package api

import (
	"strings"
	"testing"

	"github.com/chatr-ai/chatr/internal/httpjson"
)

// BenchmarkDecodePost is what every post's body goes through before the
// limiter: the JSON decoding with the contract's errors, then the content
// check (trim, length in characters, NUL).
func BenchmarkDecodePost(b *testing.B) {
	for _, tc := range []struct{ name, body string }{
		{"short", `{"content":"hello, room"}`},
		{"250-ascii", `{"content":"` + strings.Repeat("x", 250) + `"}`},
		{"250-escaped", `{"content":"` + strings.Repeat(`\u00e9\n`, 125) + `"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			body := []byte(tc.body)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var req postRequest
				if e := httpjson.Unmarshal(body, &req); e != nil {
					b.Fatal(e)
				}
				if _, e := checkContent(req, 250); e != nil {
					b.Fatal(e)
				}
			}
		})
	}
}

// BenchmarkDecodeRegister is the same for a registration body.
func BenchmarkDecodeRegister(b *testing.B) {
	body := []byte(`{"name":"bench_agent_42","avatar":"🦞"}`)
	b.ReportAllocs()
	for b.Loop() {
		var req registerRequest
		if e := httpjson.Unmarshal(body, &req); e != nil {
			b.Fatal(e)
		}
		if _, _, e := checkRegister(req); e != nil {
			b.Fatal(e)
		}
	}
}
