package sink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/encwatch/encwatch/detect"
)

// Spool errors Append returns, so the router can count each cause.
var (
	// ErrSpoolFull: the spool holds MaxBytes and WhenFull is "drop_newest",
	// or it stayed full for BlockTimeout with WhenFull "block".
	ErrSpoolFull = errors.New("spool full")
	// ErrSpoolClosed: Append after Close.
	ErrSpoolClosed = errors.New("spool closed")
)

// SpoolOptions configure a Spool. Zero values take the defaults.
type SpoolOptions struct {
	Dir string // created 0700 if missing; one spool per directory (locked)
	// MaxBytes bounds the bytes on disk (default 64 MiB).
	MaxBytes int64
	// FsyncInterval is the most time an appended alert may sit in the page
	// cache before an fsync (default 1s; negative: fsync every append). The
	// fsync happens on the first Append or Ack after the interval, and on
	// Close. A process kill -9 loses nothing either way (the kernel has the
	// bytes); the interval bounds what a power loss can take.
	FsyncInterval time.Duration
	// WhenFull is "drop_newest" (default: Append fails at once, counted) or
	// "block": Append waits for the worker to free space, up to
	// BlockTimeout (default 1s) and then fails. Blocking keeps alerts
	// through a burst at the cost of stalling the caller, which is the
	// detection stage, so the wait is always bounded.
	WhenFull     string
	BlockTimeout time.Duration
	// SegmentBytes is the size at which a new segment file starts (default
	// MaxBytes/8, between 64 KiB and 8 MiB). Fully acknowledged segments
	// are deleted.
	SegmentBytes int64

	now func() time.Time
}

// Cursor is a position in the spool: a segment and an offset in it.
type Cursor struct {
	Seg uint64
	Off int64
}

// Spool is a write-ahead log of alerts on disk: the buffer between
// Router.Deliver and a sink's worker, which keeps alerts through an outage
// of the receiver and across a restart or kill -9 of the daemon.
//
// On disk: segment files NNNNNNNNNNNNNNNN.wal (hex sequence numbers), each a
// run of records framed as a little-endian uint32 length, the CRC-32C of the
// payload and the payload (a versioned record, see codec.go and
// docs/sinks.md); and the file
// "ack", holding the cursor of the first unacknowledged record, with its own
// CRC. Opening a spool resumes after the persisted cursor, so every alert
// not acknowledged before a crash is read again: delivery is at least once,
// and the alert id lets the receiver drop the duplicate. A torn record at
// the end of the last segment (a crash in the middle of a write) is cut off.
//
// Concurrency: Append may be called from any goroutine; Read and Ack from
// one goroutine, the sink's worker; Close after both have stopped.
type Spool struct {
	opts SpoolOptions
	lock *os.File // flock'ed, so that two daemons never share a spool

	mu        sync.Mutex
	w         *os.File // the segment being appended to
	wseg      uint64
	woff      int64
	ack       Cursor
	diskBytes int64 // bytes of every segment file on disk
	pending   int   // records after ack
	dirty     bool  // appended since the last fsync
	lastSync  time.Time
	closed    bool
	space     chan struct{} // closed and replaced when Ack frees space

	// The reader's state, owned by the worker goroutine.
	r     *os.File
	rseg  uint64
	ackf  *os.File
	frame []byte
	buf   bytes.Buffer // Append's encoding buffer, under mu
}

