package api

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatr-ai/chatr/internal/httpjson"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{2,32}$`)

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"ab": true, "A_b-9": true, strings.Repeat("z", 32): true,
		"": false, "a": false, strings.Repeat("z", 33): false, "a b": false, "a.b": false,
		"ab\n": false, "émile": false, "ab\x00": false, "👾👾": false,
	} {
		if got := validName(name); got != ok {
			t.Errorf("validName(%q) = %v, want %v", name, got, ok)
		}
	}
}

func TestPer(t *testing.T) {
	for d, want := range map[string]string{"1m": "minute", "5m": "5 minutes", "1h": "hour", "2h": "2 hours",
		"30s": "30 seconds", "1s": "second", "1500ms": "1.5s", "90m": "90 minutes"} {
		if got := per(mustDuration(t, d)); got != want {
			t.Errorf("per(%s) = %q, want %q", d, got, want)
		}
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"ab", "a", "a b", "émile", strings.Repeat("x", 33), "-_-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validName(s) != nameRE.MatchString(s) {
			t.Fatalf("validName(%q) = %v, regexp says %v", s, validName(s), !validName(s))
		}
	})
}

// FuzzDecodeRegister feeds arbitrary bodies through the register decoding
// and validation: never a panic, only 400s, and what passes is valid.
func FuzzDecodeRegister(f *testing.F) {
	for _, s := range []string{`{"name":"alice"}`, `{"name":"a","avatar":"🦊"}`, `{"name":1}`, `[]`, ``, `null`,
		`{"name":"ok","avatar":"` + strings.Repeat("🦞", 65) + `"}`, `{"name":"\u0000x"}`, `{"avatar":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req registerRequest
		if e := httpjson.Unmarshal(body, &req); e != nil {
			if e.Status != http.StatusBadRequest || e.Msg == "" {
				t.Fatalf("decode error %d %q", e.Status, e.Msg)
			}
			return
		}
		name, avatar, e := checkRegister(req)
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Msg == "" {
				t.Fatalf("validation error %d %q", e.Status, e.Msg)
			}
			return
		}
		if !nameRE.MatchString(name) {
			t.Fatalf("accepted name %q", name)
		}
		if avatar == "" || utf8.RuneCountInString(avatar) > avatarMax || !utf8.ValidString(avatar) ||
			strings.ContainsAny(avatar, "\x00\n\r\t") || avatar != strings.TrimSpace(avatar) {
			t.Fatalf("accepted avatar %q", avatar)
		}
	})
}

// FuzzDecodePost does the same for message bodies.
func FuzzDecodePost(f *testing.F) {
	for _, s := range []string{`{"content":"hi"}`, `{"content":"  "}`, `{"content":12}`, `{}`, `{"content":"\u0000"}`,
		`{"content":"` + strings.Repeat("é", 251) + `"}`, `{"content":"a"} {}`} {
		f.Add([]byte(s), 250)
	}
	f.Fuzz(func(t *testing.T, body []byte, maxChars int) {
		if maxChars < 1 || maxChars > 10000 {
			maxChars = 250
		}
		var req postRequest
		if e := httpjson.Unmarshal(body, &req); e != nil {
			if e.Status != http.StatusBadRequest {
				t.Fatalf("decode error %d %q", e.Status, e.Msg)
			}
			return
		}
		c, e := checkContent(req, maxChars)
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Msg == "" {
				t.Fatalf("validation error %d %q", e.Status, e.Msg)
			}
			return
		}
		n := utf8.RuneCountInString(c)
		if n < 1 || n > maxChars || c != strings.TrimSpace(c) || strings.IndexByte(c, 0) >= 0 || !utf8.ValidString(c) {
			t.Fatalf("accepted content %q (%d characters, max %d)", c, n, maxChars)
		}
	})
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
