//go:build !linux

package streamer

import (
	"errors"
	"net"
)

const maxIov = 64

// rawFD reports that raw writes are not available: the hub falls back to
// short-deadline writes through net.Conn.
func rawFD(net.Conn) int { return -1 }

// iovec stands in for the writev vector.
type iovec struct{}

func writeRaw(int, []iovec, [][]byte) (int, error) { return 0, errors.ErrUnsupported }

func setSendBuffer(nc net.Conn, size int) {
	if tc, ok := nc.(*net.TCPConn); ok && size > 0 {
		_ = tc.SetWriteBuffer(size)
	}
}

// peerWatch is unavailable: closed clients are found at their next write.
type peerWatch struct{}

func newPeerWatch() *peerWatch                         { return nil }
func (*peerWatch) add(int, uint64) bool                { return false }
func (*peerWatch) remove(int)                          {}
func (*peerWatch) run(func(ids []uint64, gone []bool)) {}
func (*peerWatch) stop()                               {}
