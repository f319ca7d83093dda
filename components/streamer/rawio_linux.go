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

// peerWatch tells a shard which of its SSE sockets the client has closed,
// without a goroutine per stream and without waiting for the next write:
// one epoll set per shard, woken only by a FIN (EPOLLRDHUP) or a reset or
// error (EPOLLHUP, EPOLLERR), edge-triggered so a half-closed socket reports
// once. Data the client sends is not watched (no EPOLLIN): an SSE client
// has nothing to say after its request. One goroutine per shard blocks in
// epoll_wait and posts what it sees to the shard's inbox; the shard alone
// adds and removes sockets.
type peerWatch struct {
	ep   int
	wake [2]int // a pipe: a byte on wake[1] stops the wait loop
	done chan struct{}
}

// peerWake is the epoll data of the wake pipe (connection ids start at 1).
const peerWake = 0

const (
	peerGone = syscall.EPOLLHUP | syscall.EPOLLERR
	peerFIN  = syscall.EPOLLRDHUP
	// EPOLLET is 1<<31, which syscall spells as a negative int.
	peerEvents = uint32(peerFIN|peerGone) | 1<<31
)

// newPeerWatch opens a shard's epoll set; nil when the kernel refuses (the
// shard then finds closed clients at its next write, as before).
func newPeerWatch() *peerWatch {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	w := &peerWatch{ep: ep, done: make(chan struct{})}
	if err := syscall.Pipe2(w.wake[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(ep)
		return nil
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setPeerID(&ev, peerWake)
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, w.wake[0], &ev); err != nil {
		w.closeFDs()
		return nil
	}
	return w
}

func setPeerID(ev *syscall.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func peerID(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// add watches fd under id; false when it cannot (the socket is then found
// closed at its next write).
func (w *peerWatch) add(fd int, id uint64) bool {
	ev := syscall.EpollEvent{Events: peerEvents}
	setPeerID(&ev, id)
	return syscall.EpollCtl(w.ep, syscall.EPOLL_CTL_ADD, fd, &ev) == nil
}

// remove stops watching fd; the shard calls it before closing the socket,
// so a reused descriptor number is never reported under an old id.
func (w *peerWatch) remove(fd int) {
	_ = syscall.EpollCtl(w.ep, syscall.EPOLL_CTL_DEL, fd, nil)
}

// run waits for closed peers and reports each (its id and whether the
// socket is gone or only half-closed) until stop is called.
func (w *peerWatch) run(report func(ids []uint64, gone []bool)) {
	defer close(w.done)
	evs := make([]syscall.EpollEvent, 256)
	ids := make([]uint64, 0, len(evs))
	gone := make([]bool, 0, len(evs))
	for {
		n, err := syscall.EpollWait(w.ep, evs, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		ids, gone = ids[:0], gone[:0]
		for i := 0; i < n; i++ {
			id := peerID(&evs[i])
			if id == peerWake {
				return
			}
			ids = append(ids, id)
			gone = append(gone, evs[i].Events&peerGone != 0)
		}
		if len(ids) > 0 {
			report(ids, gone)
		}
	}
}

// stop ends run and releases the epoll set. The shard calls it once, after
// it has dropped its connections.
func (w *peerWatch) stop() {
	_, _ = syscall.Write(w.wake[1], []byte{0})
	<-w.done
	w.closeFDs()
}

func (w *peerWatch) closeFDs() {
	syscall.Close(w.wake[0])
	syscall.Close(w.wake[1])
	syscall.Close(w.ep)
}
