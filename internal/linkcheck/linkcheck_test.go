package linkcheck

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"
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
		"foo.bar", // .bar is a real TLD
		"1.1.1.1", // a bare IPv4 address
		"ping 10.0.0.1 now",
		"evil\u2024io", // one dot leader
		"evil\ufe52io", // small full stop
		"evil\uff61io", // half-width ideographic full stop
		"пример.рф",    // an IDN host under an IDN TLD
		"пример.РФ",
		"evi\u0307l.io", // a combining mark inside
		"e\u0301vil.com",
		"𝐞𝐯𝐢𝐥.𝐢𝐨", // mathematical bold
		"ⓔⓥⓘⓛ.ⓘⓞ", // circled letters
		"[click](evil.zzz)",
		"[x](/relative/path)",
		"[x]: evil.zzz",
		"  [ref]: https-less.zzz",
		"text\n[r]:evil.zzz",
		"see //host.zzz/x",
		"(//evil.zzz)",
		"mailto:me@evil.zzz",
		"MAILTO:x",
		"javascript:alert(1)",
		"tel:+15551234",
		"data:text/html,hi",
		"write me@host.zzz",
		"a.b+c@mail.example",
		"Main.java/x",
		"app.js.map/x",
		"www.ex\u00adample",
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
		"version 2.0/3.0",
		"Main.java",
		"id_rsa.pub",
		"meson.build",
		"note: this",
		"data: 5 rows",
		"// TODO later",
		"a//b",
		"time 12:30",
		"[x] done",
		"[link](",
		"[empty]()",
		"see [1]: no",
		"@alice hi",
		"foo@bar",
		"1.2.3",
		"1.2.3.4.5",
		"256.1.1.1",
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

// FuzzLinkifiable is the detector's promise as a property: a link that a
// browser, a Markdown renderer or a linkifier would follow is found
// wherever it sits in other text, however it is dressed up with the
// disguises a host parser or a reader's eye undoes (case, full-width forms,
// look-alike dots, zero-width characters, combining marks).
func FuzzLinkifiable(f *testing.F) {
	f.Add("hello", "world", uint8(0), "evil", "mail", uint8(0), uint8(0), uint8(1), uint8(2), uint8(3), uint8(4))
	f.Add("", "", uint8(2), "x", "y", uint8(0xff), uint8(5), uint8(0), uint8(0), uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, prefix, suffix string, form uint8, a, b string, disguise, tld, o1, o2, o3, o4 uint8) {
		host, other := label(a), label(b)
		real := realTLDs[int(tld)%len(realTLDs)]
		made := label(b) // an alphabetic top-level label, maybe not a real one
		for len(made) < 2 || codeExtensions[made] || !alphabetic(made) {
			made = strings.Map(func(r rune) rune { return 'a' + (r % 26) }, made) + "q"
		}
		var link string
		switch form % 9 {
		case 0:
			link = "https://" + host
		case 1:
			link = "www." + host
		case 2:
			link = host + "." + real
		case 3:
			link = host + "." + made + "/" + other
		case 4:
			link = fmt.Sprintf("%d.%d.%d.%d", o1, o2, o3, o4)
		case 5:
			link = "[" + other + "](" + host + ")"
		case 6:
			link = "//" + host + "." + real
		case 7:
			link = "mailto:" + host
		case 8:
			link = host + "@" + other + "." + made
		}
		link = dress(link, disguise)
		s := prefix + " " + link + " " + suffix
		if !Contains(s) {
			t.Fatalf("missed the link %q (form %d, disguise %08b) in %q", link, form%9, disguise, s)
		}
	})
}

// realTLDs are top-level domains of the public suffix list, ASCII and IDN,
// none of them a code extension.
var realTLDs = []string{"com", "io", "org", "ai", "dev", "app", "xyz", "de", "co", "uk", "ly", "me", "bar", "рф", "中国", "xn--p1ai", "zone", "ninja", "cat"}

// label turns fuzz input into a non-empty host label of [a-z0-9].
func label(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 20; i++ {
		c := s[i] % 36
		if c < 26 {
			b.WriteByte('a' + c)
		} else {
			b.WriteByte('0' + c - 26)
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

// dress applies the disguises selected by the bits of d.
func dress(link string, d uint8) string {
	dots := []string{".", "．", "․", "﹒", "。", "｡"}
	if d&1 != 0 {
		link = strings.ToUpper(link)
	}
	if d&2 != 0 {
		link = strings.ReplaceAll(link, ".", dots[int(d>>5)%len(dots)])
	}
	var b strings.Builder
	for _, r := range link {
		if d&4 != 0 && r >= '!' && r <= '~' {
			r += 0xFEE0 // full-width form
		}
		b.WriteRune(r)
		if d&8 != 0 {
			b.WriteRune('\u200b')
		}
		if d&16 != 0 && unicode.IsLetter(r) {
			b.WriteRune('\u0301')
		}
	}
	return b.String()
}

// The code extensions that are also real top-level domains are exactly the
// ones codeExtensions' comment names (a bare "README.md" is prose, so a bare
// "evil.md" passes: the comment must say which domains that opens).
func TestCodeExtensionsThatAreDomains(t *testing.T) {
	documented := strings.Fields("md sh rs py pl pm cc so ps mk ac am tf ml zip mov java pub map build")
	var got []string
	for ext := range codeExtensions {
		if realTLD(ext) {
			got = append(got, ext)
		}
	}
	slices.Sort(got)
	slices.Sort(documented)
	if !slices.Equal(got, documented) {
		t.Errorf("code extensions that are real TLDs: %v; the comment says %v", got, documented)
	}
	for _, d := range documented {
		if Contains("see README." + d) {
			t.Errorf("README.%s is a link", d)
		}
		if !Contains("see evil." + d + "/x") {
			t.Errorf("evil.%s/x is not a link", d)
		}
	}
}
