package main

import (
	"bytes"
	"errors"
)

// parser decodes one stream as it arrives, in whatever pieces the socket
// gives: the HTTP/1.1 chunk framing, then the SSE lines inside the chunks.
// It keeps only the first bytes of the current line (enough to tell an id
// line, a message event and a history event apart), so a connection costs
// a few dozen bytes however large its events are.
//
// With times set (listen mode) it also finds, in each line, the send time a
// poster put at the start of a message's content (`"content":"bench
// t=<Unix ns>`, see timeMarker), wherever the reads split the line: a few
// more bytes of state, and no allocation.
type parser struct {
	state uint8
	size  int64    // chunk bytes still to come (stData), or the size being read
	line  [64]byte // enough for the longest prefix told apart (Centrifugo's publication)
	n     int      // bytes of the current line kept in line
	id    int64
	ended bool
	times bool
	tpos  int   // timeMarker bytes matched so far in the current line
	tst   uint8 // tSearch, tDigits, tDone
	at    int64 // the time's digits read so far
}

// timeMarker precedes the number the parser reads from each line (with
// times set): the send time in a message's JSON (listen mode), or with
// -target centrifugo a publication's offset (setMarker). A JSON string
// escapes its quotes, so the marker cannot appear inside another field's
// value, nor inside the content itself.
var timeMarker = []byte(`"content":"bench t=`)

// markerNext[i] is the length of the longest proper prefix of
// timeMarker[:i+1] that is also its suffix (the Knuth-Morris-Pratt
// failure function), so that a match split across reads is never missed.
var markerNext = failure(timeMarker)

// setMarker makes m the marker of the number read from each line; before
// any stream is parsed.
func setMarker(m string) {
	timeMarker = []byte(m)
	markerNext = failure(timeMarker)
}

func failure(pat []byte) []int {
	f := make([]int, len(pat))
	k := 0
	for i := 1; i < len(pat); i++ {
		for k > 0 && pat[i] != pat[k] {
			k = f[k-1]
		}
		if pat[i] == pat[k] {
			k++
		}
		f[i] = k
	}
	return f
}

const (
	tSearch = iota // looking for timeMarker
	tDigits        // reading the digits after it
	tDone          // found (or given up) for this line
)

const (
	stSize = iota // reading a chunk-size line
	stData        // inside a chunk's data
	stCRLF        // skipping the CRLF after a chunk's data
	stEnd         // the last chunk was read
)

var errChunk = errors.New("malformed chunked body")

// event is what a completed line meant.
type lineKind uint8

const (
	lineOther lineKind = iota
	lineMessage
	lineHistory
)

// feed parses b; onLine is called at the end of every message or history
// data line with the id of its event and, with p.times, the send time its
// content carries (Unix ns; 0: none).
func (p *parser) feed(b []byte, onLine func(kind lineKind, id, at int64)) error {
	for len(b) > 0 {
		switch p.state {
		case stSize:
			i := bytes.IndexByte(b, '\n')
			part := b
			if i >= 0 {
				part = b[:i]
			}
			for _, ch := range part {
				switch {
				case ch >= '0' && ch <= '9':
					p.size = p.size<<4 | int64(ch-'0')
				case ch >= 'a' && ch <= 'f':
					p.size = p.size<<4 | int64(ch-'a'+10)
				case ch >= 'A' && ch <= 'F':
					p.size = p.size<<4 | int64(ch-'A'+10)
				case ch == '\r' || ch == ';':
					// extensions are not used by the streamer; CR ends the size
				default:
					return errChunk
				}
			}
			if i < 0 {
				return nil
			}
			b = b[i+1:]
			if p.size == 0 {
				p.state = stEnd
				p.ended = true
				return nil
			}
			p.state = stData
		case stData:
			d := b
			if int64(len(d)) > p.size {
				d = d[:p.size]
			}
			p.size -= int64(len(d))
			b = b[len(d):]
			for len(d) > 0 {
				i := bytes.IndexByte(d, '\n')
				seg := d
				if i >= 0 {
					seg = d[:i]
				}
				p.keep(seg)
				if p.times {
					p.scanTime(seg)
				}
				if i < 0 {
					break
				}
				p.endLine(onLine)
				d = d[i+1:]
			}
			if p.size == 0 {
				p.state = stCRLF
			}
		case stCRLF:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				return nil
			}
			b = b[i+1:]
			p.state = stSize
		case stEnd:
			return nil
		}
	}
	return nil
}

func (p *parser) keep(b []byte) {
	if p.n < len(p.line) {
		p.n += copy(p.line[p.n:], b)
	}
}

// scanTime looks for the send time in b, the next piece of the current
// line. Whole lines (the usual case) are searched with bytes.Index; only a
// match that may straddle two pieces is followed byte by byte.
func (p *parser) scanTime(b []byte) {
	for len(b) > 0 {
		switch p.tst {
		case tDone:
			return
		case tDigits:
			for _, ch := range b {
				if ch < '0' || ch > '9' {
					p.tst = tDone
					return
				}
				if p.at > (1<<63-1-9)/10 { // not a Unix time in ns
					p.at, p.tst = 0, tDone
					return
				}
				p.at = p.at*10 + int64(ch-'0')
			}
			return
		case tSearch:
			if p.tpos == 0 {
				if j := bytes.Index(b, timeMarker); j >= 0 {
					p.tst = tDigits
					b = b[j+len(timeMarker):]
					continue
				}
				// No whole match: a match may still begin in the last
				// len(timeMarker)-1 bytes and end in the next piece.
				b = b[max(0, len(b)-len(timeMarker)+1):]
			}
			// Follow a partial match byte by byte until it completes or
			// falls back to nothing, then search the rest at full speed.
			for len(b) > 0 {
				p.tpos = markerStep(p.tpos, b[0])
				b = b[1:]
				if p.tpos == len(timeMarker) {
					p.tst = tDigits
					break
				}
				if p.tpos == 0 {
					break
				}
			}
		}
	}
}

// markerStep is the state after byte ch with pos bytes of timeMarker matched.
func markerStep(pos int, ch byte) int {
	for pos > 0 && timeMarker[pos] != ch {
		pos = markerNext[pos-1]
	}
	if timeMarker[pos] == ch {
		pos++
	}
	return pos
}

func (p *parser) endLine(onLine func(lineKind, int64, int64)) {
	l := p.line[:p.n]
	p.n = 0
	var at int64
	if p.tst != tSearch {
		at = p.at
	}
	p.tpos, p.tst, p.at = 0, tSearch, 0
	switch {
	case bytes.HasPrefix(l, idPrefix):
		var id int64
		for _, ch := range l[len(idPrefix):] {
			if ch < '0' || ch > '9' {
				break
			}
			id = id*10 + int64(ch-'0')
		}
		p.id = id
	case bytes.HasPrefix(l, histPrefix):
		onLine(lineHistory, p.id, 0)
	case bytes.HasPrefix(l, msgPrefix):
		onLine(lineMessage, p.id, at)
	case bytes.HasPrefix(l, cfConnectPrefix):
		onLine(lineHistory, 0, 0)
	case cfPubPrefix != nil && bytes.HasPrefix(l, cfPubPrefix):
		// The publication's offset, its place in the channel's order.
		onLine(lineMessage, at, 0)
	}
}
