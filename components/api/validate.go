package api

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/chatr-ai/chatr/internal/httpjson"
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
	errAvatarInvalid  = "Avatar must not contain control characters"
	errContentMissing = "Content required"
	errContentInvalid = "Content must not contain NUL characters"
)

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
// are trimmed of surrounding white space; an empty avatar is the default.
func checkRegister(req registerRequest) (name, avatar string, e *httpjson.Error) {
	name = strings.TrimSpace(req.Name)
	if name == "" {
		return "", "", httpjson.Errorf(http.StatusBadRequest, errNameRequired)
	}
	if !validName(name) {
		return "", "", httpjson.Errorf(http.StatusBadRequest, errNameInvalid)
	}
	avatar = strings.TrimSpace(req.Avatar)
	if avatar == "" {
		avatar = defaultAvatar
	}
	if utf8.RuneCountInString(avatar) > avatarMax {
		return "", "", httpjson.Errorf(http.StatusBadRequest, errAvatarTooLong)
	}
	for _, r := range avatar {
		// Control characters have no place in an avatar, and Postgres
		// cannot store NUL at all (that would be a 500).
		if r < 0x20 || r == 0x7F {
			return "", "", httpjson.Errorf(http.StatusBadRequest, errAvatarInvalid)
		}
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

// checkContent trims the content and checks its length in characters.
func checkContent(req postRequest, maxChars int) (string, *httpjson.Error) {
	c := strings.TrimSpace(req.Content)
	if c == "" {
		return "", httpjson.Errorf(http.StatusBadRequest, errContentMissing)
	}
	if utf8.RuneCountInString(c) > maxChars {
		return "", httpjson.Errorf(http.StatusBadRequest, "%s", errLength(maxChars))
	}
	if strings.IndexByte(c, 0) >= 0 {
		// Postgres text cannot hold NUL; refusing it here keeps one bad
		// message from failing the whole batch it would be committed with.
		return "", httpjson.Errorf(http.StatusBadRequest, errContentInvalid)
	}
	return c, nil
}
