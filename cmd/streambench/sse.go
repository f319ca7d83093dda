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
type parser struct {
	state uint8
	size  int64 // chunk bytes still to come (stData), or the size being read
	line  [32]byte
	n     int // bytes of the current line kept in line
	id    int64
	ended bool
}

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
// data line with the id of its event.
func (p *parser) feed(b []byte, onLine func(kind lineKind, id int64)) error {
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
				if i < 0 {
					p.keep(d)
					break
				}
				p.keep(d[:i])
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

func (p *parser) endLine(onLine func(lineKind, int64)) {
	l := p.line[:p.n]
	p.n = 0
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
		onLine(lineHistory, p.id)
	case bytes.HasPrefix(l, msgPrefix):
		onLine(lineMessage, p.id)
	}
}
