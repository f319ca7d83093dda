package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	// Type is the event: field ("" for unnamed events, which EventSource
	// calls "message"). chatr sends only unnamed events.
	Type string
	// Data is the data: lines joined with "\n".
	Data string
	// ID is the last event ID at dispatch (it persists from earlier events,
	// as the specification says).
	ID string
}

// errSSETooLarge ends a stream whose line or event exceeds the parser's bound.
var errSSETooLarge = errors.New("chatr: stream event too large")

// sseParser reads the text/event-stream format as the WHATWG HTML standard
// defines it (§9.2.6): lines end with CRLF, LF or CR; "field: value" with one
// optional space after the colon; lines starting with ":" are comments; a
// blank line dispatches the event; an event without data is not dispatched;
// "retry" takes only ASCII digits; an "id" containing NUL is ignored; a
// leading byte order mark is skipped; an unfinished event at the end of the
// stream is dropped. It is written here rather than taken from a library so
// that the client has no dependencies, and it is fuzzed (FuzzSSEParser).
type sseParser struct {
	r   *bufio.Reader
	max int // bound on one line and on one event's data

	started bool // the BOM check is done
	skipLF  bool // the previous line ended with CR: an LF right after belongs to it
	line    []byte

	typ     string
	data    strings.Builder
	hasData bool
	lastID  string

	// retry is the reconnection time the server asked for (0: not given).
	retry time.Duration
	// comments counts comment lines (": ping"), so callers can see liveness.
	comments int
}

func newSSEParser(r io.Reader, max int) *sseParser {
	return &sseParser{r: bufio.NewReaderSize(r, 4096), max: max}
}

// Next returns the next dispatched event. At the end of the stream it
// returns io.EOF (or the reader's error); an unfinished event is dropped.
func (p *sseParser) Next() (sseEvent, error) {
	for {
		line, err := p.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if len(line) == 0 {
			if !p.hasData {
				p.typ = ""
				continue
			}
			ev := sseEvent{Type: p.typ, Data: p.data.String(), ID: p.lastID}
			p.typ, p.hasData = "", false
			p.data.Reset()
			return ev, nil
		}
		if line[0] == ':' {
			p.comments++
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			p.typ = string(value)
		case "data":
			if p.data.Len()+len(value)+1 > p.max {
				return sseEvent{}, errSSETooLarge
			}
			if p.hasData {
				p.data.WriteByte('\n')
			}
			p.data.Write(value)
			p.hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.lastID = string(value)
			}
		case "retry":
			if ms, ok := digits(value); ok {
				p.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// digits parses a retry value: ASCII digits only, capped at an hour.
func digits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n > int64(maxRetryAfter/time.Millisecond) {
		n = int64(maxRetryAfter / time.Millisecond)
	}
	return n, true
}

// readLine returns the next line without its terminator. The returned slice
// is valid until the next call.
func (p *sseParser) readLine() ([]byte, error) {
	if !p.started {
		p.started = true
		if b, err := p.r.Peek(3); err == nil && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
			_, _ = p.r.Discard(3)
		}
	}
	p.line = p.line[:0]
	for {
		// Take what is buffered up to the next terminator in one step; fall
		// back to a blocking read only when the buffer is empty, so that a
		// line ended by a lone CR is returned without waiting for more.
		if p.r.Buffered() == 0 {
			if _, err := p.r.Peek(1); err != nil {
				return nil, err
			}
		}
		buf, _ := p.r.Peek(p.r.Buffered())
		if p.skipLF {
			p.skipLF = false
			if buf[0] == '\n' {
				_, _ = p.r.Discard(1)
				continue
			}
		}
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			if len(p.line)+len(buf) > p.max {
				return nil, errSSETooLarge
			}
			p.line = append(p.line, buf...)
			_, _ = p.r.Discard(len(buf))
			continue
		}
		if len(p.line)+i > p.max {
			return nil, errSSETooLarge
		}
		p.line = append(p.line, buf[:i]...)
		p.skipLF = buf[i] == '\r'
		_, _ = p.r.Discard(i + 1)
		return p.line, nil
	}
}
