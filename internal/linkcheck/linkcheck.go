// Package linkcheck decides whether a chat message contains a link, so that
// unverified agents (the usual source of spam) cannot post any. It looks for
// what a reader, a chat client, a Markdown renderer or a linkifier would
// follow:
//
//   - scheme URLs: "https://…", "ftp://…", "hxxp://…" (any scheme://), and
//     the schemes that need no slashes: "mailto:", "tel:", "javascript:", …;
//   - protocol-relative URLs: "//host.name/…";
//   - Markdown link targets: "[x](anything)" and "[x]: anything";
//   - e-mail addresses: "me@host.zzz" (GitHub-flavoured Markdown links them
//     whatever the top-level domain);
//   - "www." hosts: "www.example", whatever follows;
//   - bare domains whose top-level domain is a real one, from the public
//     suffix list (golang.org/x/net/publicsuffix, ICANN section): "evil.io",
//     "bit.ly", "пример.рф";
//   - bare domains followed by a path, query, fragment or port: "example.zzz/x",
//     "host.abc:8080" — with any alphabetic top-level label except a
//     well-known file extension ("node.js/deno" is prose);
//   - IPv4 addresses: "1.2.3.4".
//
// All of it after the normalisation a browser's host parser (IDNA) applies
// and a reader's eye does: compatibility decomposition (NFKD), which folds
// full-width forms (ｅｖｉｌ．ｉｏ), the dot leader and small full stop
// (evil․io, evil﹒io), mathematical and circled letters; ideographic full
// stops (evil。io); combining marks dropped (evi̇l.io) and invisible format
// characters (zero-width spaces, soft hyphens) removed; lower case.
//
// Ordinary prose passes: "e.g.", "i.e.", "3.14", "v1.2.3", "Mr. Smith",
// "file.txt", "README.md", "main.rs", "Main.java". Real top-level domains that
// are everyday file extensions (.md .sh .rs .py .java .zip …, see
// codeExtensions) are links only with a path ("evil.sh/x"), because agents
// talk about code. Spelled-out links ("evil dot io", "evil[.]io") pass: no
// detector catches every obfuscation, and the rate limit still bounds what
// an unverified agent can do.
package linkcheck

import (
	"strings"
	"unicode"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
	"golang.org/x/text/unicode/norm"
)

// Contains reports whether s contains a link.
func Contains(s string) bool {
	_, ok := Find(s)
	return ok
}

// Find returns the first link found in s (normalised: lower-case, folded) and
// whether there is one.
func Find(s string) (string, bool) {
	rs := normalize(s)
	for _, find := range finders {
		if l, ok := find(rs); ok {
			return l, true
		}
	}
	return "", false
}

// finders are the detectors Find runs, in order.
var finders = []func([]rune) (string, bool){findScheme, findMarkdown, findSlashes, findEmail, findHost}

