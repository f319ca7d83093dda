// Package plaintext decides whether text an agent sends (a message, an
// avatar) is text a reader can see for what it is. Refused:
//
//   - control characters: C0 (but newline and tab, where lines are allowed),
//     DEL and C1 — they drive terminals (ESC sequences), ring bells and
//     break log lines;
//   - bidirectional embeddings, overrides and isolates (U+202A–U+202E,
//     U+2066–U+2069), which reorder what is displayed ("Trojan Source"); the
//     plain marks LRM, RLM and ALM stay allowed, as right-to-left writing
//     needs them;
//   - tag characters (U+E0000–U+E007F) outside an emoji tag sequence: they
//     are invisible, and can smuggle text that a language model reads but a
//     person does not see; a subdivision flag (🏴 + tags + cancel tag) keeps
//     working;
//   - text with nothing visible in it: only white space, zero-width and
//     format characters, combining marks, variation selectors or blank
//     fillers (U+3164, U+2800, …).
//
// Normalize puts text in Unicode Normalization Form C first, so that the
// same text is stored, compared and counted the same way whichever form the
// client sent.
package plaintext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalize returns s in NFC with CRLF line ends turned into LF (a lone CR
// stays, for Check to refuse).
func Normalize(s string) string {
	if strings.IndexByte(s, '\r') >= 0 {
		s = dropCRBeforeLF(s)
	}
	if norm.NFC.IsNormalString(s) {
		return s
	}
	return norm.NFC.String(s)
}

// dropCRBeforeLF removes every run of CRs that ends in an LF, in one pass
// (so "\r\r\n" is "\n", and the result has no CRLF left to turn into LF).
func dropCRBeforeLF(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if s[i] != '\r' {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] == '\r' {
			j++
		}
		if j == len(s) || s[j] != '\n' {
			b.WriteString(s[i:j])
		}
		i = j
	}
	return b.String()
}

// Problem is what makes a text unacceptable; its Error says which character
// and where, for the client's error message.
type Problem struct {
	Kind   Kind
	Rune   rune // the offending character (0 for Invisible)
	Offset int  // its position, in characters from 0
}

// Kind is the class of a Problem.
type Kind int

const (
	// Control is a control character.
	Control Kind = iota + 1
	// Bidi is a bidirectional embedding, override or isolate.
	Bidi
	// Tag is a tag character outside an emoji tag sequence.
	Tag
	// Invisible is a text with no visible character.
	Invisible
)

func (p *Problem) Error() string {
	switch p.Kind {
	case Control:
		return fmt.Sprintf("a control character U+%04X at character %d", p.Rune, p.Offset+1)
	case Bidi:
		return fmt.Sprintf("a bidirectional formatting character U+%04X at character %d", p.Rune, p.Offset+1)
	case Tag:
		return fmt.Sprintf("an invisible tag character U+%04X at character %d", p.Rune, p.Offset+1)
	default:
		return "no visible character"
	}
}

// Check returns the first problem of s, or nil. lines allows newline and
// tab (messages have lines; avatars do not).
func Check(s string, lines bool) *Problem {
	visible := false
	n := 0 // characters so far
	for i := 0; i < len(s); n++ {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\n' || r == '\t':
			if !lines {
				return &Problem{Control, r, n}
			}
		case r < 0x20 || r >= 0x7F && r <= 0x9F:
			return &Problem{Control, r, n}
		case r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069:
			return &Problem{Bidi, r, n}
		case r >= 0xE0000 && r <= 0xE007F:
			return &Problem{Tag, r, n}
		case r == blackFlag:
			// A subdivision flag: 🏴, tag letters or digits, cancel tag.
			if end, tags := flagTags(s[i+size:]); tags > 0 {
				visible = true
				i += size + end
				n += tags
				continue
			}
		}
		if !visible && isVisible(r) {
			visible = true
		}
		i += size
	}
	if !visible {
		return &Problem{Kind: Invisible}
	}
	return nil
}

const (
	blackFlag = 0x1F3F4
	cancelTag = 0xE007F
	// maxFlagTags bounds a subdivision code (region plus subdivision, as
	// in "gbsct"), so that a flag cannot carry a hidden sentence.
	maxFlagTags = 7
)

// flagTags reads the tag run of an emoji tag sequence at the start of s:
// tag digits or lower-case tag letters ending with the cancel tag. It
// returns the bytes and characters it spans, or 0, 0 if s does not start
// with such a run.
func flagTags(s string) (end, chars int) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == cancelTag && chars >= 2:
			return i + size, chars + 1
		case (r >= 0xE0030 && r <= 0xE0039 || r >= 0xE0061 && r <= 0xE007A) && chars < maxFlagTags:
			chars++
			i += size
		default:
			return 0, 0
		}
	}
	return 0, 0
}

// isVisible reports whether r draws something on its own.
func isVisible(r rune) bool {
	switch {
	case unicode.IsSpace(r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Mn, r),
		unicode.Is(unicode.Me, r), unicode.Is(unicode.Variation_Selector, r):
		return false
	}
	switch r {
	case 0x115F, 0x1160, 0x3164, 0xFFA0, // Hangul fillers
		0x2800,         // braille pattern blank
		0x180E,         // Mongolian vowel separator
		0x034F,         // combining grapheme joiner
		0x17B4, 0x17B5: // Khmer inherent vowels
		return false
	}
	return unicode.IsGraphic(r)
}
