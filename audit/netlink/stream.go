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
// What costs CPU here is not reading but waking up, so the path is built to
// wake the process once per batch under load:
//
//   - The data socket and a timerfd sit in a private epoll set, and only
//     that set is registered with the Go runtime's network poller. The
//     socket is registered with EPOLLONESHOT: once its first record has
//     fired it, arriving records wake nobody, however many there are, until
//     it is re-armed. (A socket registered with the poller itself wakes an
//     idle runtime thread per record while the reader sleeps out its gather
//     window.)
//   - The gather window is the timerfd, not a runtime timer. The runtime
//     sleeps in whole milliseconds, rounded down, so a runtime timer of 20 ms
//     woke it at 19 ms and again a millisecond later, and each runtime timer
//     also ends the deep sleep of its monitor thread (sysmon); the timerfd
//     wakes it once, on time, through the poller.
//   - After a drain that found records, Read arms the timerfd for the next
//     window instead of the socket: while records keep coming the stream
//     wakes once per window, on the timer alone. A drain that finds the
//     socket empty arms the socket again, and an idle stream sleeps until
//     its next record.
//   - The lead record, the one that wakes an idle stream, is handed over at
//     once rather than after a window: an isolated exec is evaluated while
//     its process lives, so that its descriptors can be read for the pipe
//     evidence of a sequence (a small `base64 f` is gone within a
//     millisecond, long before a 20 ms window ends), and the drain that
//     reads it starts the window for what follows. Under load nothing
//     changes; an isolated exec costs two wake-ups instead of three (the
//     lead record, then the empty drain at the window's end).
type Stream struct {
	rd     *reader
	fd     int      // the data socket
	tfd    int      // the gather window's timerfd
	epfd   int      // the private epoll set
	ep     *os.File // epfd, in the runtime poller (never call its Fd: that makes it blocking)
	recv   *receiver
	arena  []byte // the bytes of the records of the last Read
	ready  chan struct{}
	cancel context.CancelFunc
	done   chan struct{} // closed when the waiter has returned
	err    error         // why the waiter stopped, if not ctx; read after done
	// drained is how many records Read took since it last armed the set.
	drained int
	// handOff is set by Run, which counts the batches it hands on itself.
	handOff bool

	closeOnce sync.Once
	closeErr  error
}

// Stream opens the data path; Ready closes when ctx ends or the socket
// fails. Close it after use. A reader has one data path: Run and Stream are
// not to be used together.
func (rd *reader) Stream(ctx context.Context) (*Stream, error) {
	s := &Stream{rd: rd, fd: rd.data.fd, recv: newReceiver(rd.data.fd), ready: make(chan struct{}, 1), done: make(chan struct{})}
	if err := s.openSet(); err != nil {
		return nil, fmt.Errorf("audit: epoll: %w", err)
	}
	rc, err := s.ep.SyscallConn()
	if err != nil {
		s.ep.Close()
		unix.Close(s.tfd)
		return nil, fmt.Errorf("audit: epoll: %w", err)
	}
	if len(rd.pending) > 0 {
		s.ready <- struct{}{} // records from before the pid registration
	}
	ctx, s.cancel = context.WithCancel(ctx)
	go s.wait(ctx, rc)
	return s, nil
}

// openSet makes the private epoll set, with the socket armed and the
// timerfd idle, and registers it with the runtime poller.
func (s *Stream) openSet() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return err
	}
	sock := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(s.fd)}
	timer := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(tfd)}
	if err := errors.Join(unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, s.fd, &sock),
		unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, tfd, &timer),
		// Non-blocking, so that os.NewFile registers the set with the poller.
		unix.SetNonblock(epfd, true)); err != nil {
		unix.Close(epfd)
		unix.Close(tfd)
		return err
	}
	s.epfd, s.tfd, s.ep = epfd, tfd, os.NewFile(uintptr(epfd), "audit-epoll")
	return nil
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
// the private set is ready. The socket's first record starts the gather
// window (the timerfd); the timerfd's expiry signals Ready.
func (s *Stream) wait(ctx context.Context, rc syscall.RawConn) {
	defer close(s.done)
	defer close(s.ready)
	// A read deadline in the past wakes the poller wait at shutdown.
	stop := context.AfterFunc(ctx, func() { s.ep.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	evs := make([]unix.EpollEvent, 2)
	for {
		var n int
		var werr error
		err := rc.Read(func(uintptr) bool {
			var errno unix.Errno
			n, errno = pollNow(s.epfd, evs)
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
		if !s.gathered(evs[:n]) {
			continue
		}
		select {
		case s.ready <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
}

// gathered handles the ready members of the set and reports whether a
// batch is ready: the timer expired, or a lead record came to an idle
// stream.
func (s *Stream) gathered(evs []unix.EpollEvent) bool {
	ready := false
	for _, ev := range evs {
		switch {
		case int(ev.Fd) == s.tfd:
			var expirations [8]byte
			unix.RawSyscall(unix.SYS_READ, uintptr(s.tfd), uintptr(unsafe.Pointer(&expirations[0])), 8)
			ready = true
		default:
			// The socket: a lead record after idling. It is handed over at
			// once, and the drain that reads it starts the window for what
			// follows (arm).
			ready = true
		}
	}
	return ready
}

// startWindow arms the timerfd for one gather window.
func (s *Stream) startWindow() error {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(s.rd.gather.Nanoseconds())}
	_, _, errno := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(s.tfd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("audit: timerfd: %w", errno)
	}
	return nil
}

// Read appends the records waiting on the socket to batch. Their Data stays
// valid until the next Read: the consumer copies what it keeps (the
// assembler keeps none of it). When more is true, Read stopped at maxBatch
// records or maxBatchBytes with records still waiting; call it again.
// Otherwise the socket was drained and the set armed for the next Ready: the
// timer for the next window if this drain found records, else the socket.
// Read is for the consumer's goroutine only.
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
		s.drained += len(batch) - before
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

// arm readies the set for the next batch. After a drain that found records
// more are likely on their way: the timer alone ends the next window, and
// the socket stays quiet. Otherwise the socket's one-shot registration is
// re-armed; a record that arrived after the last receive makes the set
// ready at once, so none waits unseen.
func (s *Stream) arm() error {
	if s.drained > 0 && s.rd.gather > 0 {
		s.drained = 0
		return s.startWindow()
	}
	s.drained = 0
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
		s.closeErr = errors.Join(s.ep.Close(), unix.Close(s.tfd))
	})
	return s.closeErr
}
