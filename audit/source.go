package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reader sizes.
const (
	// recvBatch is how many datagrams one recvmmsg call may return. The
	// kernel sends one record per datagram.
	recvBatch = 64
	// maxBatch bounds a batch handed on mid-drain when records keep coming
	// faster than one drain can empty the socket.
	maxBatch = 4096
)

// KernelStats counts what the kernel reader has seen since OpenKernel.
type KernelStats struct {
	Records        uint64 // records received from the kernel, delivered or not
	Batches        uint64 // batches handed on
	ENOBUFS        uint64 // receive-buffer overflows the socket reported (records lost, count unknown)
	DroppedRecords uint64 // records dropped because the next stage was full
}

// Stats returns the reader's counters. It is safe to call at any time.
func (k *Kernel) Stats() KernelStats {
	return KernelStats{
		Records:        k.records.Load(),
		Batches:        k.batches.Load(),
		ENOBUFS:        k.enobufs.Load(),
		DroppedRecords: k.dropped.Load(),
	}
}

// Run reads records from the kernel and sends them to out in batches until
// ctx ends, then returns nil; it does not close out. It blocks for the first
// record, lets more gather for GatherWindow, then drains the socket with
// recvmmsg: one wake-up per batch, not per record. Run never waits on out: a
// batch that does not fit is dropped and counted in Stats.
func (k *Kernel) Run(ctx context.Context, out chan<- []Record) error {
	if ctx.Err() != nil {
		return nil
	}
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(woken)
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(k.wake, one[:]) // the eventfd counter cannot overflow from one write
	})
	// Close closes the eventfd after Run returns; the writer must be done.
	defer func() {
		if !stop() {
			<-woken
		}
	}()

	if len(k.pending) > 0 {
		k.records.Add(uint64(len(k.pending)))
		k.deliver(out, k.pending)
		k.pending = nil
	}
	r := newReceiver(k.data.fd)
	fds := []unix.PollFd{
		{Fd: int32(k.data.fd), Events: unix.POLLIN},
		{Fd: int32(k.wake), Events: unix.POLLIN},
	}
	gather := unix.NsecToTimespec(k.cfg.GatherWindow.Nanoseconds())
	for {
		// Block for the first record, or shutdown.
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("audit: poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return nil
		}
		if fds[0].Revents&unix.POLLNVAL != 0 {
			return errors.New("audit: poll: data socket closed")
		}
		// Let records gather, waking early only for shutdown.
		if stopped, err := k.sleep(gather); err != nil || stopped {
			return err
		}
		if err := k.drain(r, out); err != nil {
			return err
		}
	}
}

// sleep waits for d on the wake eventfd and reports whether it was woken.
func (k *Kernel) sleep(d unix.Timespec) (bool, error) {
	if d.Nano() <= 0 {
		return false, nil
	}
	fds := []unix.PollFd{{Fd: int32(k.wake), Events: unix.POLLIN}}
	deadline := time.Now().Add(time.Duration(d.Nano()))
	for {
		n, err := unix.Ppoll(fds, &d, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			d = unix.NsecToTimespec(max(0, time.Until(deadline).Nanoseconds()))
			continue
		case err != nil:
			return false, fmt.Errorf("audit: poll: %w", err)
		}
		return n > 0, nil
	}
}

// drain reads until the socket is empty, handing on what it read.
func (k *Kernel) drain(r *receiver, out chan<- []Record) error {
	batch := make([]Record, 0, recvBatch)
	for {
		before := len(batch)
		var err error
		batch, err = r.recv(batch)
		k.records.Add(uint64(len(batch) - before))
		switch {
		case err == nil:
			if len(batch) >= maxBatch {
				k.deliver(out, batch)
				batch = make([]Record, 0, recvBatch)
			}
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			// The socket overflowed and the kernel dropped records for us;
			// reading on clears the error.
			k.enobufs.Add(1)
			continue
		case errors.Is(err, unix.EAGAIN):
			if len(batch) > 0 {
				k.deliver(out, batch)
			}
			return nil
		default:
			return fmt.Errorf("audit: receive: %w", err)
		}
	}
}

// deliver hands batch on without waiting.
func (k *Kernel) deliver(out chan<- []Record, batch []Record) {
	select {
	case out <- batch:
		k.batches.Add(1)
	default:
		k.dropped.Add(uint64(len(batch)))
	}
}

// receiver holds the buffers of one recvmmsg call.
type receiver struct {
	fd    int
	bufs  [][]byte
	iovs  []unix.Iovec
	names []unix.RawSockaddrNetlink
	msgs  []unix.Mmsghdr
}

func newReceiver(fd int) *receiver {
	r := &receiver{
		fd:    fd,
		bufs:  make([][]byte, recvBatch),
		iovs:  make([]unix.Iovec, recvBatch),
		names: make([]unix.RawSockaddrNetlink, recvBatch),
		msgs:  make([]unix.Mmsghdr, recvBatch),
	}
	for i := range r.msgs {
		r.bufs[i] = make([]byte, maxMessage)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(maxMessage)
		r.msgs[i].Hdr.Iov = &r.iovs[i]
		r.msgs[i].Hdr.SetIovlen(1)
		r.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
	}
	return r
}

// recv reads up to recvBatch datagrams without blocking and appends their
// records to batch. Their bytes are copied into one allocation per call.
func (r *receiver) recv(batch []Record) ([]Record, error) {
	for i := range r.msgs {
		r.msgs[i].Hdr.Namelen = unix.SizeofSockaddrNetlink
		r.msgs[i].Hdr.Flags = 0
		r.msgs[i].Len = 0
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(r.fd),
		uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return batch, errno
	}
	total := 0
	for i := range int(n) {
		total += int(r.msgs[i].Len)
	}
	data := make([]byte, 0, total)
	for i := range int(n) {
		if r.names[i].Pid != 0 {
			continue // not from the kernel: any local process may send to us
		}
		h, payload, ok := parseMessage(r.bufs[i][:r.msgs[i].Len])
		if !ok || !isRecord(h.Type) {
			continue // ACKs of our own requests, AUDIT_REPLACE pings
		}
		start := len(data)
		data = append(data, trimNUL(payload)...)
		batch = append(batch, Record{Type: h.Type, Data: data[start:len(data):len(data)]})
	}
	return batch, nil
}
