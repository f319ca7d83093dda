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

// DecodeError is Decode without the writing.
func DecodeError(r *http.Request, dst any) *Error {
	if r.ContentLength > MaxBody {
		return tooLarge()
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
	return Unmarshal(body, dst)
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
	return nil
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
