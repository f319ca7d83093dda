// Package uring sends to many sockets in one system call. A Ring is a
// Linux io_uring used for one thing only: a batch of non-blocking vectored
// sends (sendmsg with MSG_DONTWAIT), each to its own socket, submitted and
// completed by one io_uring_enter. On this kind of machine a system call
// costs 1–2 µs of entry and exit alone (page-table isolation, a virtual
// machine); a streamer writing one message to 1,000 sockets pays that 1,000
// times with writev and a few times with a Ring.
//
// A send never waits: a socket whose buffer is full completes at once with
// what it took (possibly nothing, EAGAIN), exactly as a non-blocking writev
// would, so the caller keeps its own retry logic. Every send of a batch has
// completed when Flush returns; the kernel holds no pointer into the
// caller's memory after that.
//
// A Ring belongs to one goroutine at a time.
package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	sysSetup = 425
	sysEnter = 426

	opSendmsg   = 9
	setupSubAll = 1 << 7 // IORING_SETUP_SUBMIT_ALL: one bad entry does not stop the batch
	enterGetEv  = 1 << 0 // IORING_ENTER_GETEVENTS
	featSingle  = 1 << 0 // IORING_FEAT_SINGLE_MMAP
	featNoDrop  = 1 << 1 // IORING_FEAT_NODROP
	offSQRing   = 0
	offCQRing   = 0x8000000
	offSQEs     = 0x10000000
	sqeSize     = 64
	cqeSize     = 16
	sendFlags   = syscall.MSG_DONTWAIT | syscall.MSG_NOSIGNAL
)

type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	resv2                                                           uint64
}

type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	resv2                                                           uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqOffsets
	cqOff                                                                  cqOffsets
}

// sqe is the kernel's io_uring_sqe, as this package fills it.
type sqe struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	msgFlags uint32
	userData uint64
	_        [24]byte
}

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// Result is what one send of a batch did: N bytes taken, or Err (EAGAIN
// is not an error: a full socket gives N == 0, Err == nil).
type Result struct {
	N   int
	Err error
}

// Ring batches sends; see the package comment.
type Ring struct {
	fd             int
	sqRing, cqRing []byte
	sqes           []byte
	sqHead, sqTail *uint32
	sqMask         uint32
	sqArray        []uint32
	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           unsafe.Pointer
	entries        int
	msgs           []unix.Msghdr
	fds            []int32
	iovs           []unix.Iovec // every send's vector, back to back
	iovAt          []int        // where send i's vector starts in iovs
	results        []Result
	closed         bool
}

// ErrUnsupported is returned by New where io_uring cannot be used (an old
// kernel, io_uring disabled by the administrator or a seccomp profile).
var ErrUnsupported = errors.New("io_uring is not available")

// New returns a Ring for batches of up to entries sends (a power of two up
// to 4096), each of up to maxIov buffers.
func New(entries, maxIov int) (*Ring, error) {
	if entries < 1 || entries > 4096 || entries&(entries-1) != 0 {
		return nil, fmt.Errorf("uring: %d entries: want a power of two up to 4096", entries)
	}
	var p params
	p.flags = setupSubAll
	fd, _, e := syscall.Syscall(sysSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		if e == syscall.ENOSYS || e == syscall.EPERM || e == syscall.EINVAL {
			return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrUnsupported, e)
		}
		return nil, fmt.Errorf("uring: io_uring_setup: %w", e)
	}
	r := &Ring{fd: int(fd), entries: int(p.sqEntries)}
	if p.features&featSingle == 0 || p.features&featNoDrop == 0 {
		_ = syscall.Close(r.fd)
		return nil, fmt.Errorf("%w: the kernel's io_uring lacks single mmap or no-drop completions", ErrUnsupported)
	}
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*cqeSize
	size := max(sqSize, cqSize)
	ring, err := syscall.Mmap(r.fd, offSQRing, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		_ = syscall.Close(r.fd)
		return nil, fmt.Errorf("uring: mmap of the rings: %w", err)
	}
	r.sqRing, r.cqRing = ring, ring
	sqes, err := syscall.Mmap(r.fd, offSQEs, int(p.sqEntries)*sqeSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		_ = syscall.Munmap(ring)
		_ = syscall.Close(r.fd)
		return nil, fmt.Errorf("uring: mmap of the entries: %w", err)
	}
	r.sqes = sqes
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead, r.sqTail = u32(ring, p.sqOff.head), u32(ring, p.sqOff.tail)
	r.sqMask = *u32(ring, p.sqOff.ringMask)
	r.sqArray = unsafe.Slice(u32(ring, p.sqOff.array), p.sqEntries)
	r.cqHead, r.cqTail = u32(ring, p.cqOff.head), u32(ring, p.cqOff.tail)
	r.cqMask = *u32(ring, p.cqOff.ringMask)
	r.cqes = unsafe.Pointer(&ring[p.cqOff.cqes])
	r.msgs = make([]unix.Msghdr, 0, r.entries)
	r.fds = make([]int32, 0, r.entries)
	r.iovs = make([]unix.Iovec, 0, r.entries*maxIov)
	r.iovAt = make([]int, 0, r.entries+1)
	r.results = make([]Result, 0, r.entries)
	return r, nil
}

