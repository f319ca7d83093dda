package plaintext

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestCheck(t *testing.T) {
	england := "🏴\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F"
	for _, tc := range []struct {
		s     string
		lines bool
		want  Kind // 0: accepted
		at    int
	}{
		{"hello", false, 0, 0},
		{"line one\nline two\tand a tab", true, 0, 0},
		{"line one\nline two", false, Control, 8},
		{"bell\a", true, Control, 4},
		{"\x1b[31mred", true, Control, 0},
		{"del\x7f", true, Control, 3},
		{"c1\u0085next line", true, Control, 2},
		{"c1\u009b31m", true, Control, 2},
		{"form\ffeed", true, Control, 4},
		{"cr\ralone", true, Control, 2},
		{"abc\u202Edcba", true, Bidi, 3},
		{"\u2066isolate\u2069", true, Bidi, 0},
		{"\u202Aembed", true, Bidi, 0},
		{"עברית \u200F mark", true, 0, 0}, // RLM is allowed
		{"عربي\u061C", true, 0, 0},        // ALM too
		{"hi\U000E0069\U000E0067\U000E006E", true, Tag, 2},
		{"flag " + england + " ok", true, 0, 0},
		{england, false, 0, 0},
		{"🏴\U000E0069\U000E0067\U000E006E\U000E006F\U000E0072\U000E0065\U000E0020\U000E0061\U000E006C\U000E006C\U000E007F", true, Tag, 1}, // a hidden sentence behind a flag
		{"🏴\U000E0067\U000E0062", true, Tag, 1}, // no cancel tag
		{"🏴", true, 0, 0},
		{"", true, Invisible, 0},
		{"   \n\t ", true, Invisible, 0},
		{"\u200B\u200B\u200B", true, Invisible, 0},
		{"\u2060\uFEFF\u200D", true, Invisible, 0},
		{"\u0301\u0308", true, Invisible, 0},
		{"\uFE0F\uFE0F", true, Invisible, 0},
		{"\u3164\u3164", true, Invisible, 0},
		{"\u2800", true, Invisible, 0},
		{"\u00A0\u2003\u3000", true, Invisible, 0},
		{"\U0010FFFD", true, Invisible, 0}, // private use draws nothing standard
		{"👨‍👩‍👧", false, 0, 0},             // ZWJ sequences stay allowed
		{"e\u0301", false, 0, 0},
		{"\u200Bx", true, 0, 0},
	} {
		p := Check(tc.s, tc.lines)
		switch {
		case tc.want == 0 && p != nil:
			t.Errorf("Check(%q) = %v, want accepted", tc.s, p)
		case tc.want != 0 && p == nil:
			t.Errorf("Check(%q) accepted, want kind %d", tc.s, tc.want)
		case tc.want != 0 && (p.Kind != tc.want || p.Offset != tc.at):
			t.Errorf("Check(%q) = %v (kind %d at %d), want kind %d at %d", tc.s, p, p.Kind, p.Offset, tc.want, tc.at)
		}
	}
}

func TestProblemSaysWhere(t *testing.T) {
	if got := Check("ab\u202Ecd", true).Error(); got != "a bidirectional formatting character U+202E at character 3" {
		t.Errorf("Error() = %q", got)
	}
	if got := Check("\x1b", true).Error(); got != "a control character U+001B at character 1" {
		t.Errorf("Error() = %q", got)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"e\u0301":       "\u00e9", // decomposed é becomes one character
		"\u00e9":        "\u00e9",
		"a\r\nb":        "a\nb",
		"Å":             "Å",
		"\u212B":        "\u00C5", // the Ångström sign is the letter
		"plain ascii":   "plain ascii",
		"한\u1100\u1161": "한가",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCheck: whatever the text, what Check accepts holds no control
// character (but newline and tab where lines are allowed), no bidi control,
// no tag character outside a closed flag, and something visible; Normalize
// is idempotent and never changes Check's verdict on a character class.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"hi", "\x1b", "a\u202e", "\u200b", "🏴\U000E0067\U000E0062\U000E007F", "e\u0301", "\r\n", "\U000E0041"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, lines bool) {
		n := Normalize(s)
		if Normalize(n) != n || !norm.NFC.IsNormalString(n) {
			t.Fatalf("Normalize(%q) = %q is not a fixed point", s, n)
		}
		p := Check(n, lines)
		if p != nil {
			if p.Error() == "" || p.Offset < 0 || p.Offset > utf8.RuneCountInString(n) {
				t.Fatalf("Check(%q) = %+v", n, p)
			}
			return
		}
		visible := false
		runes := []rune(n)
		for i, r := range runes {
			switch {
			case r == '\n' || r == '\t':
				if !lines {
					t.Fatalf("accepted %q with a line break, lines=false", n)
				}
			case r < 0x20 || r >= 0x7f && r <= 0x9f:
				t.Fatalf("accepted control %U in %q", r, n)
			case r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069:
				t.Fatalf("accepted bidi control %U in %q", r, n)
			case r >= 0xe0000 && r <= 0xe007f:
				// Must be inside 🏴 … U+E007F of at most maxFlagTags tags.
				j := i
				for j > 0 && runes[j-1] >= 0xe0000 && runes[j-1] <= 0xe007f && runes[j-1] != cancelTag {
					j--
				}
				k := i
				for k < len(runes) && runes[k] != cancelTag {
					k++
				}
				if j == 0 || runes[j-1] != blackFlag || k == len(runes) || k-j > maxFlagTags {
					t.Fatalf("accepted a stray tag %U in %q", r, n)
				}
			}
			if isVisible(r) {
				visible = true
			}
		}
		if !visible {
			t.Fatalf("accepted invisible %q", n)
		}
		if strings.TrimSpace(n) == "" {
			t.Fatalf("accepted blank %q", n)
		}
	})
}