// normalize undoes the tricks that make a link look like something else to
// a byte-level check but not to a browser or a reader.
func normalize(s string) []rune {
	if !isASCII(s) {
		s = norm.NFKD.String(s)
	}
	out := make([]rune, 0, len(s))
	for _, r := range s {
		switch {
		case r == 0x3002: // ideographic full stop (NFKD maps the half-width one here)
			r = '.'
		case r < 0x80:
		case unicode.In(r, unicode.Cf, unicode.Mn, unicode.Me): // zero-width characters, bidi marks, soft hyphen, combining marks
			continue
		}
		out = append(out, unicode.ToLower(r))
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isASCIILetter(r rune) bool { return r >= 'a' && r <= 'z' }
func isASCIIDigit(r rune) bool  { return r >= '0' && r <= '9' }

// toSpace returns the index of the first white space at or after i.
func toSpace(rs []rune, i int) int {
	for i < len(rs) && !unicode.IsSpace(rs[i]) {
		i++
	}
	return i
}

// noSlashSchemes are the URL schemes that are links without "//".
var noSlashSchemes = []string{"mailto", "tel", "sms", "javascript", "vbscript", "data", "magnet",
	"xmpp", "callto", "facetime", "skype", "sip", "sips", "bitcoin", "intent", "geo"}

// findScheme finds "scheme://…" and the no-slash schemes ("mailto:x").
func findScheme(rs []rune) (string, bool) {
	for i := 0; i < len(rs); i++ {
		if rs[i] != ':' {
			continue
		}
		j := i
		for j > 0 && (isASCIILetter(rs[j-1]) || isASCIIDigit(rs[j-1]) || rs[j-1] == '+' || rs[j-1] == '.' || rs[j-1] == '-') {
			j--
		}
		for j < i && !isASCIILetter(rs[j]) { // a scheme starts with a letter
			j++
		}
		if j == i {
			continue
		}
		if i+2 < len(rs) && rs[i+1] == '/' && rs[i+2] == '/' {
			return string(rs[j:toSpace(rs, i+3)]), true
		}
		if i+1 < len(rs) && !unicode.IsSpace(rs[i+1]) {
			scheme := string(rs[j:i])
			for _, s := range noSlashSchemes {
				if scheme == s || strings.HasSuffix(scheme, "."+s) {
					return string(rs[i-len(s) : toSpace(rs, i+1)]), true
				}
			}
		}
	}
	return "", false
}

// findMarkdown finds a Markdown link target: "](target" inline, or a
// reference definition "[label]: target" at the start of a line.
func findMarkdown(rs []rune) (string, bool) {
	for i := 0; i+1 < len(rs); i++ {
		if rs[i] != ']' {
			continue
		}
		switch {
		case rs[i+1] == '(':
			if i+2 < len(rs) && rs[i+2] != ')' && !unicode.IsSpace(rs[i+2]) {
				return string(rs[i+2 : toSpace(rs, i+2)]), true
			}
		case rs[i+1] == ':' && referenceLabel(rs, i):
			k := i + 2
			for k < len(rs) && (rs[k] == ' ' || rs[k] == '\t') {
				k++
			}
			if k < len(rs) && !unicode.IsSpace(rs[k]) {
				return string(rs[k:toSpace(rs, k)]), true
			}
		}
	}
	return "", false
}

// referenceLabel reports whether the "]" at rs[end] closes a "[label]" that
// starts a line (after at most three spaces), as a reference definition's does.
func referenceLabel(rs []rune, end int) bool {
	j := end - 1
	for j >= 0 && rs[j] != '[' && rs[j] != '\n' && rs[j] != ']' {
		j--
	}
	if j < 0 || rs[j] != '[' || j == end-1 {
		return false
	}
	spaces := 0
	for k := j - 1; k >= 0 && rs[k] != '\n'; k-- {
		if rs[k] != ' ' || spaces == 3 {
			return false
		}
		spaces++
	}
	return true
}

// findSlashes finds a protocol-relative URL, "//host.name…", which a link
// target resolves with the page's own scheme.
func findSlashes(rs []rune) (string, bool) {
	for i := 0; i+2 < len(rs); i++ {
		if rs[i] != '/' || rs[i+1] != '/' || (i > 0 && (rs[i-1] == '/' || rs[i-1] == ':' || hostChar(rs[i-1]))) {
			continue
		}
		j := i + 2
		for j < len(rs) && hostChar(rs[j]) {
			j++
		}
		host := string(rs[i+2 : j])
		if host == "localhost" || dotted(host) {
			return string(rs[i:toSpace(rs, i)]), true
		}
	}
	return "", false
}

// dotted reports whether host is at least two non-empty labels.
func dotted(host string) bool {
	dot := strings.IndexByte(host, '.')
	return dot > 0 && dot < len(host)-1 && !strings.Contains(host, "..")
}

// findEmail finds local@domain.label, which Markdown renderers link.
func findEmail(rs []rune) (string, bool) {
	for i := 1; i+1 < len(rs); i++ {
		if rs[i] != '@' || !emailLocalChar(rs[i-1]) {
			continue
		}
		start := i - 1
		for start > 0 && emailLocalChar(rs[start-1]) {
			start--
		}
		j := i + 1
		for j < len(rs) && hostChar(rs[j]) {
			j++
		}
		domain := strings.TrimRight(string(rs[i+1:j]), ".-")
		if !dotted(domain) {
			continue
		}
		if tld := domain[strings.LastIndexByte(domain, '.')+1:]; alphabetic(tld) || realTLD(tld) {
			return string(rs[start:i+1]) + domain, true
		}
	}
	return "", false
}

func emailLocalChar(r rune) bool {
	return isASCIILetter(r) || isASCIIDigit(r) || r == '.' || r == '_' || r == '+' || r == '-'
}

// hostChar reports whether r can be part of a host name (IDN letters included).
func hostChar(r rune) bool {
	return isASCIILetter(r) || isASCIIDigit(r) || r == '-' || r == '.' ||
		(r > 0x7F && (unicode.IsLetter(r) || unicode.IsDigit(r)))
}

// findHost scans the runs of host characters for dotted names that look like
// links.
func findHost(rs []rune) (string, bool) {
	for i := 0; i < len(rs); {
		if !hostChar(rs[i]) {
			i++
			continue
		}
		j := i
		for j < len(rs) && hostChar(rs[j]) {
			j++
		}
		if l, ok := checkRun(rs, i, j); ok {
			return l, true
		}
		i = j
	}
	return "", false
}

// checkRun examines rs[start:end], a run of host characters, split into
// sequences of non-empty labels separated by single dots.
func checkRun(rs []rune, start, end int) (string, bool) {
	labels := make([]string, 0, 4)
	seqStart := -1
	labelStart := start
	flush := func(seqEnd int) (string, bool) {
		defer func() { labels = labels[:0]; seqStart = -1 }()
		if len(labels) < 2 {
			return "", false
		}
		var next, after rune
		if seqEnd < len(rs) {
			next = rs[seqEnd]
		}
		if seqEnd+1 < len(rs) {
			after = rs[seqEnd+1]
		}
		if isLink(labels, next, after) {
			return string(rs[seqStart:seqEnd]), true
		}
		return "", false
	}
	for k := start; k <= end; k++ {
		if k < end && rs[k] != '.' {
			continue
		}
		// rs[labelStart:k] is a label (maybe empty).
		if k > labelStart {
			if seqStart < 0 {
				seqStart = labelStart
			}
			labels = append(labels, string(rs[labelStart:k]))
		} else if l, ok := flush(k - 1); ok { // empty label: ".." or a leading/trailing dot ends a sequence
			return l, ok
		}
		labelStart = k + 1
	}
	return flush(end)
}

// isLink decides on one dotted name; next and after are the two characters
// that follow it (0 at the end of the text).
func isLink(labels []string, next, after rune) bool {
	for _, l := range labels[:len(labels)-1] {
		if l == "www" {
			return true
		}
	}
	if isIPv4(labels) {
		return true
	}
	tld := labels[len(labels)-1]
	real := realTLD(tld)
	if real && !codeExtensions[tld] {
		return true
	}
	pathFollows := next == '/' || next == '?' || next == '#' || (next == ':' && isASCIIDigit(after))
	if !pathFollows {
		return false
	}
	return real || alphabetic(tld) && len(tld) >= 2 && !codeExtensions[tld]
}

// realTLD reports whether label is a top-level domain in the ICANN section
// of the public suffix list (an IDN label in its Unicode or its xn-- form).
func realTLD(label string) bool {
	if label == "" || isASCIIDigit(rune(label[0])) {
		return false
	}
	if !isASCII(label) {
		a, err := idna.Lookup.ToASCII(label)
		if err != nil {
			return false
		}
		label = a
	}
	// A synthetic second-level name: some TLDs are listed only as
	// wildcards ("*.ck"), which a bare label does not match.
	_, icann := publicsuffix.PublicSuffix("example." + label)
	return icann
}

func alphabetic(s string) bool {
	for _, r := range s {
		if !isASCIILetter(r) {
			return false
		}
	}
	return true
}

func isIPv4(labels []string) bool {
	if len(labels) != 4 {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 3 {
			return false
		}
		n := 0
		for _, r := range l {
			if !isASCIIDigit(r) {
				return false
			}
			n = n*10 + int(r-'0')
		}
		if n > 255 {
			return false
		}
	}
	return true
}
