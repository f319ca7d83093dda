package linkcheck

import (
	"strings"
	"testing"
)

func TestContains(t *testing.T) {
	links := []string{
		"https://example.com",
		"HTTP://EXAMPLE.COM",
		"ftp://files",
		"see hxxp://evil for more",
		"git+ssh://host/repo",
		"www.example.com",
		"WWW.Example",
		"go to www.foo now",
		"example.com",
		"evil.io",
		"EVIL.IO",
		"Evil.Io",
		"visit evil.io.",
		"(evil.io)",
		`"evil.io"`,
		"evil.org!",
		"example.com/x",
		"example.zzz/x",
		"example.zzz?q=1",
		"example.zzz#top",
		"host.abc:8080",
		"1.2.3.4/x",
		"10.0.0.1:80",
		"bit.ly/abc",
		"sub.domain.co.uk",
		"mail me@evil.io",
		"t.me/channel",
		"aka.ms/x",
		"open.ai",
		"xn--80ak6aa92e.com",
		"пример.xn--p1ai",
		"münchen.de",
		"ｅｖｉｌ．ｉｏ",             // full-width
		"evil。io",             // ideographic full stop
		"ev\u200bil.io",       // zero-width space inside
		"evil\u00ad.io",       // soft hyphen
		"evil.sh/payload",     // file-extension TLD, but with a path
		"click here:evil.xyz", // glued to a colon
		"foo..evil.io",        // a sequence after an empty label
		"a.b.c.d.com",
	}
	for _, s := range links {
		if !Contains(s) {
			t.Errorf("Contains(%q) = false, want true", s)
		}
	}
	prose := []string{
		"",
		"hello world",
		"e.g. this",
		"i.e. that",
		"e.g., i.e., etc.",
		"pi is 3.14",
		"v1.2",
		"upgrade to v1.2.3 now",
		"Mr. Smith",
		"Mr.Smith",
		"file.txt",
		"see README.md",
		"main.rs and install.sh",
		"Node.js/Deno",
		"config.yaml/json",
		"U.S.A.",
		"Ph.D.",
		"a.m. and p.m.",
		"1.1.1.1",
		"version 2.0/3.0",
		"http",
		"://",
		"www",
		"www.",
		"the end. Next sentence",
		"hello...world",
		"ratio 16:9",
		"C:/Users/me",
		"and/or",
		"x.y",
		"foo.bar",
		"node.js",
		"3.5x faster",
		"no.1 fan",
		"st.louis",
		"python3.11/site-packages",
		"I/O bound",
		"🤖.🦞",
	}
	for _, s := range prose {
		if l, ok := Find(s); ok {
			t.Errorf("Find(%q) = %q, want no link", s, l)
		}
	}
}

func TestFindReturnsTheLink(t *testing.T) {
	for s, want := range map[string]string{
		"go to https://x.y/z now": "https://x.y/z",
		"try Evil.IO today":       "evil.io",
		"see www.a.b.":            "www.a.b",
		"at host.zzz/path":        "host.zzz",
	} {
		if got, ok := Find(s); !ok || got != want {
			t.Errorf("Find(%q) = %q, %v; want %q", s, got, ok, want)
		}
	}
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// FuzzContains checks that the detector never panics and keeps its
// promises on any input: case does not matter, a link stays a link inside
// other text, and a scheme URL is always found.
func FuzzContains(f *testing.F) {
	for _, s := range []string{"evil.io", "e.g.", "https://x", "www.a", "1.2.3.4/x", "a..b.com", "ｅｖｉｌ．ｉｏ", "x\u200b.io", ".", "..", ":/", "a.b:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, ok := Find(s)
		if ok && l == "" {
			t.Fatalf("Find(%q) found an empty link", s)
		}
		if got := Contains(asciiUpper(s)); got != ok {
			t.Fatalf("Contains(%q)=%v but Contains(upper)=%v", s, ok, got)
		}
		if ok && !Contains("say "+s+" ok") {
			t.Fatalf("link in %q lost when surrounded by text", s)
		}
		if !Contains(s + " https://example") {
			t.Fatalf("scheme URL after %q not found", s)
		}
		if strings.Contains(strings.ToLower(s), "www.example.com") && !ok {
			t.Fatalf("missed www link in %q", s)
		}
	})
}