// Len is how many sends are queued; Cap how many a batch holds.
func (r *Ring) Len() int { return len(r.fds) }
func (r *Ring) Cap() int { return r.entries }

// Add queues a send of bufs to socket fd; empty buffers are skipped. The
// buffers must stay unchanged until Flush returns. It returns false when
// the batch is full.
func (r *Ring) Add(fd int, bufs [][]byte) bool {
	if len(r.fds) == r.entries || r.closed {
		return false
	}
	r.iovAt = append(r.iovAt, len(r.iovs))
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		r.iovs = append(r.iovs, v)
	}
	r.fds = append(r.fds, int32(fd))
	return true
}

// Flush sends every queued send in one io_uring_enter (more if the kernel
// takes fewer at once) and returns their results in the order of Add. The
// slice is the Ring's, valid until the next Flush.
func (r *Ring) Flush() ([]Result, error) {
	n := len(r.fds)
	r.results = r.results[:0]
	if n == 0 {
		return r.results, nil
	}
	if r.closed {
		return nil, errors.New("uring: the ring is closed")
	}
	r.iovAt = append(r.iovAt, len(r.iovs))
	r.msgs = r.msgs[:n]
	tail := *r.sqTail
	for i := range n {
		m := &r.msgs[i]
		*m = unix.Msghdr{}
		if k, end := r.iovAt[i], r.iovAt[i+1]; end > k {
			m.Iov = &r.iovs[k]
			m.SetIovlen(end - k)
		}
		idx := (tail + uint32(i)) & r.sqMask
		s := (*sqe)(unsafe.Pointer(&r.sqes[int(idx)*sqeSize]))
		*s = sqe{opcode: opSendmsg, fd: r.fds[i], addr: uint64(uintptr(unsafe.Pointer(m))), len: 1,
			msgFlags: sendFlags, userData: uint64(i)}
		r.sqArray[idx] = idx
	}
	atomic.StoreUint32(r.sqTail, tail+uint32(n))
	r.results = r.results[:n]
	for i := range r.results {
		r.results[i] = Result{Err: ErrNotSent}
	}
	submitted, completed, idle := 0, 0, 0
	var err error
	for completed < n {
		toSubmit := n - submitted
		got, _, e := syscall.Syscall6(sysEnter, uintptr(r.fd), uintptr(toSubmit), uintptr(n-completed), enterGetEv, 0, 0)
		if e != 0 && e != syscall.EINTR && e != syscall.EAGAIN && e != syscall.EBUSY {
			err = fmt.Errorf("uring: io_uring_enter: %w", e)
			break
		}
		took := 0
		if e == 0 {
			took = int(got)
			submitted += took
		}
		reaped := r.reap()
		completed += reaped
		// A ring that neither takes nor completes anything, call after
		// call, is broken: give up rather than spin the caller's shard.
		if idle++; took > 0 || reaped > 0 {
			idle = 0
		} else if idle == 1000 {
			err = errors.New("uring: io_uring_enter makes no progress")
			break
		}
	}
	// What was queued is always accounted for. A ring that failed as a
	// whole leaves the entries it never submitted as ErrNotSent (the
	// caller may send them another way) and those submitted without a
	// completion as ErrUnknown (their bytes may or may not have gone).
	if err != nil {
		for i := range submitted {
			if r.results[i].Err == ErrNotSent {
				r.results[i].Err = ErrUnknown
			}
		}
	}
	r.fds, r.iovs, r.iovAt = r.fds[:0], r.iovs[:0], r.iovAt[:0]
	clear(r.msgs)
	return r.results, err
}

// ErrNotSent is the result of a send the ring never made: Flush failed
// as a whole before it (the caller writes those some other way).
var ErrNotSent = errors.New("uring: not sent")

// ErrUnknown is the result of a send submitted to a ring that then failed
// before its completion was read: whether its bytes went is not known.
var ErrUnknown = errors.New("uring: the send's outcome is unknown")

// reap takes the completions in the ring into results.
func (r *Ring) reap() int {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail)
	k := 0
	for ; head != tail; head++ {
		c := (*cqe)(unsafe.Add(r.cqes, uintptr(head&r.cqMask)*cqeSize))
		i := int(c.userData)
		if i < len(r.results) {
			switch {
			case c.res >= 0:
				r.results[i] = Result{N: int(c.res)}
			case syscall.Errno(-c.res) == syscall.EAGAIN:
				r.results[i] = Result{}
			default:
				r.results[i] = Result{Err: syscall.Errno(-c.res)}
			}
		}
		k++
	}
	atomic.StoreUint32(r.cqHead, head)
	return k
}

// Close releases the ring.
func (r *Ring) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	_ = syscall.Munmap(r.sqes)
	_ = syscall.Munmap(r.sqRing)
	return syscall.Close(r.fd)
}
