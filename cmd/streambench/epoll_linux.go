package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// A reader is one epoll loop that reads every stream it was given: a
// wake-up reads all the sockets that became readable, one read each,
// instead of waking one goroutine per stream (1,000 goroutine wake-ups per
// message cost the load tool more CPU than the server spends writing, on
// the same cores). The latency of a message is taken right after the read
// that completed its line returned.
type reader struct {
	ep      int
	epf     *os.File // ep, for waiting through Go's poller
	clients []*client
	tally   *tally
	buf     []byte
	stop    atomic.Bool
	done    chan struct{}
	// resume, when set (listen mode), makes a stream the server ends
	// reconnect with Last-Event-ID, as a client does; resumed brings the
	// reopened streams back to the loop.
	resume  bool
	resumed chan reopened
}

// reopened is a stream reconnected for a resume (or err: it could not be).
type reopened struct {
	i    int
	fd   int
	rest []byte
	at   int64
	err  error
}

func newReader(clients []*client, sent *sentTimes, perMessage int) (*reader, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// The loop waits for its epoll descriptor to become readable in Go's own
	// poller: a waiting reader holds no thread in a system call, so the
	// runtime's monitor does not wake every 20 µs to take its P back (that
	// alone cost the tool a tenth of its CPU).
	if err := syscall.SetNonblock(ep, true); err != nil {
		_ = syscall.Close(ep)
		return nil, err
	}
	r := &reader{ep: ep, epf: os.NewFile(uintptr(ep), "epoll"), clients: clients, tally: newTally(sent, perMessage),
		buf: make([]byte, 256<<10), done: make(chan struct{}), resumed: make(chan reopened, 1024)}
	return r, nil
}

// detach takes the socket from nc (which is closed: Go's poller forgets it)
// and returns a non-blocking descriptor of its own.
func detach(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) { fd, derr = syscall.Dup(int(f)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	_ = nc.Close()
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// add hands client i (its socket in c.fd) to the loop.
func (r *reader) add(i int) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(i)}
	return syscall.EpollCtl(r.ep, syscall.EPOLL_CTL_ADD, r.clients[i].fd, &ev)
}

func (r *reader) run() {
	defer close(r.done)
	rc, err := r.epf.SyscallConn()
	if err != nil {
		panic(err)
	}
	events := make([]syscall.EpollEvent, 1024)
	for !r.stop.Load() {
		r.takeResumed()
		var n int
		// Read calls the function until it returns true, parking the
		// goroutine in between until the descriptor is readable (or the
		// deadline passes, so that stop is seen).
		_ = r.epf.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		err := rc.Read(func(uintptr) bool {
			n = pollNow(r.ep, events)
			return n > 0
		})
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			panic(err)
		}
		for n > 0 {
			for _, ev := range events[:n] {
				r.read(int(ev.Fd))
			}
			n = pollNow(r.ep, events)
		}
	}
}

// pollNow is a non-blocking epoll_wait. It and readNow are raw system calls:
// they never block, so the Go scheduler need not hand this thread's P over.
func pollNow(ep int, events []syscall.EpollEvent) int {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0
	}
	return int(n)
}

func readNow(fd int, b []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// halt stops the loop and waits for it.
func (r *reader) halt() {
	r.stop.Store(true)
	<-r.done
	_ = r.epf.Close()
}

func (r *reader) read(i int) {
	c := r.clients[i]
	if c.fd < 0 {
		return // being reopened
	}
	n, err := readNow(c.fd, r.buf)
	now := time.Now().UnixNano()
	switch {
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return
	case err != nil:
		r.ended(i, err)
		return
	case n == 0:
		r.ended(i, io.EOF)
		return
	}
	if err := c.take(r.buf[:n], now, r.tally); err != nil {
		r.ended(i, err)
	}
}

// resumeAttempts bounds the reconnections of one ended stream in a row.
const resumeAttempts = 30

// ended handles a stream that ended or broke: it fails, or (resume) it
// reconnects from its last id in the background, the way a client does
// when a server drops it as too slow or restarts.
func (r *reader) ended(i int, err error) {
	c := r.clients[i]
	if !r.resume || c.err != nil {
		r.fail(c, err)
		return
	}
	_ = syscall.EpollCtl(r.ep, syscall.EPOLL_CTL_DEL, c.fd, nil)
	closeFD(c.fd)
	c.fd = -1
	c.reconnects++
	last := c.last.Load()
	go func() {
		var err error
		for attempt := range resumeAttempts {
			time.Sleep(time.Duration(100*(attempt+1)) * time.Millisecond)
			fd, rest, at, e := open(c.u, c.src, last)
			if e == nil {
				r.resumed <- reopened{i: i, fd: fd, rest: rest, at: at}
				return
			}
			err = e
		}
		r.resumed <- reopened{i: i, fd: -1, err: fmt.Errorf("no resume after %d attempts: %w", resumeAttempts, err)}
	}()
}

// takeResumed gives the reopened streams back to the loop.
func (r *reader) takeResumed() {
	for {
		select {
		case ro := <-r.resumed:
			c := r.clients[ro.i]
			if ro.err != nil {
				r.fail(c, ro.err)
				continue
			}
			c.fd = ro.fd
			c.p = parser{times: c.p.times}
			if err := c.take(ro.rest, ro.at, r.tally); err != nil {
				r.ended(ro.i, err)
				continue
			}
			if err := r.add(ro.i); err != nil {
				r.fail(c, err)
			}
		default:
			return
		}
	}
}

func (r *reader) fail(c *client, err error) {
	if c.err == nil {
		c.err = err
		if r.tally.phases != nil {
			r.tally.phases.gone(c.received)
		}
	}
	_ = syscall.EpollCtl(r.ep, syscall.EPOLL_CTL_DEL, c.fd, nil)
	c.gotHistory()
}

func closeFD(fd int) { _ = syscall.Close(fd) }

// openFileLimit is RLIMIT_NOFILE (the soft limit, which Go raises to the
// hard one at start, and the hard limit).
func openFileLimit() (cur, hard uint64, ok bool) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, false
	}
	return l.Cur, l.Max, true
}
