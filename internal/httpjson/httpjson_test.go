package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
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
