//go:build !linux

package uring

import "errors"

// ErrUnsupported is returned by New: io_uring is Linux's.
var ErrUnsupported = errors.New("io_uring is not available")

// ErrNotSent is the result of a send the ring never made.
var ErrNotSent = errors.New("uring: not sent")

// Result is what one send of a batch did.
type Result struct {
	N   int
	Err error
}

// Ring is not available on this system.
type Ring struct{}

func New(entries, maxIov int) (*Ring, error)   { return nil, ErrUnsupported }
func (r *Ring) Len() int                       { return 0 }
func (r *Ring) Cap() int                       { return 0 }
func (r *Ring) Add(fd int, bufs [][]byte) bool { return false }
func (r *Ring) Flush() ([]Result, error)       { return nil, ErrUnsupported }
func (r *Ring) Close() error                   { return nil }
