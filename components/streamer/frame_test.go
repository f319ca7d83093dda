package streamer

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// One buffer is at once an HTTP chunk, a bare SSE event and (separately) a
// WebSocket frame, with the right lengths for every payload size class.
func TestFrameEncodings(t *testing.T) {
	for _, n := range []int{0, 10, 125, 126, 65535, 65536} {
		data := []byte(`"` + strings.Repeat("x", n) + `"`)
		f := eventFrame("message", data, 42)
		body := `{"type":"message","data":` + string(data) + `}`
		ev := "id: 42\ndata: " + body + "\n\n"
		if got := string(f.bytes(sseRaw)); got != ev {
			t.Fatalf("n=%d: raw event %q", n, got[:min(len(got), 60)])
		}
		chunked := string(f.bytes(sseChunked))
		if !strings.HasSuffix(chunked, ev+"\r\n") || !strings.HasPrefix(chunked, strings.ToLower(strconvHex(len(ev)))+"\r\n") {
			t.Fatalf("n=%d: chunk framing %q", n, chunked[:min(len(chunked), 20)])
		}
		ws := f.bytes(wsText)
		if ws[0] != 0x81 || !bytes.HasSuffix(ws, []byte(body)) {
			t.Fatalf("n=%d: ws frame head % x", n, ws[:4])
		}
		hdr := len(ws) - len(body)
		switch {
		case len(body) < 126 && hdr != 2, len(body) >= 126 && len(body) <= 0xffff && hdr != 4, len(body) > 0xffff && hdr != 10:
			t.Fatalf("n=%d: ws header of %d bytes for a %d-byte payload", n, hdr, len(body))
		}
	}
	if endFrame.bytes(sseRaw) != nil || string(endFrame.bytes(sseChunked)) != "0\r\n\r\n" {
		t.Fatal("the last chunk must exist only in chunked streams")
	}
	if string(retryFrame(1500*time.Millisecond).bytes(sseRaw)) != "retry: 1500\n\n" || retryFrame(time.Second).bytes(wsText) != nil {
		t.Fatal("retry hint")
	}
	if h := historyFrame(nil, 0); string(h.bytes(sseRaw)) != "data: {\"type\":\"history\",\"data\":[]}\n\n" {
		t.Fatalf("empty history %q", h.bytes(sseRaw))
	}
}

func strconvHex(n int) string { return strings.ToLower(fmtHex(n)) }

func fmtHex(n int) string {
	const digits = "0123456789abcdef"
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 16 {
		b = append([]byte{digits[n%16]}, b...)
	}
	return string(b)
}

// The ring answers "after id" and the last k, and knows when it no longer
// holds the whole room.
func TestRing(t *testing.T) {
	r := newRing(4)
	for id := int64(1); id <= 3; id++ {
		r.push(entry{id: id, json: []byte{byte('0' + id)}, f: &frame{id: id}})
	}
	if r.floor() != 0 || len(r.after(0)) != 3 || len(r.after(3)) != 0 {
		t.Fatal("a ring that never wrapped holds the whole room")
	}
	for id := int64(4); id <= 6; id++ {
		r.push(entry{id: id, json: []byte{byte('0' + id)}, f: &frame{id: id}})
	}
	if r.oldest() != 3 || r.newest() != 6 || r.floor() != 2 {
		t.Fatalf("oldest %d newest %d floor %d", r.oldest(), r.newest(), r.floor())
	}
	got := r.after(4)
	if len(got) != 2 || got[0].id != 5 || got[1].id != 6 {
		t.Fatalf("after(4) = %v", got)
	}
	if l := r.last(2); string(l[0]) != "5" || string(l[1]) != "6" {
		t.Fatalf("last(2) = %q", l)
	}
}
