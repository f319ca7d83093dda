package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/chatr-ai/chatr/internal/httpjson"
)

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{2,32}$`)
	crlf   = regexp.MustCompile(`\r+\n`) // line ends the server turns into "\n"
)

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
// and validation: never a panic, only 400s; the decision agrees with the
// contract's rules applied to what encoding/json reads from the body (name:
// trimmed, 2–32 of [A-Za-z0-9_-]; avatar: trimmed, the default when empty, at
// most 64 characters, no control character), and what passes is a fixed
// point: registering the accepted name and avatar again accepts them as they are.
func FuzzDecodeRegister(f *testing.F) {
	for _, s := range []string{`{"name":"alice"}`, `{"name":"a","avatar":"🦊"}`, `{"name":1}`, `[]`, ``, `null`,
		`{"name":"ok","avatar":"` + strings.Repeat("🦞", 65) + `"}`, `{"name":"\u0000x"}`, `{"avatar":"\ud800"}`,
		`{"NAME":" bob_1 ","Avatar":" \t "}`, `{"name":"ok","avatar":"a\u007f"}`} {
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
		var ref registerRequest
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, &ref); err != nil || ref != req {
				t.Fatalf("%q: decoded %+v, encoding/json %+v (%v)", body, req, ref, err)
			}
		}
		// The contract's rules, applied independently.
		wantName, wantAvatar := strings.TrimSpace(ref.Name), norm.NFC.String(crlf.ReplaceAllString(strings.TrimSpace(ref.Avatar), "\n"))
		if wantAvatar == "" {
			wantAvatar = defaultAvatar
		}
		wantErr := ""
		switch {
		case wantName == "":
			wantErr = errNameRequired
		case !nameRE.MatchString(wantName):
			wantErr = errNameInvalid
		case utf8.RuneCountInString(wantAvatar) > avatarMax:
			wantErr = errAvatarTooLong
		default:
			wantErr = firstHidden("Avatar", wantAvatar, false)
		}
		name, avatar, e := checkRegister(req)
		if e != nil {
			if e.Status != http.StatusBadRequest || !sameError(e.Msg, wantErr) {
				t.Fatalf("%q: refused with %d %q, want %q", body, e.Status, e.Msg, wantErr)
			}
			return
		}
		if wantErr != "" || name != wantName || avatar != wantAvatar {
			t.Fatalf("%q: accepted %q %q, want %q %q (%q)", body, name, avatar, wantName, wantAvatar, wantErr)
		}
		if !utf8.ValidString(avatar) {
			t.Fatalf("accepted avatar %q", avatar)
		}
		again, err := json.Marshal(registerRequest{Name: name, Avatar: avatar})
		if err != nil {
			t.Fatal(err)
		}
		var req2 registerRequest
		if e := httpjson.Unmarshal(again, &req2); e != nil {
			t.Fatalf("re-encoded %s: %v", again, e)
		}
		if n2, a2, e := checkRegister(req2); e != nil || n2 != name || a2 != avatar {
			t.Fatalf("re-registering %s: %q %q %v", again, n2, a2, e)
		}
	})
}

// FuzzDecodePost does the same for message bodies: the decision agrees with
// the rules applied to what encoding/json reads (content trimmed, 1 to
// maxChars characters, no NUL), and accepted content posted again is
// accepted unchanged.
func FuzzDecodePost(f *testing.F) {
	for _, s := range []string{`{"content":"hi"}`, `{"content":"  "}`, `{"content":12}`, `{}`, `{"content":"\u0000"}`,
		`{"content":"` + strings.Repeat("é", 251) + `"}`, `{"content":"a"} {}`, `{"Content":"\u2028 x \u00a0"}`,
		`{"content":"\ud83e\udd9e"}`} {
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
		var ref postRequest
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, &ref); err != nil || ref != req {
				t.Fatalf("%q: decoded %+v, encoding/json %+v (%v)", body, req, ref, err)
			}
		}
		want := norm.NFC.String(crlf.ReplaceAllString(strings.TrimSpace(ref.Content), "\n"))
		wantErr := ""
		switch {
		case want == "":
			wantErr = errContentMissing
		case utf8.RuneCountInString(want) > maxChars:
			wantErr = errLength(maxChars)
		default:
			wantErr = firstHidden("Content", want, true)
		}
		c, e := checkContent(req, maxChars)
		if e != nil {
			if e.Status != http.StatusBadRequest || !sameError(e.Msg, wantErr) {
				t.Fatalf("%q: refused with %d %q, want %q", body, e.Status, e.Msg, wantErr)
			}
			return
		}
		if wantErr != "" || c != want || !utf8.ValidString(c) {
			t.Fatalf("%q: accepted %q, want %q (%q)", body, c, want, wantErr)
		}
		again, err := json.Marshal(postRequest{Content: c})
		if err != nil {
			t.Fatal(err)
		}
		var req2 postRequest
		if e := httpjson.Unmarshal(again, &req2); e != nil {
			t.Fatalf("re-encoded %s: %v", again, e)
		}
		if c2, e := checkContent(req2, maxChars); e != nil || c2 != c {
			t.Fatalf("posting %s again: %q %v", again, c2, e)
		}
	})
}

// firstHidden is the oracle's refusal for the first control or bidi
// formatting character of s ("" if there is none).
func firstHidden(field, s string, lines bool) string {
	for _, r := range s {
		switch {
		case r < 0x20 && !(lines && (r == '\n' || r == '\t')), r >= 0x7f && r <= 0x9f:
			return field + " must not contain a control character"
		case r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069:
			return field + " must not contain a bidirectional formatting character"
		}
	}
	return ""
}

// sameError compares a refusal with the oracle's: the oracle knows the
// class of the first problem (the message goes on to say which character and
// where); the rules it does not model (stray tag characters, invisible text)
// are checked by internal/plaintext's own fuzzing, so a refusal for one of
// those is accepted when the oracle found nothing.
func sameError(got, want string) bool {
	if want == "" {
		return strings.Contains(got, "visible character") || strings.Contains(got, "tag character")
	}
	return got == want || strings.HasPrefix(got, want+" U+")
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