const (
	frameHeader   = 8
	maxRecord     = 16 << 20 // larger lengths are corruption
	ackFileName   = "ack"
	segSuffix     = ".wal"
	ackRecordSize = 20 // seg uint64, off int64, crc32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (o SpoolOptions) withDefaults() SpoolOptions {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 20
	}
	if o.FsyncInterval == 0 {
		o.FsyncInterval = time.Second
	}
	if o.WhenFull == "" {
		o.WhenFull = "drop_newest"
	}
	if o.BlockTimeout <= 0 {
		o.BlockTimeout = time.Second
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = min(max(o.MaxBytes/8, 64<<10), 8<<20, max(o.MaxBytes/4, 1))
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

func segName(seg uint64) string { return fmt.Sprintf("%016x%s", seg, segSuffix) }

// OpenSpool opens (creating it if needed) the spool in opts.Dir and finds
// the alerts not yet acknowledged.
func OpenSpool(opts SpoolOptions) (*Spool, error) {
	opts = opts.withDefaults()
	if opts.Dir == "" {
		return nil, errors.New("spool: no dir")
	}
	switch opts.WhenFull {
	case "drop_newest", "block":
	default:
		return nil, fmt.Errorf("spool: when_full %q: want \"block\" or \"drop_newest\"", opts.WhenFull)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(opts.Dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool: lock %s: in use by another process: %w", opts.Dir, err)
	}
	s := &Spool{opts: opts, lock: lock, space: make(chan struct{}), lastSync: opts.now()}
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("spool: %w", err)
	}
	return s, nil
}

// recover reads the ack cursor, deletes acknowledged segments, counts the
// pending records and cuts a torn tail off the last segment.
func (s *Spool) recover() error {
	var err error
	s.ackf, err = os.OpenFile(filepath.Join(s.opts.Dir, ackFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	segs, err := s.segments()
	if err != nil {
		return err
	}
	var rec [ackRecordSize]byte
	ackValid := false
	if n, _ := s.ackf.ReadAt(rec[:], 0); n == ackRecordSize &&
		crc32.Checksum(rec[:16], castagnoli) == binary.LittleEndian.Uint32(rec[16:]) {
		s.ack = Cursor{Seg: binary.LittleEndian.Uint64(rec[0:]), Off: int64(binary.LittleEndian.Uint64(rec[8:]))}
		ackValid = true
	}
	if !ackValid || (len(segs) > 0 && s.ack.Seg < segs[0]) {
		// No cursor (a new spool, or a damaged ack file): resend everything.
		s.ack = Cursor{}
		if len(segs) > 0 {
			s.ack.Seg = segs[0]
		} else if !ackValid {
			s.ack.Seg = 1
		}
	}
	for _, seg := range segs {
		if seg < s.ack.Seg {
			if err := os.Remove(filepath.Join(s.opts.Dir, segName(seg))); err != nil {
				return err
			}
		}
	}
	segs = slices.DeleteFunc(segs, func(seg uint64) bool { return seg < s.ack.Seg })
	if len(segs) == 0 || segs[len(segs)-1] < s.ack.Seg {
		segs = append(segs, s.ack.Seg)
		s.ack.Off = 0
	}
	for i, seg := range segs {
		f, err := os.OpenFile(filepath.Join(s.opts.Dir, segName(seg)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		start := int64(0)
		if seg == s.ack.Seg {
			start = s.ack.Off
		}
		n, end, err := scanSegment(f, start)
		if err != nil {
			f.Close()
			return err
		}
		s.pending += n
		last := i == len(segs)-1
		if last {
			// Cut a torn or damaged tail so that appends follow whole records.
			if err := f.Truncate(end); err != nil {
				f.Close()
				return err
			}
			if _, err := f.Seek(end, io.SeekStart); err != nil {
				f.Close()
				return err
			}
			s.w, s.wseg, s.woff = f, seg, end
		} else {
			f.Close()
		}
		fi, err := os.Stat(filepath.Join(s.opts.Dir, segName(seg)))
		if err != nil {
			return err
		}
		s.diskBytes += fi.Size()
	}
	if s.ack.Seg == s.wseg && s.ack.Off > s.woff {
		s.ack.Off = s.woff
	}
	return nil
}

// segments lists the segment numbers in the directory, in order.
func (s *Spool) segments() ([]uint64, error) {
	ents, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return nil, err
	}
	var segs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		segs = append(segs, n)
	}
	slices.Sort(segs)
	return segs, nil
}

// scanSegment counts the whole, intact records of f from off on and returns
// the offset just past the last of them.
func scanSegment(f *os.File, off int64) (n int, end int64, err error) {
	var hdr [frameHeader]byte
	var payload []byte
	for {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			if errors.Is(err, io.EOF) {
				return n, off, nil
			}
			return n, off, err
		}
		size := binary.LittleEndian.Uint32(hdr[0:])
		if size == 0 || size > maxRecord {
			return n, off, nil
		}
		payload = slices.Grow(payload[:0], int(size))[:size]
		if _, err := f.ReadAt(payload, off+frameHeader); err != nil {
			if errors.Is(err, io.EOF) {
				return n, off, nil
			}
			return n, off, err
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			return n, off, nil
		}
		n++
		off += frameHeader + int64(size)
	}
}

// Append writes a to the spool. With WhenFull "block" it may wait up to
// BlockTimeout for space; otherwise it never waits on anything but the disk.
func (s *Spool) Append(a *detect.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrSpoolClosed
	}
	s.buf.Reset()
	s.buf.Write(make([]byte, frameHeader))
	if err := encodeAlert(&s.buf, a); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	rec := s.buf.Bytes()
	binary.LittleEndian.PutUint32(rec[0:], uint32(len(rec)-frameHeader))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[frameHeader:], castagnoli))
	size := int64(len(rec))

	var deadline <-chan time.Time
	for s.diskBytes+size > s.opts.MaxBytes {
		if s.pending == 0 && s.woff > 0 {
			// Everything on disk is acknowledged: start a fresh segment
			// and delete the old ones.
			if err := s.reclaim(); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			continue
		}
		if s.opts.WhenFull != "block" {
			return ErrSpoolFull
		}
		if deadline == nil {
			t := time.NewTimer(s.opts.BlockTimeout)
			defer t.Stop()
			deadline = t.C
		}
		space := s.space
		s.mu.Unlock()
		select {
		case <-space:
			s.mu.Lock()
		case <-deadline:
			s.mu.Lock()
			return ErrSpoolFull
		}
		if s.closed {
			return ErrSpoolClosed
		}
	}
	if s.woff > 0 && s.woff+size > s.opts.SegmentBytes {
		if err := s.rotate(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	if _, err := s.w.Write(rec); err != nil {
		// A short write leaves a torn record: cut it so later records stay readable.
		_ = s.w.Truncate(s.woff)
		_, _ = s.w.Seek(s.woff, io.SeekStart)
		return fmt.Errorf("spool: write: %w", err)
	}
	s.woff += size
	s.diskBytes += size
	s.pending++
	s.dirty = true
	return s.maybeSync()
}

// maybeSync fsyncs the segment and the ack file when FsyncInterval has
// passed since the last fsync. Called with mu held.
func (s *Spool) maybeSync() error {
	if !s.dirty {
		return nil
	}
	if s.opts.FsyncInterval > 0 && s.opts.now().Sub(s.lastSync) < s.opts.FsyncInterval {
		return nil
	}
	return s.syncLocked()
}

// Sync makes what was appended and acknowledged durable now, if it is not
// yet. The router's worker calls it when the sink goes idle, so an alert
// appended just before a quiet spell waits at most FsyncInterval for its
// fsync, not for the next append.
func (s *Spool) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		return nil
	}
	return s.syncLocked()
}

