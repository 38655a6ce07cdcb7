package netlink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/audit"
)

// Stream is a reader's data path for a consumer that reads in its own
// goroutine: Ready fires once per gathered batch and the consumer drains it
// with Read, so records are parsed, assembled and evaluated where they are
// read, with no hand-off per record or per event.
//
// What costs CPU here is not reading but waking up. The data socket sits in
// a private epoll set with EPOLLONESHOT, and only that set is registered
// with the Go runtime's network poller. The first record fires the one-shot
// registration, which wakes the runtime once; from then until Read has
// drained the socket and re-armed it, arriving records wake nobody, however
// many there are. (A socket registered with the poller itself wakes an idle
// runtime thread per record while the reader sleeps out its gather window.)
// The gather window is a runtime timer: a second wake-up per batch.
type Stream struct {
	rd     *reader
	fd     int      // the data socket
	epfd   int      // the private epoll set
	ep     *os.File // epfd, in the runtime poller (never call its Fd: that makes it blocking)
	recv   *receiver
	arena  []byte // the bytes of the records of the last Read
	ready  chan struct{}
	cancel context.CancelFunc
	done   chan struct{} // closed when the waiter has returned
	err    error         // why the waiter stopped, if not ctx; read after done
	// handOff is set by Run, which counts the batches it hands on itself.
	handOff bool

	closeOnce sync.Once
	closeErr  error
}

// Stream opens the data path; Ready closes when ctx ends or the socket
// fails. Close it after use. A reader has one data path: Run and Stream are
// not to be used together.
func (rd *reader) Stream(ctx context.Context) (*Stream, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("audit: epoll: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(rd.data.fd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, rd.data.fd, &ev); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("audit: epoll: %w", err)
	}
	// Non-blocking, so that os.NewFile registers the set with the poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("audit: epoll: %w", err)
	}
	s := &Stream{
		rd:    rd,
		fd:    rd.data.fd,
		epfd:  epfd,
		ep:    os.NewFile(uintptr(epfd), "audit-epoll"),
		recv:  newReceiver(rd.data.fd),
		ready: make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	rc, err := s.ep.SyscallConn()
	if err != nil {
		s.ep.Close()
		return nil, fmt.Errorf("audit: epoll: %w", err)
	}
	if len(rd.pending) > 0 {
		s.ready <- struct{}{} // records from before the pid registration
	}
	ctx, s.cancel = context.WithCancel(ctx)
	go s.wait(ctx, rc)
	return s, nil
}

// Ready receives a value when records have gathered for the gather window
// and is closed when the stream ends; Err then says why.
func (s *Stream) Ready() <-chan struct{} { return s.ready }

// Err is why the stream ended: nil when its context did. Call it once Ready
// is closed.
func (s *Stream) Err() error {
	<-s.done
	return s.err
}

// wait is the goroutine behind Ready: it parks in the runtime poller until
// the one-shot registration fires, lets records gather, and signals.
func (s *Stream) wait(ctx context.Context, rc syscall.RawConn) {
	defer close(s.done)
	defer close(s.ready)
	// A read deadline in the past wakes the poller wait at shutdown.
	stop := context.AfterFunc(ctx, func() { s.ep.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	gather := time.NewTimer(time.Hour)
	gather.Stop() // armed per batch below
	evs := make([]unix.EpollEvent, 1)
	for {
		var werr error
		err := rc.Read(func(uintptr) bool {
			n, errno := pollNow(s.epfd, evs)
			if errno != 0 && errno != unix.EINTR {
				werr = errno
				return true
			}
			return n > 0
		})
		switch {
		case ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
			return
		case err != nil:
			s.err = fmt.Errorf("audit: wait for records: %w", err)
			return
		case werr != nil:
			s.err = fmt.Errorf("audit: wait for records: %w", werr)
			return
		}
		if s.rd.gather > 0 {
			gather.Reset(s.rd.gather)
			select {
			case <-gather.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case s.ready <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
}

// Read appends the records waiting on the socket to batch. Their Data stays
// valid until the next Read: the consumer copies what it keeps (the
// assembler keeps none of it). When more is true, Read stopped at maxBatch
// records or maxBatchBytes with records still waiting; call it again. Otherwise the socket was
// drained and is armed for the next Ready. Read is for the consumer's
// goroutine only.
func (s *Stream) Read(batch []audit.Record) (out []audit.Record, more bool, err error) {
	s.arena = s.arena[:0]
	if len(s.rd.pending) > 0 {
		s.rd.records.Add(uint64(len(s.rd.pending)))
		batch = append(batch, s.rd.pending...)
		s.rd.pending = nil
	}
	first := len(batch)
	defer func() {
		if !s.handOff && len(out) > first {
			s.rd.batches.Add(1)
		}
	}()
	for {
		before := len(batch)
		batch, s.arena, err = s.recv.recvInto(batch, s.arena)
		s.rd.records.Add(uint64(len(batch) - before))
		switch {
		case err == nil:
			if len(batch) >= maxBatch || len(s.arena) >= maxBatchBytes {
				return batch, true, nil
			}
		case errors.Is(err, unix.EAGAIN):
			return batch, false, s.arm()
		default:
			if err := s.rd.recvErr(err); err != nil {
				return batch, false, err
			}
		}
	}
}

// arm re-arms the one-shot registration. A record that arrived after the
// last receive makes the set ready at once, so none waits unseen.
func (s *Stream) arm() error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(s.fd)}
	_, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(s.epfd), unix.EPOLL_CTL_MOD, uintptr(s.fd),
		uintptr(unsafe.Pointer(&ev)), 0, 0)
	if errno != 0 {
		return fmt.Errorf("audit: epoll: %w", errno)
	}
	return nil
}

// pollNow asks the private set, without waiting, whether the socket is
// ready.
//
// It and the other calls of the data path (recvmmsg with MSG_DONTWAIT,
// epoll_ctl) never block, so they are made as raw system calls: a system
// call the runtime is told of (entersyscall) wakes the scheduler's monitor
// thread, sysmon, whenever it sleeps because every P was idle, which is the
// case each time a batch arrives; awake, it polls every 20 µs for a
// millisecond before it backs off.
func pollNow(epfd int, evs []unix.EpollEvent) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&evs[0])),
		uintptr(len(evs)), 0, 0, 0)
	return int(n), errno
}

// Close stops the stream, waits for its goroutine and releases the epoll
// set; the socket stays open. It may be called more than once.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
		s.closeErr = s.ep.Close()
	})
	return s.closeErr
}
