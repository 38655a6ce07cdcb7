package netlink

import (
	"context"
	"errors"
	"fmt"
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
	// maxBatchBytes bounds the bytes of one batch the same way: a user who
	// execs with megabytes of arguments fills every record to the kernel's
	// MAX_AUDIT_MESSAGE_LENGTH (8970 bytes), and 4096 of those would keep a
	// 36 MiB arena alive for the stream's life.
	maxBatchBytes = 1 << 20
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
	Batches        uint64 // batches handed on (by Run) or read (through a Stream)
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
// ctx ends, then returns nil; it does not close out. It reads through a
// Stream (see there for why it costs one or two wake-ups per batch rather
// than one per record) and hands each batch on with its own copy of the
// bytes. Run never waits on out: a batch that does not fit is dropped and
// counted in Stats. The daemon's live pipeline reads the Stream itself.
func (rd *reader) Run(ctx context.Context, out chan<- []audit.Record) error {
	if ctx.Err() != nil {
		return nil
	}
	s, err := rd.Stream(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	s.handOff = true // deliver counts the batches that went on
	var buf []audit.Record
	read := func() error {
		for {
			var more bool
			var err error
			buf, more, err = s.Read(buf[:0])
			rd.deliver(out, cloneRecords(buf))
			if err != nil || !more {
				return err
			}
		}
	}
	for range s.Ready() {
		if err := read(); err != nil {
			return err
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	// Shutting down: what already arrived still goes on.
	return read()
}

// cloneRecords copies batch and its bytes into two allocations.
func cloneRecords(batch []audit.Record) []audit.Record {
	if len(batch) == 0 {
		return nil
	}
	total := 0
	for _, r := range batch {
		total += len(r.Data)
	}
	data := make([]byte, 0, total)
	out := make([]audit.Record, len(batch))
	for i, r := range batch {
		start := len(data)
		data = append(data, r.Data...)
		out[i] = audit.Record{Type: r.Type, Data: data[start:len(data):len(data)]}
	}
	return out
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

// recvInto reads up to recvBatch datagrams without blocking and appends
// their records to batch, their bytes to arena, which it returns grown: once
// the arena and batch have grown to a drain's size, reading allocates
// nothing.
func (r *receiver) recvInto(batch []audit.Record, arena []byte) ([]audit.Record, []byte, error) {
	for i := range r.msgs {
		r.msgs[i].Hdr.Namelen = unix.SizeofSockaddrNetlink
		r.msgs[i].Hdr.Flags = 0
		r.msgs[i].Len = 0
	}
	// Raw: MSG_DONTWAIT never blocks, and see pollNow.
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(r.fd),
		uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return batch, arena, errno
	}
	for i := range int(n) {
		if r.names[i].Pid != 0 {
			continue // not from the kernel: any local process may send to us
		}
		h, payload, ok := parseMessage(r.bufs[i][:r.msgs[i].Len])
		if !ok || !isRecord(h.Type) {
			continue // ACKs of our own requests, AUDIT_REPLACE pings
		}
		start := len(arena)
		arena = append(arena, trimNUL(payload)...)
		// Full slice expressions: a record's Data never reaches into the
		// next one's bytes. If the arena grows, earlier records keep the
		// old array alive until the batch is done with.
		batch = append(batch, audit.Record{Type: h.Type, Data: arena[start:len(arena):len(arena)]})
	}
	return batch, arena, nil
}
