package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
)

func TestDecodeError(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		header http.Header
		body   string
		want   Error
		text   string
	}{
		{"contract 409", 409, nil, `{"success":false,"error":"Name already taken"}`,
			Error{StatusCode: 409, Message: "Name already taken"}, "Name already taken (409)"},
		{"hint", 401, nil, `{"success":false,"error":"Invalid API key","hint":"Register first"}`,
			Error{StatusCode: 401, Message: "Invalid API key", Hint: "Register first"}, "Invalid API key (401): Register first"},
		{"429 header wins", 429, http.Header{"Retry-After": {"7"}}, `{"success":false,"error":"Too many requests","retryAfter":3}`,
			Error{StatusCode: 429, Message: "Too many requests", RetryAfter: 7 * time.Second}, "Too many requests (429)"},
		{"429 body only", 429, nil, `{"success":false,"error":"Too many requests","retryAfter":3}`,
			Error{StatusCode: 429, Message: "Too many requests", RetryAfter: 3 * time.Second}, ""},
		{"post not found", 404, nil, `{"success":false,"error":"Verification POST not found. ...","code":"ABCD2345","hint":"Your post content must contain: [ABCD2345]","moltbookName":"clawd"}`,
			Error{StatusCode: 404, Message: "Verification POST not found. ...", Hint: "Your post content must contain: [ABCD2345]", Code: "ABCD2345", MoltbookName: "clawd"}, ""},
		{"proxy text", 502, nil, "upstream connect error\nmore", Error{StatusCode: 502, Message: "upstream connect error"}, "upstream connect error (502)"},
		{"proxy html", 504, nil, "<html><body>Gateway Timeout</body></html>", Error{StatusCode: 504, Message: "Gateway Timeout"}, ""},
		{"empty", 503, http.Header{"Retry-After": {"1"}}, "", Error{StatusCode: 503, Message: "Service Unavailable", RetryAfter: time.Second}, ""},
		{"wrong types", 400, nil, `{"error":{"x":1},"retryAfter":"soon"}`, Error{StatusCode: 400, Message: "Bad Request"}, ""},
		{"unknown status", 599, nil, ``, Error{StatusCode: 599, Message: "HTTP 599"}, ""},
		{"control characters", 400, nil, `{"error":"bad\u001b[31m red\u0007"}`, Error{StatusCode: 400, Message: "bad[31m red"}, ""},
		{"huge retry", 429, http.Header{"Retry-After": {"99999999999"}}, `{}`, Error{StatusCode: 429, Message: "Too Many Requests", RetryAfter: maxRetryAfter}, ""},
		{"negative retry", 429, http.Header{"Retry-After": {"-4"}}, `{"retryAfter":-4}`, Error{StatusCode: 429, Message: "Too Many Requests"}, ""},
	} {
		h := c.header
		if h == nil {
			h = http.Header{}
		}
		got := decodeError(c.status, h, []byte(c.body))
		if *got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, *got, c.want)
		}
		if c.text != "" && got.Error() != c.text {
			t.Errorf("%s: Error() = %q, want %q", c.name, got.Error(), c.text)
		}
	}
}

func TestRetryAfterDate(t *testing.T) {
	now := time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)
	d, ok := parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now)
	if !ok || d != 90*time.Second {
		t.Fatalf("HTTP date: %v %v", d, ok)
	}
	if d, ok := parseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now); !ok || d != 0 {
		t.Fatalf("past date: %v %v", d, ok)
	}
}

func TestErrorHelpers(t *testing.T) {
	err := fmt.Errorf("posting: %w", &Error{StatusCode: 429, Message: "Too many requests", RetryAfter: 4 * time.Second})
	if d, ok := IsRateLimited(err); !ok || d != 4*time.Second {
		t.Errorf("IsRateLimited: %v %v", d, ok)
	}
	if StatusCode(err) != 429 || StatusCode(errors.New("x")) != 0 {
		t.Error("StatusCode")
	}
	if _, ok := IsRateLimited(&Error{StatusCode: 409}); ok {
		t.Error("409 taken for a rate limit")
	}
}

// FuzzDecodeError: error answers are untrusted. Whatever the body and the
// Retry-After header, decoding gives an *Error with a printable, bounded,
// non-empty message and a wait between 0 and an hour.
func FuzzDecodeError(f *testing.F) {
	f.Add(429, "3", `{"success":false,"error":"Too many requests","retryAfter":3}`)
	f.Add(404, "", `{"success":false,"error":"x","code":"ABCD2345","hint":"h","moltbookName":"m"}`)
	f.Add(502, "Wed, 21 Oct 2015 07:28:00 GMT", "<html>")
	f.Add(400, "1e400", `{"error":"\u0000\ud800","retryAfter":1e400}`)
	f.Fuzz(func(t *testing.T, status int, retryAfter, body string) {
		e := decodeError(status, http.Header{"Retry-After": {retryAfter}}, []byte(body))
		if e.StatusCode != status || e.Message == "" {
			t.Fatalf("%+v", e)
		}
		if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
			t.Fatalf("RetryAfter %v out of [0, 1h]", e.RetryAfter)
		}
		for _, s := range []string{e.Message, e.Hint, e.Code, e.MoltbookName} {
			if len([]rune(s)) > 301 || strings.IndexFunc(s, unicode.IsControl) >= 0 {
				t.Fatalf("unclean field %q", s)
			}
		}
		_ = e.Error()
	})
}
