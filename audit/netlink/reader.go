package netlink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/audit"
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

// reader is the data path that Owner and Multicast share: a socket the
// kernel sends records to, read in gathered batches. Owner and Multicast
// embed it for Run and Stats.
type reader struct {
	data   *socket
	gather time.Duration // see OwnerConfig.GatherWindow

	// pending holds records that arrived on the data socket before the
	// kernel acknowledged the owner's pid registration; Run delivers them
	// first.
	pending []audit.Record

	records, batches, enobufs, dropped atomic.Uint64
}

// ReaderStats counts what a reader has seen since it was opened.
type ReaderStats struct {
	Records        uint64 // records received from the kernel, delivered or not
	Batches        uint64 // batches handed on
	ENOBUFS        uint64 // receive-buffer overflows the socket reported (records lost, count unknown)
	DroppedRecords uint64 // records dropped because the next stage was full
}

// Stats returns the reader's counters. It is safe to call at any time.
func (rd *reader) Stats() ReaderStats {
	return ReaderStats{
		Records:        rd.records.Load(),
		Batches:        rd.batches.Load(),
		ENOBUFS:        rd.enobufs.Load(),
		DroppedRecords: rd.dropped.Load(),
	}
}

// Run reads records from the kernel and sends them to out in batches until
// ctx ends, then returns nil; it does not close out. It waits for the first
// record, lets more gather for GatherWindow, then drains the socket with
// recvmmsg: one wake-up per batch, not per record. Run never waits on out: a
// batch that does not fit is dropped and counted in Stats.
//
// Both waits go through the Go runtime: the socket is registered with the
// runtime's network poller and the gather window is a runtime timer. A
// goroutine blocked in a raw poll(2) instead holds an OS thread in a
// syscall, and every such wait longer than 10 ms makes the scheduler's
// monitor thread retake it and reset its back-off, which on the exec-storm
// benchmark cost more CPU than reading the records.
func (rd *reader) Run(ctx context.Context, out chan<- []audit.Record) error {
	if ctx.Err() != nil {
		return nil
	}
	if len(rd.pending) > 0 {
		rd.records.Add(uint64(len(rd.pending)))
		rd.deliver(out, rd.pending)
		rd.pending = nil
	}
	f, err := rd.pollable()
	if err != nil {
		return err
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("audit: data socket: %w", err)
	}
	// A read deadline in the past wakes the wait below at shutdown.
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	r := newReceiver(int(f.Fd()))
	gather := time.NewTimer(time.Hour)
	gather.Stop() // armed per batch below
	for {
		// Wait for the first record: the callback reads what is there and
		// asks the poller to wait while the socket is empty.
		batch := make([]audit.Record, 0, recvBatch)
		var rerr error
		err := rc.Read(func(uintptr) bool {
			before := len(batch)
			batch, rerr = r.recv(batch)
			rd.records.Add(uint64(len(batch) - before))
			return !errors.Is(rerr, unix.EAGAIN) || len(batch) > 0
		})
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil:
			rd.deliver(out, batch)
			return nil
		case err != nil:
			return fmt.Errorf("audit: wait for records: %w", err)
		}
		if err := rd.recvErr(rerr); err != nil {
			return err
		}
		// Let records gather, waking early only for shutdown.
		if rd.gather > 0 {
			gather.Reset(rd.gather)
			select {
			case <-gather.C:
			case <-ctx.Done():
				rd.deliver(out, batch)
				return nil
			}
		}
		if err := rd.drain(r, batch, out); err != nil {
			return err
		}
	}
}

// pollable returns the data socket as an *os.File registered with the
// runtime poller: a duplicate of its descriptor, set non-blocking (which the
// original shares; every receive uses MSG_DONTWAIT anyway).
func (rd *reader) pollable() (*os.File, error) {
	fd, err := unix.FcntlInt(uintptr(rd.data.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("audit: dup data socket: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("audit: data socket: %w", err)
	}
	return os.NewFile(uintptr(fd), "audit-netlink"), nil
}

// recvErr sorts a receive error: EAGAIN and EINTR are not errors, ENOBUFS is
// counted as loss, anything else ends the reader.
func (rd *reader) recvErr(err error) error {
	switch {
	case err == nil, errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		return nil
	case errors.Is(err, unix.ENOBUFS):
		// The socket overflowed and the kernel dropped records for us;
		// reading on clears the error.
		rd.enobufs.Add(1)
		return nil
	default:
		return fmt.Errorf("audit: receive: %w", err)
	}
}

// drain reads until the socket is empty, appending to batch and handing on
// what it read.
func (rd *reader) drain(r *receiver, batch []audit.Record, out chan<- []audit.Record) error {
	for {
		before := len(batch)
		var err error
		batch, err = r.recv(batch)
		rd.records.Add(uint64(len(batch) - before))
		if err == nil {
			if len(batch) >= maxBatch {
				rd.deliver(out, batch)
				batch = make([]audit.Record, 0, recvBatch)
			}
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			rd.deliver(out, batch)
			return nil
		}
		if err := rd.recvErr(err); err != nil {
			return err
		}
	}
}

// deliver hands batch on without waiting.
func (rd *reader) deliver(out chan<- []audit.Record, batch []audit.Record) {
	if len(batch) == 0 {
		return
	}
	select {
	case out <- batch:
		rd.batches.Add(1)
	default:
		rd.dropped.Add(uint64(len(batch)))
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
func (r *receiver) recv(batch []audit.Record) ([]audit.Record, error) {
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
		batch = append(batch, audit.Record{Type: h.Type, Data: data[start:len(data):len(data)]})
	}
	return batch, nil
}
