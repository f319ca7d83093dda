package streamer

import (
	"net"
	"syscall"
	"unsafe"
)

// maxIov bounds one writev call (the kernel's IOV_MAX is 1024).
const maxIov = 64

// rawFD returns the socket behind nc, to write to it without blocking and
// without a goroutine per connection. The hub keeps nc referenced (its
// finalizer would close the descriptor) and is the only one to close it.
func rawFD(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1
	}
	return fd
}

// writeRaw writes as much of bufs as the socket takes now, in one writev.
// The socket is non-blocking (Go's netpoller made it so): a full send buffer
// gives 0, nil rather than waiting, and the hub retries later.
// iovec is the writev vector.
type iovec = syscall.Iovec

func writeRaw(fd int, iov []iovec, bufs [][]byte) (int, error) {
	iov = iov[:0]
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		v := syscall.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
	}
	if len(iov) == 0 {
		return 0, nil
	}
	for {
		n, _, e := syscall.Syscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch e {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, nil
		default:
			return 0, e
		}
	}
}

// setSendBuffer sets SO_SNDBUF on nc when size > 0.
func setSendBuffer(nc net.Conn, size int) {
	if tc, ok := nc.(*net.TCPConn); ok && size > 0 {
		_ = tc.SetWriteBuffer(size)
	}
}
