package sink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/detect"
)

// Spool errors Append returns, so the router can count each cause.
var (
	// ErrSpoolFull: the spool holds MaxBytes and WhenFull is "drop_newest",
	// or it stayed full for BlockTimeout with WhenFull "block".
	ErrSpoolFull = errors.New("spool full")
	// ErrSpoolClosed: Append after Close.
	ErrSpoolClosed = errors.New("spool closed")
	// ErrSpoolDiskFull: the file system under the spool is full (ENOSPC or
	// EDQUOT), now or at the last attempt: Append then fails at once until
	// its backoff has passed, without touching the disk.
	ErrSpoolDiskFull = errors.New("spool disk full")
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
	// Log receives what the spool cannot return to a caller: damaged
	// records found and quarantined, a disk-full episode and how many
	// alerts it cost (nil: discarded).
	Log *logrus.Entry

	now  func() time.Time
	rand func() float64 // jitter for the disk-full backoff, in [0, 1)
}

// Disk-full backoff: after ENOSPC, Append fails at once for a wait that
// doubles from diskFullMin up to diskFullMax (jittered), so a full disk
// costs the detection path no syscall per alert; the first Append after
// the wait tries the disk again.
const (
	diskFullMin = 100 * time.Millisecond
	diskFullMax = 5 * time.Second
)

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
// and the alert id lets the receiver drop the duplicate. A damaged record
// (a torn tail after a power loss, a flipped byte, a bad length) costs
// only itself: the spool resynchronises on the next intact frame, and logs,
// counts (Corrupt) and quarantines the damaged bytes. On a full disk it
// keeps delivering, reclaims acknowledged space at once and backs off
// (see Append and Ack). The directory and its files are checked so that no
// one but root can swap them (see checkSpoolDir, openSpoolFile).
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
	persisted Cursor        // the cursor last written to the ack file
	full      diskFull

	corrupt atomic.Uint64 // alerts lost to damaged records, since open

	ackf  *os.File
	frame []byte       // Read's buffer, owned by the worker goroutine
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
	if o.rand == nil {
		o.rand = rand.Float64
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = logrus.NewEntry(l)
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
	if err := refuseSymlink(opts.Dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// Root writes here: no one else may be able to swap the directory or
	// plant a link in it.
	if err := checkSpoolDir(opts.Dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := openSpoolFile(filepath.Join(opts.Dir, "lock"), os.O_RDWR|os.O_CREATE)
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
// pending records and removes damaged records (see recoverSegment), so
// that appends follow whole records.
func (s *Spool) recover() error {
	var err error
	s.ackf, err = openSpoolFile(filepath.Join(s.opts.Dir, ackFileName), os.O_RDWR|os.O_CREATE)
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
		f, err := openSpoolFile(filepath.Join(s.opts.Dir, segName(seg)), os.O_RDWR|os.O_CREATE)
		if err != nil {
			return err
		}
		start := int64(0)
		if seg == s.ack.Seg {
			start = s.ack.Off
		}
		n, end, err := s.recoverSegment(f, seg, start)
		if err != nil {
			f.Close()
			return err
		}
		s.pending += n
		last := i == len(segs)-1
		if last {
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
	// Write the cursor now, so that the ack file holds its block before a
	// disk can fill up: later writes rewrite it in place.
	s.persisted = Cursor{Seg: ^uint64(0)}
	if err := s.persistAck(); err != nil {
		s.opts.Log.WithError(err).Warn("spool: cannot write the ack file yet")
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

// Append writes a to the spool. With WhenFull "block" it may wait up to
// BlockTimeout for space; otherwise it never waits on anything but the disk.
// When the file system is full it reclaims what is acknowledged at once
// (whatever MaxBytes says) and tries once more; failing that it returns
// ErrSpoolDiskFull, and keeps returning it without I/O for a capped,
// jittered backoff (see diskFull).
func (s *Spool) Append(a *detect.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrSpoolClosed
	}
	if s.full.waiting(s.opts.now()) {
		s.full.lost++
		return ErrSpoolDiskFull
	}
	s.buf.Reset()
	s.buf.Write(make([]byte, frameHeader))
	if err := encodeAlert(&s.buf, a); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	rec := s.buf.Bytes()
	binary.LittleEndian.PutUint32(rec[0:], uint32(len(rec)-frameHeader))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[frameHeader:], castagnoli))
	if err := s.makeRoom(int64(len(rec))); err != nil {
		return err
	}
	err := s.write(rec)
	if isDiskFull(err) {
		if rerr := s.reclaimAcked(); rerr == nil {
			err = s.write(rec)
		}
	}
	if isDiskFull(err) {
		s.full.enter(s.opts, err)
		return fmt.Errorf("spool: %w: %w", ErrSpoolDiskFull, err)
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.full.leave(s.opts.Log)
	return s.maybeSync()
}

// makeRoom waits, or fails, until size more bytes fit within MaxBytes.
// Called with mu held.
func (s *Spool) makeRoom(size int64) error {
	var deadline <-chan time.Time
	for s.diskBytes+size > s.opts.MaxBytes {
		if s.allAcked() {
			// Everything on disk is acknowledged: start a fresh segment
			// and delete the old ones.
			if err := s.restart(); err != nil {
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
	return nil
}

// write appends one framed record, starting a new segment first if it
// would overflow this one. Called with mu held.
func (s *Spool) write(rec []byte) error {
	size := int64(len(rec))
	if s.woff > 0 && s.woff+size > s.opts.SegmentBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	if _, err := s.w.Write(rec); err != nil {
		// A short write leaves a torn record: cut it so later records stay
		// readable (truncating frees space, so this works on a full disk).
		_ = s.w.Truncate(s.woff)
		_, _ = s.w.Seek(s.woff, io.SeekStart)
		return fmt.Errorf("write: %w", err)
	}
	s.woff += size
	s.diskBytes += size
	s.pending++
	s.dirty = true
	return nil
}

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// diskFull is the state of a disk-full episode: how many attempts failed,
// when Append may touch the disk again, and how many alerts it refused.
type diskFull struct {
	attempt int
	until   time.Time
	lost    uint64
}

func (d *diskFull) waiting(now time.Time) bool { return d.attempt > 0 && now.Before(d.until) }

// enter records a failed attempt and sets the next wait.
func (d *diskFull) enter(o SpoolOptions, err error) {
	if d.attempt == 0 {
		o.Log.WithError(err).WithField("dir", o.Dir).Error("spool disk full: new alerts for this sink are dropped and counted until it has room; spooled ones are still delivered")
	}
	d.until = o.now().Add(backoff(d.attempt, diskFullMin, diskFullMax, o.rand()))
	d.attempt++
	d.lost++
}

// leave ends an episode once an Append succeeded again, saying what it cost.
func (d *diskFull) leave(log *logrus.Entry) {
	if d.attempt == 0 {
		return
	}
	log.WithField("alerts_lost", d.lost).Warn("spool disk has room again")
	*d = diskFull{}
}

// reclaimAcked frees the disk space of acknowledged records at once: with
// nothing pending the segment appended to is replaced by a fresh one;
// otherwise its acknowledged start is punched out (FALLOC_FL_PUNCH_HOLE:
// the offsets stay valid), but only up to the cursor the ack file holds,
// which is where a restart would read from. Called with mu held.
func (s *Spool) reclaimAcked() error {
	if s.allAcked() {
		return s.restart()
	}
	const block = 4096 // punch whole file-system blocks only
	if s.persisted.Seg != s.wseg || s.persisted.Off < block {
		return nil
	}
	return unix.Fallocate(int(s.w.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, s.persisted.Off&^(block-1))
}

// allAcked reports whether the segment appended to holds records and all
// of them are acknowledged (the cursor, not the pending count, which
// damage estimates may have made low, decides). Called with mu held.
func (s *Spool) allAcked() bool {
	return s.woff > 0 && s.ack == Cursor{Seg: s.wseg, Off: s.woff}
}

// restart replaces the segment appended to, wholly acknowledged, with a
// fresh one and deletes the old ones. It needs no fsync and no free block
// but one for the ack file, which is rewritten in place: it works on a
// full disk. Called with mu held.
func (s *Spool) restart() error {
	f, err := openSpoolFile(filepath.Join(s.opts.Dir, segName(s.wseg+1)), os.O_RDWR|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	s.w.Close()
	s.w, s.wseg, s.woff = f, s.wseg+1, 0
	return s.moveCursor(Cursor{Seg: s.wseg}, 0)
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
	f, err := openSpoolFile(filepath.Join(s.opts.Dir, segName(s.wseg+1)), os.O_RDWR|os.O_CREATE|os.O_TRUNC)
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

// cursor is the position of the first unacknowledged record.
func (s *Spool) cursor() Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ack
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

// MaxBytes is the bound on the spool's bytes on disk (SpoolOptions.MaxBytes
// after defaults).
func (s *Spool) MaxBytes() int64 { return s.opts.MaxBytes }

// Read decodes up to max alerts from the first unacknowledged one on,
// appending them to dst. It returns the cursor to Ack once they are
// delivered, and the number of records it skipped as undecodable (counted
// as dropped by the caller; they are acknowledged with the rest). A damaged
// frame (bad length or CRC) is not trusted for its length: Read
// resynchronises on the next intact frame, and the damaged bytes are
// logged, counted (Corrupt) and quarantined.
func (s *Spool) Read(dst []detect.Alert, max int) (_ []detect.Alert, next Cursor, skipped int, err error) {
	s.mu.Lock()
	cur, wseg, woff := s.ack, s.wseg, s.woff
	s.mu.Unlock()
	// The segment is opened per call, not kept: a segment deleted by Ack or
	// by Append's reclaim then frees its blocks at once.
	var r segReader
	defer r.close()
	for len(dst) < max {
		if cur.Seg == wseg && cur.Off >= woff {
			break
		}
		end, err := r.open(s.opts.Dir, cur.Seg)
		if err != nil {
			return dst, cur, skipped, fmt.Errorf("spool: %w", err)
		}
		if cur.Seg == wseg {
			end = woff
		}
		if cur.Off >= end {
			cur = Cursor{Seg: cur.Seg + 1} // the end of a finished segment
			continue
		}
		var hdr [frameHeader]byte
		_, err = r.f.ReadAt(hdr[:], cur.Off)
		size := int64(binary.LittleEndian.Uint32(hdr[0:]))
		ok := err == nil && size > 0 && size <= maxRecord && cur.Off+frameHeader+size <= end
		if ok {
			s.frame = slices.Grow(s.frame[:0], int(size))[:size]
			_, err = r.f.ReadAt(s.frame, cur.Off+frameHeader)
			ok = err == nil && crc32.Checksum(s.frame, castagnoli) == binary.LittleEndian.Uint32(hdr[4:])
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return dst, cur, skipped, fmt.Errorf("spool: read: %w", err)
		}
		if !ok {
			if cur.Off, err = s.resync(r.f, cur, end); err != nil {
				return dst, cur, skipped, fmt.Errorf("spool: read: %w", err)
			}
			continue
		}
		cur.Off += frameHeader + size
		a, err := decodeAlert(s.frame)
		if err != nil {
			skipped++
			continue
		}
		dst = append(dst, a)
	}
	return dst, cur, skipped, nil
}

// segReader is the segment Read is in.
type segReader struct {
	f   *os.File
	seg uint64
}

// open makes f the segment seg and returns its size.
func (r *segReader) open(dir string, seg uint64) (int64, error) {
	if r.f == nil || r.seg != seg {
		r.close()
		f, err := openSpoolFile(filepath.Join(dir, segName(seg)), os.O_RDONLY)
		if err != nil {
			return 0, err
		}
		r.f, r.seg = f, seg
	}
	fi, err := r.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (r *segReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// resync handles damage met at cur while reading (the file changed after
// it was opened and checked): it finds the next intact frame before end,
// accounts for the damaged bytes and returns the offset to go on from.
func (s *Spool) resync(f *os.File, cur Cursor, end int64) (int64, error) {
	data := make([]byte, end-cur.Off)
	n, err := f.ReadAt(data, cur.Off)
	if err != nil && !errors.Is(err, io.EOF) {
		return cur.Off, err
	}
	data = data[:n]
	_, damaged := scanFrames(data)
	skip := len(data)
	if len(damaged) > 0 && damaged[0].Off == 0 {
		skip = damaged[0].End
	}
	if n == 0 {
		skip = int(end - cur.Off) // cut short underneath: nothing left to read
	}
	lost := s.damage(cur.Seg, cur.Off, data[:min(skip, len(data))], "damaged spool records skipped; alerts lost")
	s.mu.Lock()
	s.pending = max(s.pending-lost, 0)
	s.mu.Unlock()
	return cur.Off + int64(skip), nil
}

// Corrupt is the number of alerts lost to damaged spool records since the
// spool was opened: found when it was opened or while reading, each logged
// and its bytes quarantined. It is an estimate from the damaged bytes'
// length fields, at least one per damaged region.
func (s *Spool) Corrupt() uint64 { return s.corrupt.Load() }

// Ack records that every alert before c was delivered (n of them), deletes
// the segments wholly before it and wakes a blocked Append. The cursor
// moves in memory whatever happens on disk, so delivered alerts are never
// sent again by this process; if the ack file cannot be written (a full
// disk), the error is returned and the next Ack writes it again, and only
// a crash before then would re-send (at-least-once). During a disk-full
// episode Ack also frees the acknowledged space at once.
func (s *Spool) Ack(c Cursor, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.moveCursor(c, n)
	switch {
	case s.allAcked() && (s.woff >= s.opts.SegmentBytes/2 || s.full.attempt > 0):
		// Everything is delivered: start afresh rather than keep a large,
		// wholly acknowledged segment counted against MaxBytes (or
		// filling a full disk).
		err = errors.Join(err, s.restart())
	case s.full.attempt > 0:
		err = errors.Join(err, s.reclaimAcked())
	}
	close(s.space)
	s.space = make(chan struct{})
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return s.maybeSync()
}

// moveCursor sets the cursor to c with n fewer records pending, deletes the
// segments wholly before it (delivered: safe to delete even before the ack
// file says so, as a restart then starts at the first segment left) and
// writes the ack file. Called with mu held.
func (s *Spool) moveCursor(c Cursor, n int) error {
	old := s.ack.Seg
	s.ack = c
	s.pending = max(s.pending-n, 0)
	var errs []error
	for seg := old; seg < c.Seg; seg++ {
		name := filepath.Join(s.opts.Dir, segName(seg))
		if fi, err := os.Stat(name); err == nil {
			s.diskBytes -= fi.Size()
		}
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, s.persistAck())...)
}

// persistAck writes the cursor to the ack file if it moved since the last
// write. One 20-byte pwrite in place: it lands whole or not at all in
// practice, needs no new block, and a damaged cursor (checked by its CRC)
// only means a resend. Called with mu held.
func (s *Spool) persistAck() error {
	if s.ack == s.persisted {
		return nil
	}
	var rec [ackRecordSize]byte
	binary.LittleEndian.PutUint64(rec[0:], s.ack.Seg)
	binary.LittleEndian.PutUint64(rec[8:], uint64(s.ack.Off))
	binary.LittleEndian.PutUint32(rec[16:], crc32.Checksum(rec[:16], castagnoli))
	if _, err := s.ackf.WriteAt(rec[:], 0); err != nil {
		return fmt.Errorf("write ack: %w", err)
	}
	s.persisted = s.ack
	return nil
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
	if s.full.attempt > 0 {
		s.opts.Log.WithField("alerts_lost", s.full.lost).Warn("spool closed during a disk-full episode")
	}
	errs := []error{s.persistAck()}
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
	for _, f := range []*os.File{s.w, s.ackf, s.lock} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	s.w, s.ackf = nil, nil
	return errors.Join(errs...)
}
