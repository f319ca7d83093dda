package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

type body struct {
	Name   string  `json:"name"`
	Avatar *string `json:"avatar"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		in     string
		status int
		msg    string
	}{
		{`{"name":"bot"}`, 0, ""},
		{``, 0, ""},
		{`{"name":"bot","extra":1}`, 0, ""},
		{`{"name":`, 400, "Invalid JSON body"},
		{`{"name":"a"} {"name":"b"}`, 400, "Invalid JSON body"},
		{`{"name":"a"} x`, 400, "Invalid JSON body"},
		{`{"name":42}`, 400, `Invalid type for field "name": expected string`},
		{`[1,2]`, 400, "Request body must be a JSON object"},
		{`"str"`, 400, "Request body must be a JSON object"},
		{`{"name":"` + strings.Repeat("a", MaxBody) + `"}`, 413, "Request body too large (max 16 KB)"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("POST", "/", strings.NewReader(tt.in))
		req.Header.Set("Content-Type", "application/json")
		var b body
		e := DecodeError(req, &b)
		if tt.status == 0 {
			if e != nil {
				t.Errorf("%q: unexpected error %v", tt.in, e)
			}
			continue
		}
		if e == nil || e.Status != tt.status || e.Msg != tt.msg {
			t.Errorf("%.40q: got %+v, want %d %q", tt.in, e, tt.status, tt.msg)
		}
	}
}

func TestTooMany(t *testing.T) {
	rec := httptest.NewRecorder()
	TooMany(rec, "Too many requests", 1500*time.Millisecond)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("code %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["success"] != false || got["error"] != "Too many requests" || got["retryAfter"] != float64(2) {
		t.Fatalf("body %v", got)
	}
}

// FuzzUnmarshal checks the body parser against encoding/json, the reference
// it must agree with: a blank body is {}; any other body is accepted exactly
// when json.Unmarshal accepts it, decodes to the same value, and is refused
// with a 400 that names a type mistake json found as such. What it accepts,
// encoded again, decodes to the same value.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{`{"name":"bot","avatar":"x"}`, `{"name":1}`, `nul`, ` `, `{"name":"a"} {"name":"b"}`,
		`{"name":"a"}]`, `[1]`, `{"NAME":"\ud800","avatar":null}`, `{"name":"a","name":"b"}`, `{"avatar":{"x":1}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v body
		e := Unmarshal(b, &v)
		if e != nil && (e.Status != 400 || e.Msg == "") {
			t.Fatalf("%q: status %d %q for client input", b, e.Status, e.Msg)
		}
		var ref body
		var refErr error
		if len(bytes.TrimSpace(b)) > 0 {
			refErr = json.Unmarshal(b, &ref)
		}
		if e != nil && strings.HasPrefix(e.Msg, "Duplicate key ") {
			// encoding/json takes such a body (the last key wins); the
			// key named is there twice, whatever its case.
			k, _ := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(e.Msg, "Duplicate key "), " in JSON body"))
			if refErr != nil || !bytes.Contains(b, []byte{'\\'}) && bytes.Count(bytes.ToLower(b), []byte(strings.ToLower(strconv.Quote(k)))) < 2 {
				t.Fatalf("%q: %q (encoding/json: %v)", b, e.Msg, refErr)
			}
			return
		}
		if (e == nil) != (refErr == nil) {
			t.Fatalf("%q: Unmarshal says %v, encoding/json says %v", b, e, refErr)
		}
		if e != nil {
			// A type mistake is always named as one. (The reverse need not
			// hold: a wrongly typed first value followed by more input is a
			// syntax error to json.Unmarshal, which reads everything first.)
			var te *json.UnmarshalTypeError
			typeMsg := e.Msg == "Request body must be a JSON object" || strings.HasPrefix(e.Msg, "Invalid type for field ")
			if errors.As(refErr, &te) && !typeMsg || !typeMsg && e.Msg != "Invalid JSON body" {
				t.Fatalf("%q: message %q for encoding/json's %v", b, e.Msg, refErr)
			}
			return
		}
		if !reflect.DeepEqual(v, ref) {
			t.Fatalf("%q: decoded %+v, encoding/json %+v", b, v, ref)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var w body
		if e := Unmarshal(again, &w); e != nil || !reflect.DeepEqual(w, v) {
			t.Fatalf("%q: re-encoded as %s, decoded again as %+v (%v)", b, again, w, e)
		}
	})
}

