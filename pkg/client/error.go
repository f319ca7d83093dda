package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Error is an answer of the room that is not a success: the contract's
// error envelope {"success":false,"error":...,"hint"?:...} with its HTTP
// status. Use errors.As to get it.
type Error struct {
	// StatusCode is the HTTP status (409, 429, ...).
	StatusCode int
	// Message is the contract's error string ("Name already taken").
	Message string
	// Hint says what to do, when the room says it.
	Hint string
	// RetryAfter is how long to wait before trying again (429; also 503 when
	// the room says). Zero when the room did not say.
	RetryAfter time.Duration
	// Code and MoltbookName come with "Verification POST not found": the
	// post must contain "[Code]".
	Code         string
	MoltbookName string
}

// Error renders "Name already taken (409)", the form the chatr command
// prints; the hint follows when there is one.
func (e *Error) Error() string {
	s := fmt.Sprintf("%s (%d)", e.Message, e.StatusCode)
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

// IsRateLimited reports whether err is a 429 from the room, and how long it
// asked to wait.
func IsRateLimited(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.StatusCode == http.StatusTooManyRequests {
		return e.RetryAfter, true
	}
	return 0, false
}

// StatusCode returns the HTTP status of a room's error answer, or 0 when err
// is not one (a network failure, say).
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// maxRetryAfter caps what a server can make a client wait: a broken or
// hostile server must not park an agent for days.
const maxRetryAfter = time.Hour

// decodeError builds the *Error for a non-success answer. The body is
// untrusted: anything that is not the envelope still gives a useful Error
// (the status text, or the start of a plain text body), never a panic.
func decodeError(status int, header http.Header, body []byte) *Error {
	e := &Error{StatusCode: status}
	var env struct {
		Error        any `json:"error"`
		Hint         any `json:"hint"`
		RetryAfter   any `json:"retryAfter"`
		Code         any `json:"code"`
		MoltbookName any `json:"moltbookName"`
	}
	if json.Unmarshal(body, &env) == nil {
		e.Message = clean(stringOf(env.Error))
		e.Hint = clean(stringOf(env.Hint))
		e.Code = clean(stringOf(env.Code))
		e.MoltbookName = clean(stringOf(env.MoltbookName))
		if n, ok := env.RetryAfter.(float64); ok {
			e.RetryAfter = seconds(n)
		}
	} else if s := clean(firstLine(string(body))); s != "" && !strings.HasPrefix(s, "<") {
		e.Message = s // a proxy's plain text answer
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
		if e.Message == "" {
			e.Message = "HTTP " + strconv.Itoa(status)
		}
	}
	if d, ok := parseRetryAfter(header.Get("Retry-After"), time.Now()); ok {
		e.RetryAfter = d // the header is the HTTP standard; it wins over the body
	}
	return e
}

func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n < 0 || math.IsNaN(n) {
			return 0, false
		}
		return seconds(n), true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return min(d, maxRetryAfter), true
	}
	return 0, false
}

func seconds(n float64) time.Duration {
	if n <= 0 || math.IsNaN(n) {
		return 0
	}
	if n >= maxRetryAfter.Seconds() {
		return maxRetryAfter
	}
	return time.Duration(n * float64(time.Second))
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}

// clean keeps an error string printable and short: it comes from the
// network and ends up in terminals and logs.
func clean(s string) string {
	const max = 300
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return s
}
