package sink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
)

// span is a byte range [Off, End) of a segment's data.
type span struct{ Off, End int }

// frameAt reports whether an intact frame starts at off in data: a length
// within bounds whose payload fits and matches the CRC. It returns the
// offset just past the frame.
func frameAt(data []byte, off int) (end int, ok bool) {
	if off < 0 || len(data)-off < frameHeader {
		return 0, false
	}
	size := binary.LittleEndian.Uint32(data[off:])
	if size == 0 || size > maxRecord || uint64(len(data)-off-frameHeader) < uint64(size) {
		return 0, false
	}
	end = off + frameHeader + int(size)
	if crc32.Checksum(data[off+frameHeader:end], castagnoli) != binary.LittleEndian.Uint32(data[off+4:]) {
		return 0, false
	}
	return end, true
}

// scanFrames splits data, a run of spool frames, into its intact frames and
// its damaged regions. After damage it resynchronises on the next offset
// where an intact frame starts, so one flipped byte or a bad length field
// costs the record it hit, not the records behind it. A damaged region at
// the end is a torn tail (or damage reaching the end). Pure: it is fuzzed.
func scanFrames(data []byte) (frames, damaged []span) {
	off := 0
	for off < len(data) {
		if end, ok := frameAt(data, off); ok {
			frames = append(frames, span{off, end})
			off = end
			continue
		}
		next := off + 1
		for next < len(data) {
			if _, ok := frameAt(data, next); ok {
				break
			}
			next++
		}
		damaged = append(damaged, span{off, next})
		off = next
	}
	return frames, damaged
}

// lostRecords estimates how many records a damaged region held, at least
// one: when the length fields from its start chain exactly to its end (a
// flipped payload or CRC byte leaves them intact), one per link; else one.
func lostRecords(region []byte) int {
	n, off := 0, 0
	for len(region)-off >= frameHeader {
		size := int64(binary.LittleEndian.Uint32(region[off:]))
		if size == 0 || int64(len(region)-off-frameHeader) < size {
			break
		}
		off += frameHeader + int(size)
		n++
	}
	if off != len(region) || n == 0 {
		return 1
	}
	return n
}

// Quarantine bounds: each segment's damaged bytes are copied, up to
// maxQuarantine, to SEGMENT.wal.corrupt beside it for a post-mortem; at most
// maxQuarantineFiles such files are kept, the oldest removed first.
const (
	maxQuarantine      = 1 << 20
	maxQuarantineFiles = 8
	quarantineSuffix   = ".corrupt"
)

// damage logs, counts and quarantines one damaged region of segment seg
// starting at offset off, and returns the estimated number of alerts lost.
func (s *Spool) damage(seg uint64, off int64, region []byte, why string) int {
	lost := lostRecords(region)
	s.corrupt.Add(uint64(lost))
	log := s.opts.Log.WithFields(logrus.Fields{
		"segment": segName(seg), "offset": off, "bytes": len(region), "records": lost,
	})
	q, err := s.quarantine(seg, region)
	if err != nil {
		log = log.WithError(err)
	} else if q != "" {
		log = log.WithField("quarantine", q)
	}
	log.Error(why)
	return lost
}

// quarantine appends region, within maxQuarantine per file, to the
// segment's .corrupt file and removes the oldest such files beyond
// maxQuarantineFiles. It returns the file's path ("" when it was full).
func (s *Spool) quarantine(seg uint64, region []byte) (string, error) {
	name := filepath.Join(s.opts.Dir, segName(seg)+quarantineSuffix)
	f, err := openSpoolFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	room := maxQuarantine - fi.Size()
	if room <= 0 {
		return "", nil
	}
	if _, err := f.Write(region[:min(int64(len(region)), room)]); err != nil {
		return "", err
	}
	return name, s.pruneQuarantine()
}

func (s *Spool) pruneQuarantine() error {
	ents, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return err
	}
	var names []string // in segment order: the names are fixed-width hex
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), segSuffix+quarantineSuffix) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for len(names) > maxQuarantineFiles {
		if err := os.Remove(filepath.Join(s.opts.Dir, names[0])); err != nil {
			return err
		}
		names = names[1:]
	}
	return nil
}

// recoverSegment reads segment seg from start on, counts its intact
// records and removes its damaged regions: each is logged, counted and
// quarantined, and the intact frames after it are moved down over it, so
// that the segment holds only whole records (a crash during the move at
// worst leaves a record twice, which at-least-once delivery allows). It
// returns the records and the segment's new end.
func (s *Spool) recoverSegment(f *os.File, seg uint64, start int64) (n int, end int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	if fi.Size() <= start {
		return 0, start, nil
	}
	data := make([]byte, fi.Size()-start)
	if _, err := f.ReadAt(data, start); err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, err
	}
	frames, damaged := scanFrames(data)
	if len(damaged) == 0 {
		return len(frames), fi.Size(), nil
	}
	for _, d := range damaged {
		why := "damaged spool records removed; alerts lost"
		if d.End == len(data) {
			why = "torn or damaged record at the end of a spool segment cut off; alerts lost"
		}
		s.damage(seg, start+int64(d.Off), data[d.Off:d.End], why)
	}
	// Move the frames after the first damage down, contiguously.
	first := damaged[0].Off
	var kept []byte
	for _, fr := range frames {
		if fr.Off > first {
			kept = append(kept, data[fr.Off:fr.End]...)
		}
	}
	end = start + int64(first) + int64(len(kept))
	if _, err := f.WriteAt(kept, start+int64(first)); err != nil {
		return 0, 0, fmt.Errorf("compact %s: %w", segName(seg), err)
	}
	if err := f.Truncate(end); err != nil {
		return 0, 0, fmt.Errorf("compact %s: %w", segName(seg), err)
	}
	if err := f.Sync(); err != nil {
		return 0, 0, fmt.Errorf("compact %s: %w", segName(seg), err)
	}
	return len(frames), end, nil
}

// openSpoolFile opens a file in the spool directory (already checked with
// CheckTrustedPath): never through a symbolic link, and only a regular
// file owned by root and not writable by group or others.
func openSpoolFile(name string, flag int) (*os.File, error) {
	f, err := os.OpenFile(name, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &UntrustedError{Path: name, Reason: "is a symbolic link; refusing to use it"}
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &UntrustedError{Path: name, Reason: "is not a regular file"}
	}
	if err == nil {
		err = CheckOwnedFile(name, fi, false)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkSpoolDir refuses a spool directory that someone other than root
// could change: a symbolic link, or one failing CheckTrustedPath.
func checkSpoolDir(dir string) error {
	if err := refuseSymlink(dir); err != nil {
		return err
	}
	_, fi, err := CheckTrustedPath(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &UntrustedError{Path: dir, Reason: "is not a directory"}
	}
	return nil
}

// refuseSymlink fails if path exists and is a symbolic link.
func refuseSymlink(path string) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return &UntrustedError{Path: path, Reason: "is a symbolic link; refusing to use it"}
	}
	return nil
}