// Unsynced reports whether the spool holds writes not yet fsynced.
func (s *Spool) Unsynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dirty
}

// syncLocked fsyncs the segment and the ack file. Called with mu held.
func (s *Spool) syncLocked() error {
	s.lastSync, s.dirty = s.opts.now(), false
	if err := s.w.Sync(); err != nil {
		return fmt.Errorf("spool: fsync: %w", err)
	}
	if err := s.ackf.Sync(); err != nil {
		return fmt.Errorf("spool: fsync: %w", err)
	}
	return nil
}

// rotate closes the current segment and starts the next. Called with mu held.
func (s *Spool) rotate() error {
	if err := s.w.Sync(); err != nil {
		return err
	}
	if err := s.w.Close(); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.opts.Dir, segName(s.wseg+1)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := syncDir(s.opts.Dir); err != nil {
		f.Close()
		return err
	}
	s.w, s.wseg, s.woff = f, s.wseg+1, 0
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Pending is the number of alerts appended and not yet acknowledged.
func (s *Spool) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// Bytes is the size of the spool's segment files on disk.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.diskBytes
}

// Read decodes up to max alerts from the first unacknowledged one on,
// appending them to dst. It returns the cursor to Ack once they are
// delivered, and the number of records it skipped as undecodable (counted
// as dropped by the caller; they are acknowledged with the rest).
func (s *Spool) Read(dst []detect.Alert, max int) (_ []detect.Alert, next Cursor, skipped int, err error) {
	s.mu.Lock()
	cur, wseg, woff := s.ack, s.wseg, s.woff
	s.mu.Unlock()
	for len(dst) < max {
		if cur.Seg == wseg && cur.Off >= woff {
			break
		}
		if s.r == nil || s.rseg != cur.Seg {
			if s.r != nil {
				s.r.Close()
				s.r = nil
			}
			f, err := os.Open(filepath.Join(s.opts.Dir, segName(cur.Seg)))
			if err != nil {
				return dst, cur, skipped, fmt.Errorf("spool: %w", err)
			}
			s.r, s.rseg = f, cur.Seg
		}
		end := int64(-1) // the segment's end, if it is not the one appended to
		if cur.Seg == wseg {
			end = woff
		}
		var hdr [frameHeader]byte
		_, err := s.r.ReadAt(hdr[:], cur.Off)
		size := binary.LittleEndian.Uint32(hdr[0:])
		if err != nil || size == 0 || size > maxRecord || (end >= 0 && cur.Off+frameHeader+int64(size) > end) {
			if cur.Seg < wseg {
				// The end (or a damaged rest) of a finished segment.
				cur = Cursor{Seg: cur.Seg + 1}
				continue
			}
			return dst, cur, skipped, fmt.Errorf("spool: damaged record at %s:%d", segName(cur.Seg), cur.Off)
		}
		s.frame = slices.Grow(s.frame[:0], int(size))[:size]
		if _, err := s.r.ReadAt(s.frame, cur.Off+frameHeader); err != nil {
			return dst, cur, skipped, fmt.Errorf("spool: read: %w", err)
		}
		cur.Off += frameHeader + int64(size)
		if crc32.Checksum(s.frame, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			skipped++
			continue
		}
		a, err := decodeAlert(s.frame)
		if err != nil {
			skipped++
			continue
		}
		dst = append(dst, a)
	}
	return dst, cur, skipped, nil
}

