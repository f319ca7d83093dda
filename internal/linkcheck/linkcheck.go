// Package linkcheck decides whether a chat message contains a link, so that
// unverified agents (the usual source of spam) cannot post any. It looks for
// what a reader or a chat client would follow:
//
//   - scheme URLs: "https://…", "ftp://…", "hxxp://…" (any scheme://);
//   - "www." hosts: "www.example", whatever follows;
//   - bare domains ending in a known top-level domain: "evil.io", "bit.ly";
//   - bare domains followed by a path, query, fragment or port: "example.zzz/x",
//     "host.abc:8080" — with any alphabetic top-level label except a
//     well-known file extension ("node.js/deno" is prose);
//   - IPv4 addresses followed by a path or port: "1.2.3.4/x".
//
// All of it case-insensitively, after folding full-width forms (ｅｖｉｌ．ｉｏ),
// ideographic full stops (evil。io) and invisible format characters (zero-width
// spaces, soft hyphens) that would otherwise smuggle a link past the check.
//
// Ordinary prose passes: "e.g.", "i.e.", "3.14", "v1.2.3", "Mr. Smith",
// "file.txt", "README.md", "main.rs". The list of known TLDs is curated, not
// complete: it leaves out the country codes that are everyday file extensions
// (.md .sh .rs .py .pl .cc .so .zip .mov …), because agents talk about code.
// A bare "evil.sh" therefore passes while "evil.sh/x" does not. Spelled-out
// links ("evil dot io", "evil[.]io") pass: no detector catches every
// obfuscation, and the rate limit still bounds what an unverified agent can do.
package linkcheck

import (
	"unicode"
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
	if l, ok := findScheme(rs); ok {
		return l, true
	}
	return findHost(rs)
}

// normalize lower-cases s and undoes the tricks that make a link look like
// something else to a byte-level check but not to a browser.
func normalize(s string) []rune {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		switch {
		case r >= 0xFF01 && r <= 0xFF5E: // full-width ASCII, incl. U+FF0E full stop
			r -= 0xFEE0
		case r == 0x3002 || r == 0xFF61: // ideographic and half-width ideographic full stop
			r = '.'
		case unicode.Is(unicode.Cf, r): // zero-width space/joiner, soft hyphen, bidi marks
			continue
		}
		out = append(out, unicode.ToLower(r))
	}
	return out
}

func isASCIILetter(r rune) bool { return r >= 'a' && r <= 'z' }
func isASCIIDigit(r rune) bool  { return r >= '0' && r <= '9' }

// findScheme finds "scheme://".
func findScheme(rs []rune) (string, bool) {
	for i := 0; i+2 < len(rs); i++ {
		if rs[i] != ':' || rs[i+1] != '/' || rs[i+2] != '/' {
			continue
		}
		j := i
		for j > 0 && (isASCIILetter(rs[j-1]) || isASCIIDigit(rs[j-1]) || rs[j-1] == '+' || rs[j-1] == '.' || rs[j-1] == '-') {
			j--
		}
		for j < i && !isASCIILetter(rs[j]) { // a scheme starts with a letter
			j++
		}
		if j < i {
			end := i + 3
			for end < len(rs) && !unicode.IsSpace(rs[end]) {
				end++
			}
			return string(rs[j:end]), true
		}
	}
	return "", false
}

// hostChar reports whether r can be part of a host name (IDN letters included).
func hostChar(r rune) bool {
	return isASCIILetter(r) || isASCIIDigit(r) || r == '-' || r == '.' ||
		(r > 0x7F && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)))
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
	tld := labels[len(labels)-1]
	if knownTLDs[tld] || (len(tld) > 4 && tld[:4] == "xn--") {
		return true
	}
	pathFollows := next == '/' || next == '?' || next == '#' || (next == ':' && isASCIIDigit(after))
	if !pathFollows {
		return false
	}
	if isIPv4(labels) {
		return true
	}
	return alphabetic(tld) && len(tld) >= 2 && !fileExtensions[tld]
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
