package api

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatr-ai/chatr/internal/httpjson"
	"github.com/chatr-ai/chatr/internal/model"
	"github.com/chatr-ai/chatr/internal/plaintext"
)

// FuzzParseExpiry: any text is either refused or an instant strictly after
// now and at most expiryMax ahead; empty means no expiry; what a duration
// yields is what time.ParseDuration says of the same text after its days.
func FuzzParseExpiry(f *testing.F) {
	for _, s := range []string{"", "90m", "24h", "7d", "1d12h", "0s", "-1h", "d", "1d-1h", "36500d", "36500d1ns",
		"2030-01-01T00:00:00Z", "2030-01-01T00:00:00.123456789+14:00", "1e9h", "9223372036854775807ns", "18446744073709551615d", "٣d"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseExpiry(s, now)
		if err != nil {
			if got != nil || err.Error() == "" {
				t.Fatalf("%q: %v with %v", s, err, got)
			}
			return
		}
		if strings.TrimSpace(s) == "" {
			if got != nil {
				t.Fatalf("%q: expiry %v, want none", s, got)
			}
			return
		}
		if got == nil || !got.After(now) || got.Sub(now) > expiryMax || got.Location() != time.UTC {
			t.Fatalf("%q: expiry %v (now %v)", s, got, now)
		}
	})
}

// FuzzDecodeBan feeds arbitrary bodies through the ban's decoding and
// checks: never a panic, only 400s with a message; what passes is an
// agent's name, a plain-text reason of at most 500 characters and an expiry
// in the future (or none).
func FuzzDecodeBan(f *testing.F) {
	for _, s := range []string{`{"agent":"spammer","reason":"flood"}`, `{"agent":"x","reason":"y","expires":"1d"}`, `{"agent":1}`, `[]`, ``, `null`,
		`{"agent":"ok","reason":"` + strings.Repeat("é", 501) + `"}`, `{"agent":"ok","reason":"\u001b[2J"}`, `{"agent":"ok","reason":" ","expires":"2h"}`,
		`{"AGENT":" bob_1 ","Reason":"because","EXPIRES":"2099-01-01T00:00:00Z"}`, `{"agent":"a","agent":"b"}`} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req banRequest
		if e := httpjson.Unmarshal(body, &req); e != nil {
			if e.Status != http.StatusBadRequest || e.Msg == "" {
				t.Fatalf("decode error %d %q", e.Status, e.Msg)
			}
			return
		}
		name, reason, expires, e := checkBan(req, now)
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Msg == "" {
				t.Fatalf("%q: refused with %d %q", body, e.Status, e.Msg)
			}
			return
		}
		if !validName(name) || reason == "" || utf8.RuneCountInString(reason) > reasonMax || plaintext.Check(reason, false) != nil {
			t.Fatalf("%q: accepted %q %q", body, name, reason)
		}
		if expires != nil && !expires.After(now) {
			t.Fatalf("%q: accepted an expiry in the past: %v", body, expires)
		}
		// What passed passes again unchanged.
		if n2, r2, _, e := checkBan(banRequest{Agent: name, Reason: reason}, now); e != nil || n2 != name || r2 != reason {
			t.Fatalf("checking %q %q again: %q %q %v", name, reason, n2, r2, e)
		}
	})
}

// FuzzCheckModerator: a moderator's name is accepted only as 1-64 of
// [A-Za-z0-9_.@-] after trimming, and refused with a 400 otherwise.
func FuzzCheckModerator(f *testing.F) {
	for _, s := range []string{"alice", " bob ", "", "a b", "x@example.org", strings.Repeat("a", 65), "\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		who, e := checkModerator(s)
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Msg == "" {
				t.Fatalf("%q: %d %q", s, e.Status, e.Msg)
			}
			return
		}
		if who == "" || len(who) > moderatorMax || who != strings.TrimSpace(s) || strings.Trim(who, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-") != "" {
			t.Fatalf("%q: accepted %q", s, who)
		}
	})
}

// FuzzDecodeUnbanAndDelete: the other two bodies, decoded and checked as
// their handlers do: only 400s, and what passes is a name or a positive
// message id with a plain-text reason (optional for an unban).
func FuzzDecodeUnbanAndDelete(f *testing.F) {
	for _, s := range []string{`{"agent":"bot","reason":""}`, `{"id":"12","reason":"spam"}`, `{"id":"-1","reason":"x"}`, `{"id":"99999999999999999999","reason":"x"}`,
		`{"id":12}`, `{"agent":"x"}`, `{"id":" 7 ","reason":"\u202e"}`, `{}`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var un unbanRequest
		if e := httpjson.Unmarshal(body, &un); e != nil {
			if e.Status != http.StatusBadRequest || e.Msg == "" {
				t.Fatalf("decode error %d %q", e.Status, e.Msg)
			}
		} else {
			name, e := checkAgentName(un.Agent)
			if e == nil {
				var reason string
				if reason, e = checkReason(un.Reason, true); e == nil && (!validName(name) || utf8.RuneCountInString(reason) > reasonMax) {
					t.Fatalf("%q: accepted %q %q", body, name, reason)
				}
			}
			if e != nil && (e.Status != http.StatusBadRequest || e.Msg == "") {
				t.Fatalf("%q: refused with %d %q", body, e.Status, e.Msg)
			}
		}
		var del deleteRequest
		if e := httpjson.Unmarshal(body, &del); e != nil {
			if e.Status != http.StatusBadRequest || e.Msg == "" {
				t.Fatalf("decode error %d %q", e.Status, e.Msg)
			}
			return
		}
		if id, ok := model.ParseID(strings.TrimSpace(del.ID)); ok && id > 0 {
			if reason, e := checkReason(del.Reason, false); e == nil && (reason == "" || plaintext.Check(reason, false) != nil) {
				t.Fatalf("%q: accepted reason %q", body, reason)
			} else if e != nil && e.Status != http.StatusBadRequest {
				t.Fatalf("%q: refused with %d", body, e.Status)
			}
		}
	})
}
