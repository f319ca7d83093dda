//go:build !linux

package main

import (
	"errors"
	"net"
)

// The load tool reads its streams with epoll: Linux only.

var errNotLinux = errors.New("streambench needs Linux (epoll)")

type reader struct {
	tally  *tally
	resume bool
}

func newReader([]*client, *sentTimes, int) (*reader, error) { return nil, errNotLinux }
func detach(net.Conn) (int, error)                          { return -1, errNotLinux }
func (r *reader) add(int) error                             { return errNotLinux }
func (r *reader) run()                                      {}
func (r *reader) halt()                                     {}
func closeFD(int)                                           {}
func openFileLimit() (cur, hard uint64, ok bool)            { return 0, 0, false }
