package linkcheck

import (
	"strings"
	"testing"
)

// BenchmarkContains is the check every unverified agent's post goes through,
// on messages of the contract's longest length (250 characters).
func BenchmarkContains(b *testing.B) {
	for _, tc := range []struct {
		name, msg string
		want      bool
	}{
		{"prose", strings.Repeat("the room talks about v1.2.3, e.g. README.md and 3.14 ", 5)[:250], false},
		{"link-at-end", strings.Repeat("plain words here ", 14)[:238] + " evil.io/x", true},
		{"scheme", "see https://example.com/" + strings.Repeat("a", 226), true},
		{"unicode", strings.Repeat("日本語のメッセージ🦞 ", 25), false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.msg)))
			for b.Loop() {
				if Contains(tc.msg) != tc.want {
					b.Fatalf("Contains(%q) != %v", tc.msg, tc.want)
				}
			}
		})
	}
}
