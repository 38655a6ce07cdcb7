package input

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/klauspost/compress/zstd"
	"github.com/sirupsen/logrus"
	"github.com/ulikunitz/xz"
)

// Replay opens its inputs as the daemon opens files (identify.go): a log
// directory is the attacker's as much as the responder's, and a FIFO named
// audit.log.1 blocked replay in open() for good, a symbolic link to
// /dev/zero fed it zeros for ever. Every input is opened O_NONBLOCK (an
// open of a FIFO does not wait for a writer), O_NOFOLLOW for an entry found
// in a directory or by a glob unless FollowSymlinks is set, then fstat'd:
// only a regular file is read. Anything else is refused by name, with a
// warning, and the other inputs are replayed.

// DefaultMaxWindow bounds the window (zstd) or dictionary (xz) a
// compressed input may declare: a 55 KB zstd file declaring 512 MiB
// (zstd --long=29) cost 547 MB of memory. 128 MiB is zstd's own default
// limit for decoding (--memory=128MB) and above what xz -9 (64 MiB) and
// zstd -19 (8 MiB) write.
const DefaultMaxWindow = 128 << 20

// errRefusedInput marks an input that is not a regular file: refused with
// a warning, not counted as a failure of the replay.
var errRefusedInput = errors.New("refused")

// openReplayFile opens name for replay. listed says the name came from a
// directory or a glob (not followed through a symbolic link unless
// follow); a name given on the command line is followed, as the user
// asked for it, but must still be a regular file.
func openReplayFile(name string, listed, follow bool) (*os.File, error) {
	flags := os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOCTTY | syscall.O_CLOEXEC
	if listed && !follow {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(name, flags, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) && listed && !follow {
			return nil, fmt.Errorf("%w: %s is a symbolic link in the log directory; not followed (--follow-symlinks follows it)", errRefusedInput, printableName(name))
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is %s, not a regular file; not read (pipe it to replay - instead)", errRefusedInput, printableName(name), fileKind(fi.Mode()))
	}
	return f, nil
}

// fileKind names a file type for the refusal.
func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a directory"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

// printableName quotes a name that holds anything but printable ASCII, so
// that a file name cannot forge a log line.
func printableName(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c >= 0x7f || c == '"' {
			return fmt.Sprintf("%q", name)
		}
	}
	return name
}

// warnRefused logs a refused input and reports whether err was a refusal.
func warnRefused(log *logrus.Entry, name string, err error) bool {
	if !errors.Is(err, errRefusedInput) {
		return false
	}
	log.WithField("file", printableName(name)).Warn(err.Error())
	return true
}

// newZstdReader is a zstd decoder refusing a frame whose window passes
// maxWindow (the decoder checks the frame header before it allocates),
// with one goroutine, and the function that releases it.
func newZstdReader(r io.Reader, maxWindow uint64) (io.Reader, func(), error) {
	z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, nil, fmt.Errorf("zstd: %w", err)
	}
	return zstdWindowErr{z, maxWindow}, z.Close, nil
}

// zstdWindowErr says which limit a refused window passed.
type zstdWindowErr struct {
	z         *zstd.Decoder
	maxWindow uint64
}

func (r zstdWindowErr) Read(p []byte) (int, error) {
	n, err := r.z.Read(p)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) {
		err = fmt.Errorf("zstd: a frame declares a window past the limit of %d MiB (--max-window): %w", r.maxWindow>>20, err)
	}
	return n, err
}

// newXzReader is an xz decoder refusing a stream whose first block
// declares an LZMA2 dictionary past maxWindow: the decoder allocates and
// fills what the header declares (ulikunitz/xz takes the larger of the
// header's and its own). Only the first block of the first stream is
// checked: a crafted later block can still declare more (up to 1.5 GiB).
func newXzReader(br *bufio.Reader, maxWindow uint64) (io.Reader, error) {
	if dict, ok := xzFirstDict(br); ok && dict > maxWindow {
		return nil, fmt.Errorf("the stream's dictionary is %d MiB, past the limit of %d MiB (--max-window)", dict>>20, maxWindow>>20)
	}
	return xz.NewReader(br)
}

// xzFirstDict reads, without consuming, the LZMA2 dictionary size of the
// first block's filter chain (xz file format 1.0.4, sections 2.1.1, 3.1
// and 5.3.1), if it can tell.
func xzFirstDict(br *bufio.Reader) (uint64, bool) {
	head, _ := br.Peek(12 + 1024 + 4)
	if len(head) < 13 {
		return 0, false
	}
	b := head[12:] // the block header
	size := (int(b[0]) + 1) * 4
	if b[0] == 0 || len(b) < size {
		return 0, false
	}
	b = b[:size-4] // without its CRC32
	flags := b[1]
	p := 2
	varint := func() (uint64, bool) {
		v, n := binary.Uvarint(b[p:])
		if n <= 0 {
			return 0, false
		}
		p += n
		return v, true
	}
	if flags&0x40 != 0 {
		if _, ok := varint(); !ok {
			return 0, false
		}
	}
	if flags&0x80 != 0 {
		if _, ok := varint(); !ok {
			return 0, false
		}
	}
	for range int(flags&0x03) + 1 {
		id, ok := varint()
		if !ok {
			return 0, false
		}
		n, ok := varint()
		if !ok || p+int(n) > len(b) {
			return 0, false
		}
		props := b[p : p+int(n)]
		p += int(n)
		if id == 0x21 && len(props) == 1 { // LZMA2
			bits := props[0] & 0x3f
			if bits > 40 {
				return 0, false
			}
			if bits == 40 {
				return 1<<32 - 1, true
			}
			return uint64(2|bits&1) << (bits/2 + 11), true
		}
	}
	return 0, false
}
