// Package httpjson writes the contract's JSON envelopes and reads request
// bodies with the contract's limits. Every error a client can cause is
// answered here in the envelope {"success":false,"error":...}; nothing a
// client sends can produce a 500.
package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxBody is the largest request body the contract accepts (16 KiB).
const MaxBody = 16 << 10

// Write sends v as JSON with status.
func Write(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"success":false,"error":"Internal server error"}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Error is the contract's error envelope. Extra fields (code, hint,
// retryAfter, ...) ride along in Extra.
type Error struct {
	Status int
	Msg    string
	Hint   string
	Extra  map[string]any
}

func (e *Error) Error() string { return e.Msg }

// MarshalJSON renders {"success":false,"error":...,"hint"?:...,extra...},
// in that order (the original's order; extras sorted by name).
func (e *Error) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"success":false,"error":`)
	if err := writeValue(&b, e.Msg); err != nil {
		return nil, err
	}
	if e.Hint != "" {
		b.WriteString(`,"hint":`)
		if err := writeValue(&b, e.Hint); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(e.Extra))
	for k := range e.Extra {
		if k != "success" && k != "error" && k != "hint" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteByte(',')
		if err := writeValue(&b, k); err != nil {
			return nil, err
		}
		b.WriteByte(':')
		if err := writeValue(&b, e.Extra[k]); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeValue(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	return nil
}

// Errorf builds an *Error.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// WriteError sends an error envelope.
func WriteError(w http.ResponseWriter, e *Error) { Write(w, e.Status, e) }

// Fail sends {"success":false,"error":msg} with status.
func Fail(w http.ResponseWriter, status int, msg string) {
	WriteError(w, &Error{Status: status, Msg: msg})
}

// RetrySeconds rounds a wait up to whole seconds, at least 1.
func RetrySeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// TooMany sends a 429 with the Retry-After header and "retryAfter" in the body.
func TooMany(w http.ResponseWriter, msg string, retryAfter time.Duration) {
	s := RetrySeconds(retryAfter)
	w.Header().Set("Retry-After", strconv.Itoa(s))
	WriteError(w, &Error{Status: http.StatusTooManyRequests, Msg: msg, Extra: map[string]any{"retryAfter": s}})
}

// Decode reads a JSON object body of at most MaxBody bytes into dst. It
// answers the client's mistakes itself (413 too large, 400 malformed or
// wrongly typed) and then returns false; the handler just returns.
// An empty body decodes as {} so that missing fields get their own message.
func Decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	if e := DecodeError(r, dst); e != nil {
		WriteError(w, e)
		return false
	}
	return true
}

// DecodeError is Decode without the writing. A body that is not empty must
// be declared JSON (Content-Type application/json, or a +json type): a
// form or text/plain body is what any web page can send from a visitor's
// browser without asking (no CORS preflight), so it is answered 415.
func DecodeError(r *http.Request, dst any) *Error {
	if r.ContentLength > MaxBody {
		return tooLarge()
	}
	// An empty body ({}, below) needs no type; one of unknown length
	// (chunked) is read first to know.
	if r.ContentLength > 0 && !isJSON(r.Header.Get("Content-Type")) {
		return notJSON(r)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge()
		}
		return Errorf(http.StatusBadRequest, "Could not read request body")
	}
	if len(body) > MaxBody {
		return tooLarge()
	}
	if len(body) > 0 && !isJSON(r.Header.Get("Content-Type")) {
		return notJSON(r)
	}
	return Unmarshal(body, dst)
}

// isJSON reports whether a Content-Type header declares JSON.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

func notJSON(r *http.Request) *Error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "none"
	}
	e := Errorf(http.StatusUnsupportedMediaType, "Content-Type must be application/json (got %s)", truncate(ct, 64))
	e.Hint = "Send the body as JSON with the header Content-Type: application/json"
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

func tooLarge() *Error {
	return Errorf(http.StatusRequestEntityTooLarge, "Request body too large (max %d KB)", MaxBody>>10)
}

// Unmarshal decodes one JSON object from body into dst, with the contract's
// error messages. It is the parser of untrusted input (fuzzed).
func Unmarshal(body []byte, dst any) *Error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				return Errorf(http.StatusBadRequest, "Request body must be a JSON object")
			}
			return Errorf(http.StatusBadRequest, "Invalid type for field %q: expected %s", field, jsonKind(te.Type.Kind().String()))
		}
		return Errorf(http.StatusBadRequest, "Invalid JSON body")
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, "Invalid JSON body")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(http.StatusBadRequest, "Invalid JSON body")
	}
	if k, ok := duplicateKey(body); ok {
		// encoding/json keeps the last of two equal keys (and matches
		// field names without regard to case): a body that means one thing
		// here and another to a proxy or a log reader is refused.
		return Errorf(http.StatusBadRequest, "Duplicate key %q in JSON body", truncate(k, 64))
	}
	return nil
}

// duplicateKey reports the first key that an object of body (valid JSON)
// holds twice, compared as encoding/json compares them with struct fields:
// without regard to case.
func duplicateKey(body []byte) (string, bool) {
	if bytes.Count(body, []byte{':'}) < 2 {
		return "", false // fewer than two keys in all
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	type object struct {
		keys      map[string]bool
		expectKey bool
	}
	var stack []*object // nil entries are arrays
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *object
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		if top != nil && top.expectKey {
			if k, ok := tok.(string); ok {
				folded := strings.ToLower(k)
				if top.keys[folded] {
					return k, true
				}
				top.keys[folded] = true
				top.expectKey = false
				continue
			}
		}
		if top != nil {
			top.expectKey = true // after this value, a key (or the end)
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &object{keys: map[string]bool{}, expectKey: true})
		case json.Delim('['):
			stack = append(stack, nil)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if n := len(stack); n > 0 && stack[n-1] != nil {
				stack[n-1].expectKey = true
			}
		}
	}
}

func jsonKind(goKind string) string {
	switch {
	case goKind == "string":
		return "string"
	case goKind == "bool":
		return "boolean"
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"), strings.HasPrefix(goKind, "float"):
		return "number"
	case goKind == "slice", goKind == "array":
		return "array"
	default:
		return "object"
	}
}
