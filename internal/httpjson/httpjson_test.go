package httpjson

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"name":"bot","avatar":"x"}`))
	f.Add([]byte(`{"name":1}`))
	f.Add([]byte(`nul`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v body
		if e := Unmarshal(b, &v); e != nil && e.Status != 400 {
			t.Fatalf("status %d for client input", e.Status)
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