func TestErrorEnvelopeOrder(t *testing.T) {
	e := &Error{Status: 404, Msg: "Verification POST not found. <b>", Hint: "Your post content must contain: [ABCD2345]",
		Extra: map[string]any{"moltbookName": "x", "code": "ABCD2345", "success": true}}
	b, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"success":false,"error":"Verification POST not found. <b>","hint":"Your post content must contain: [ABCD2345]","code":"ABCD2345","moltbookName":"x"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestDuplicateKeys(t *testing.T) {
	for b, want := range map[string]string{
		`{"name":"a","name":"b"}`:                 `Duplicate key "name" in JSON body`,
		`{"name":"a","NAME":"b"}`:                 `Duplicate key "NAME" in JSON body`,
		`{"name":"a","avatar":{"x":1,"x":2}}`:     `Duplicate key "x" in JSON body`,
		`{"avatar":[{"k":1},{"k":2}],"name":"a"}`: "", // the same key in two objects is fine
		`{"name":"a","avatar":{"name":1}}`:        "",
		`{"name":"a","avatar":"b"}`:               "",
		`{"name":"x:y"}`:                          "",
		`{"n\u0061me":"a","name":"b"}`:            `Duplicate key "name" in JSON body`,
	} {
		var v map[string]any
		e := Unmarshal([]byte(b), &v)
		got := ""
		if e != nil {
			got = e.Msg
		}
		if got != want {
			t.Errorf("%s: %q, want %q", b, got, want)
		}
	}
}

func TestContentTypeMustBeJSON(t *testing.T) {
	for _, tc := range []struct {
		ctype, body string
		length      int64 // -1: chunked
		status      int
	}{
		{"application/json", `{"name":"a"}`, 12, 0},
		{"application/json; charset=utf-8", `{"name":"a"}`, 12, 0},
		{"Application/JSON", `{"name":"a"}`, 12, 0},
		{"application/merge-patch+json", `{"name":"a"}`, 12, 0},
		{"application/x-www-form-urlencoded", `{"name":"a"}`, 12, 415},
		{"text/plain", `{"name":"a"}`, 12, 415},
		{"multipart/form-data; boundary=x", `{"name":"a"}`, 12, 415},
		{"", `{"name":"a"}`, 12, 415},
		{"", `{"name":"a"}`, -1, 415},
		{"application/jsonx", `{"name":"a"}`, 12, 415},
		{"", ``, 0, 0},           // an empty body needs no type
		{"text/plain", ``, 0, 0}, // (nor does a form post of nothing)
	} {
		r := httptest.NewRequest("POST", "/api/register", strings.NewReader(tc.body))
		r.ContentLength = tc.length
		if tc.ctype != "" {
			r.Header.Set("Content-Type", tc.ctype)
		}
		var v body
		e := DecodeError(r, &v)
		switch {
		case tc.status == 0 && e != nil:
			t.Errorf("%q %q: %v", tc.ctype, tc.body, e)
		case tc.status != 0 && (e == nil || e.Status != tc.status):
			t.Errorf("%q %q: %v, want %d", tc.ctype, tc.body, e, tc.status)
		case tc.status == 415 && (!strings.HasPrefix(e.Msg, "Content-Type must be application/json (got ") || e.Hint == ""):
			t.Errorf("%q: message %q hint %q", tc.ctype, e.Msg, e.Hint)
		}
	}
}
