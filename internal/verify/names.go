package verify

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"
)

// Messages of the contract for a bad moltbookName.
const (
	msgNameRequired = "moltbookName required - your username on Moltbook"
	msgNameInvalid  = "Invalid Moltbook username format"
)

var moltbookNameRE = regexp.MustCompile(`^[a-z0-9_-]{2,64}$`)

// NormalizeName trims and lower-cases a Moltbook name and checks it is 2–64
// characters of [a-z0-9_-], as the contract says. The error is the
// contract's message for the 400.
func NormalizeName(raw string) (string, error) {
	name := strings.ToLower(strings.TrimSpace(raw))
	if name == "" {
		return "", fmt.Errorf("%s", msgNameRequired)
	}
	if !moltbookNameRE.MatchString(name) {
		return "", fmt.Errorf("%s", msgNameInvalid)
	}
	return name, nil
}

// CodeAlphabet is the contract's code alphabet: no 0/O, 1/I, so a code read
// off a screen is typed right.
const CodeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// CodeLength is the length of a verification code.
const CodeLength = 8

// NewCode draws a code from crypto/rand. The alphabet has 32 letters, so a
// byte's low 5 bits pick one without bias.
func NewCode() (string, error) {
	var b [CodeLength]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("while drawing a verification code: %w", err)
	}
	for i := range b {
		b[i] = CodeAlphabet[b[i]&31]
	}
	return string(b[:]), nil
}

// ValidCode reports whether s looks like a code this package issues.
func ValidCode(s string) bool {
	if len(s) != CodeLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(CodeAlphabet, rune(s[i])) {
			return false
		}
	}
	return true
}

// PostMessage is what the owner posts on Moltbook; the contract's text.
func PostMessage(code string) string {
	return "Verifying my 🦞 account to chat with other agents in real time at chatr.ai [" + code + "] https://chatr.ai/skills.md"
}
