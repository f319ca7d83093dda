package api

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/chatr-ai/chatr/internal/httpjson"
	"github.com/chatr-ai/chatr/internal/plaintext"
)

// What "character" means here: a Unicode code point (a rune), the unit the
// contract counts message length in and what JavaScript's [...s].length
// counts. An emoji with a skin tone or a ZWJ family is several characters.

// Name rules: 2–32 of [A-Za-z0-9_-], unique regardless of case (the store's index).
const (
	nameMin = 2
	nameMax = 32
	// avatarMax is the longest avatar, in characters.
	avatarMax     = 64
	defaultAvatar = "🤖"
)

// Error strings of the contract (and ours where it says nothing).
const (
	errNameRequired   = "Name required"
	errNameInvalid    = "Name must be 2-32 characters: letters, numbers, _ or -"
	errAvatarTooLong  = "Avatar must be under 64 characters"
	errContentMissing = "Content required"
)

// textError is the 400 for text that hides something: a control or
// bidirectional formatting character, a stray tag character, or nothing
// visible at all (what plaintext.Check refuses).
func textError(field string, p *plaintext.Problem) *httpjson.Error {
	if p.Kind == plaintext.Invisible {
		return httpjson.Errorf(http.StatusBadRequest, "%s must contain a visible character", field)
	}
	return httpjson.Errorf(http.StatusBadRequest, "%s must not contain %s", field, p)
}

// validName reports whether name is 2–32 characters of [A-Za-z0-9_-].
func validName(name string) bool {
	if len(name) < nameMin || len(name) > nameMax {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// registerRequest is the body of POST /api/register.
type registerRequest struct {
	Name   string `json:"name"`
	Avatar string `json:"avatar"`
}

// checkRegister validates and normalises a registration: the name and avatar
// are trimmed of surrounding white space; an empty avatar is the default; the
// avatar is put in NFC before its characters are counted, and must be one
// line of visible text (plaintext.Check).
func checkRegister(req registerRequest) (name, avatar string, e *httpjson.Error) {
	name = strings.TrimSpace(req.Name)
	if name == "" {
		return "", "", httpjson.Errorf(http.StatusBadRequest, errNameRequired)
	}
	if !validName(name) {
		return "", "", httpjson.Errorf(http.StatusBadRequest, errNameInvalid)
	}
	avatar = plaintext.Normalize(strings.TrimSpace(req.Avatar))
	if avatar == "" {
		avatar = defaultAvatar
	}
	if utf8.RuneCountInString(avatar) > avatarMax {
		return "", "", httpjson.Errorf(http.StatusBadRequest, errAvatarTooLong)
	}
	// Control characters have no place in an avatar (and Postgres cannot
	// store NUL at all: that would be a 500).
	if p := plaintext.Check(avatar, false); p != nil {
		return "", "", textError("Avatar", p)
	}
	return name, avatar, nil
}

// postRequest is the body of POST /api/messages.
type postRequest struct {
	Content string `json:"content"`
}

// errLength is the contract's length error for the configured maximum.
func errLength(maxChars int) string {
	return fmt.Sprintf("Message must be 1-%d characters", maxChars)
}

// checkContent trims the content, puts it in NFC, checks its length in
// characters and that it is visible text (newlines and tabs allowed). NUL,
// which Postgres text cannot hold, is one of the refused control
// characters: refusing it here keeps one bad message from failing the whole
// batch it would be committed with.
func checkContent(req postRequest, maxChars int) (string, *httpjson.Error) {
	c := plaintext.Normalize(strings.TrimSpace(req.Content))
	if c == "" {
		return "", httpjson.Errorf(http.StatusBadRequest, errContentMissing)
	}
	if utf8.RuneCountInString(c) > maxChars {
		return "", httpjson.Errorf(http.StatusBadRequest, "%s", errLength(maxChars))
	}
	if p := plaintext.Check(c, true); p != nil {
		return "", textError("Content", p)
	}
	return c, nil
}
