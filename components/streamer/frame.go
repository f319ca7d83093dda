package streamer

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/chatr-ai/chatr/internal/model"
)

// transport is how a connection frames events.
type transport uint8

const (
	// sseChunked is an HTTP/1.1 event stream in chunked transfer encoding.
	sseChunked transport = iota
	// sseRaw is an HTTP/1.0 event stream delimited by the connection's close.
	sseRaw
	// wsText is a WebSocket connection: one text frame per event.
	wsText
)

// frame is one event encoded for every transport at once. A frame is built
// once per pod and the same bytes are written to every connection that
// receives it (centrifuge's habit): fan-out costs no encoding per client.
type frame struct {
	// id is the message id of a message frame, the last id of a history
	// frame, 0 for frames that carry none (stats, pings, hints).
	id int64
	// live marks a message frame, the only kind the fan-out latency and the
	// deliveries metric count.
	live bool
	// spectator marks a frame only spectator streams get (spectator.go).
	spectator bool
	// sse is the event as an HTTP chunk: "<hex>\r\n" + event + "\r\n";
	// sse[rawOff:len(sse)-2] is the bare event for close-delimited streams.
	// Nil when the frame has no SSE form.
	sse    []byte
	rawOff int
	// chunkOnly marks chunk-level framing (the last chunk) that a
	// close-delimited stream must not see.
	chunkOnly bool
	// ws is the event as a WebSocket frame; nil when it has no WebSocket form.
	ws []byte
	// at is when the message reached this pod (fan-out latency).
	at time.Time
}

// bytes returns the frame's encoding for t (nil: nothing to send on t).
func (f *frame) bytes(t transport) []byte {
	switch t {
	case sseChunked:
		return f.sse
	case sseRaw:
		if f.sse == nil || f.chunkOnly {
			return nil
		}
		return f.sse[f.rawOff : len(f.sse)-2]
	default:
		return f.ws
	}
}

// chunk wraps an SSE event in HTTP chunk framing and records where the bare
// event starts.
func chunk(event []byte) ([]byte, int) {
	hdr := strconv.FormatInt(int64(len(event)), 16) + "\r\n"
	b := make([]byte, 0, len(hdr)+len(event)+2)
	b = append(b, hdr...)
	b = append(b, event...)
	b = append(b, "\r\n"...)
	return b, len(hdr)
}

// wsFrame builds an unmasked, unfragmented server WebSocket frame.
func wsFrame(opcode byte, payload []byte) []byte {
	n := len(payload)
	var b []byte
	switch {
	case n < 126:
		b = make([]byte, 2, 2+n)
		b[1] = byte(n)
	case n <= 0xffff:
		b = make([]byte, 4, 4+n)
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b = make([]byte, 10, 10+n)
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b[0] = 0x80 | opcode // FIN + opcode
	return append(b, payload...)
}

const (
	wsOpText  = 0x1
	wsOpClose = 0x8
	wsOpPing  = 0x9
	wsOpPong  = 0xA
)

// eventFrame builds the frame of a typed event: the JSON body
// {"type":typ,"data":data}, with an "id:" line when id > 0.
func eventFrame(typ string, data []byte, id int64) *frame {
	body := make([]byte, 0, len(data)+len(typ)+20)
	body = append(body, `{"type":"`...)
	body = append(body, typ...)
	body = append(body, `","data":`...)
	body = append(body, data...)
	body = append(body, '}')

	ev := make([]byte, 0, len(body)+32)
	if id > 0 {
		ev = append(ev, "id: "...)
		ev = strconv.AppendInt(ev, id, 10)
		ev = append(ev, '\n')
	}
	ev = append(ev, "data: "...)
	ev = append(ev, body...)
	ev = append(ev, "\n\n"...)
	f := &frame{id: id, ws: wsFrame(wsOpText, body)}
	f.sse, f.rawOff = chunk(ev)
	return f
}

// sseOnly builds a frame that exists only on SSE (comments, retry hints).
func sseOnly(ev string) *frame {
	f := &frame{}
	f.sse, f.rawOff = chunk([]byte(ev))
	return f
}

// encodeMessage renders a message in the contract's JSON once; the ring
// keeps it so history frames are assembled without encoding again.
func encodeMessage(m model.Message) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("while encoding message %d: %w", m.ID, err)
	}
	return b, nil
}

// messageFrame is the "message" event of one message.
func messageFrame(id int64, msgJSON []byte, at time.Time) *frame {
	f := eventFrame("message", msgJSON, id)
	f.live = true
	f.at = at
	return f
}

// historyFrame is the "history" event of msgs (oldest first), carrying the
// id of its last message so a client that drops right after resumes from it.
func historyFrame(msgs [][]byte, lastID int64) *frame {
	n := 2
	for _, m := range msgs {
		n += len(m) + 1
	}
	data := make([]byte, 0, n)
	data = append(data, '[')
	for i, m := range msgs {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, m...)
	}
	data = append(data, ']')
	return eventFrame("history", data, lastID)
}

// statsFrame is the "stats" event.
func statsFrame(s model.Stats) *frame {
	b, _ := json.Marshal(s) // three integers: cannot fail
	return eventFrame("stats", b, 0)
}

// retryFrame is a bare "retry:" hint (milliseconds).
func retryFrame(d time.Duration) *frame {
	return sseOnly("retry: " + strconv.FormatInt(d.Milliseconds(), 10) + "\n\n")
}

// Frames shared by every connection.
var (
	// pingFrame keeps proxies from closing an idle stream, and finds dead
	// clients: a write to a vanished peer fails.
	pingFrame = &frame{ws: wsFrame(wsOpPing, nil)}
	// endFrame ends a chunked body cleanly, so clients see the end of the
	// stream rather than a broken connection.
	endFrame = &frame{sse: []byte("0\r\n\r\n"), chunkOnly: true}
)

func init() {
	pingFrame.sse, pingFrame.rawOff = chunk([]byte(": ping\n\n"))
}

// wsCloseFrame is a WebSocket close frame with code (1012: service restart,
// 1008: policy, 1001: going away) telling the client to reconnect.
func wsCloseFrame(code uint16, reason string) *frame {
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, code)
	p = append(p, reason...)
	return &frame{ws: wsFrame(wsOpClose, p)}
}