// Ack records that every alert before c was delivered (n of them), deletes
// the segments wholly before it and wakes a blocked Append.
func (s *Spool) Ack(c Cursor, n int) error {
	var rec [ackRecordSize]byte
	binary.LittleEndian.PutUint64(rec[0:], c.Seg)
	binary.LittleEndian.PutUint64(rec[8:], uint64(c.Off))
	binary.LittleEndian.PutUint32(rec[16:], crc32.Checksum(rec[:16], castagnoli))
	// One 20-byte pwrite: it lands whole or not at all in practice, and a
	// damaged cursor (checked by its CRC) only means a resend.
	if _, err := s.ackf.WriteAt(rec[:], 0); err != nil {
		return fmt.Errorf("spool: write ack: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.ack.Seg
	s.ack = c
	s.pending -= n
	for seg := old; seg < c.Seg; seg++ {
		name := filepath.Join(s.opts.Dir, segName(seg))
		if fi, err := os.Stat(name); err == nil {
			s.diskBytes -= fi.Size()
		}
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
		if s.r != nil && s.rseg == seg {
			s.r.Close()
			s.r = nil
		}
	}
	if c.Seg == s.wseg && c.Off == s.woff && s.woff >= s.opts.SegmentBytes/2 {
		// Everything is delivered: start afresh rather than keep a large,
		// wholly acknowledged segment counted against MaxBytes.
		if err := s.rotate(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		return s.ackLocked(Cursor{Seg: s.wseg})
	}
	close(s.space)
	s.space = make(chan struct{})
	return s.maybeSync()
}

// reclaim starts a new segment and deletes every older one, when nothing is
// pending (so no batch is in flight). Called with mu held.
func (s *Spool) reclaim() error {
	if err := s.rotate(); err != nil {
		return err
	}
	return s.ackLocked(Cursor{Seg: s.wseg})
}

// ackLocked moves the cursor to c at the start of a fresh segment and
// deletes the older ones. Called with mu held.
func (s *Spool) ackLocked(c Cursor) error {
	s.mu.Unlock()
	err := s.Ack(c, 0)
	s.mu.Lock()
	return err
}

// Close fsyncs and closes the spool's files and releases its lock. What is
// still pending stays on disk for the next OpenSpool.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.space)
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.Sync())
	}
	if s.ackf != nil {
		errs = append(errs, s.ackf.Sync())
	}
	errs = append(errs, s.closeFiles())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}

func (s *Spool) closeFiles() error {
	var errs []error
	for _, f := range []*os.File{s.w, s.r, s.ackf, s.lock} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	s.w, s.r, s.ackf = nil, nil, nil
	return errors.Join(errs...)
}
