package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
)

// appendLines appends each alert in format f, one per line.
func appendLines(dst []byte, f Format, alerts []detect.Alert) []byte {
	for i := range alerts {
		dst = f(dst, &alerts[i])
		dst = append(dst, '\n')
	}
	return dst
}

// Stdout writes alerts as lines to an io.Writer, os.Stdout by default: one
// Write per batch.
//
// Concurrency: Send and Close are called from one goroutine (the sink's
// delivery worker), Close after the last Send. Close does not close the
// writer, which the Stdout does not own.
type Stdout struct {
	name   string
	w      io.Writer
	format Format
	buf    []byte // reused across batches; owned by the Send goroutine
}

var _ Sink = (*Stdout)(nil)

// NewStdout returns a sink named name that writes alerts in format f (nil:
// AppendJSON) to w (nil: os.Stdout).
func NewStdout(name string, w io.Writer, f Format) *Stdout {
	if w == nil {
		w = os.Stdout
	}
	if f == nil {
		f = AppendJSON
	}
	return &Stdout{name: name, w: w, format: f}
}

// Name returns the sink's configured name.
func (s *Stdout) Name() string { return s.name }

// Send writes alerts, one line each, in a single Write.
func (s *Stdout) Send(_ context.Context, alerts []detect.Alert) error {
	s.buf = appendLines(s.buf[:0], s.format, alerts)
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("sink %q: write: %w", s.name, err)
	}
	return nil
}

// Close releases nothing: the writer belongs to the caller.
func (s *Stdout) Close() error { return nil }

// FileOptions configure a File sink.
type FileOptions struct {
	// Mode is the permission of a file the sink creates; 0 means 0600, as
	// alerts carry command lines that may hold secrets. An existing file keeps
	// its mode.
	Mode os.FileMode
	// Sync makes Send fsync the file after each batch, so an acknowledged
	// batch survives a crash, at the cost of a disk flush per batch.
	Sync bool
	// Format encodes each alert; nil means AppendJSON.
	Format Format
}

// File appends alerts as lines to a file (O_APPEND|O_CREATE), creating its
// directory (0750) if needed: one write per batch, optionally fsynced. A
// failed write returns an error from Send (on a full disk, one that wraps
// syscall.ENOSPC and says so), so the router retries it; a partly written
// batch is cut back off the file so that a retry leaves no torn line.
//
// Concurrency: Send and Close are called from one goroutine, the sink's
// delivery worker, Close after the last Send. Reopen may be called from any
// goroutine at any time (a SIGHUP handler after logrotate moved the file);
// it waits for a Send in progress.
type File struct {
	name string
	path string
	opts FileOptions
	log  *logrus.Entry

	mu     sync.Mutex // guards f and closed against Reopen
	f      *os.File   // nil after a failed Reopen; Send then opens lazily
	closed bool       // set by Close; Reopen is then a no-op
	buf    []byte     // reused across batches; owned by the Send goroutine
}

var _ Sink = (*File)(nil)

// NewFile opens path for appending and returns a sink named name writing to it.
func NewFile(log *logrus.Entry, name, path string, opts FileOptions) (*File, error) {
	if path == "" {
		return nil, fmt.Errorf("sink %q: no path", name)
	}
	if opts.Mode == 0 {
		opts.Mode = 0o600
	}
	if opts.Mode.Perm()&0o022 != 0 {
		return nil, fmt.Errorf("sink %q: mode %04o is writable by group or others", name, opts.Mode.Perm())
	}
	if opts.Format == nil {
		opts.Format = AppendJSON
	}
	s := &File{name: name, path: path, opts: opts, log: log}
	f, err := s.open()
	if err != nil {
		return nil, err
	}
	s.f = f
	return s, nil
}

// open opens the file for appending. No one but root may be able to change
// where the alerts go: the directory chain must pass CheckTrustedPath, the
// file itself must not be a symbolic link (O_NOFOLLOW: a link planted
// there would make root append to, or create, any file), and must be a
// regular file owned by root and not writable by group or others, or a
// character device (which only root can create, such as /dev/null).
func (s *File) open() (*os.File, error) {
	// 0750: the directory of an alert log is no one else's business either.
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("sink %q: %w", s.name, err)
	}
	real, fi, err := CheckTrustedPath(dir)
	if err != nil {
		return nil, fmt.Errorf("sink %q: directory: %w", s.name, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("sink %q: %w", s.name, &UntrustedError{Path: dir, Reason: "is not a directory"})
	}
	f, err := os.OpenFile(filepath.Join(real, filepath.Base(s.path)),
		os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, s.opts.Mode)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("sink %q: %w", s.name, &UntrustedError{Path: s.path, Reason: "is a symbolic link; refusing to write through it"})
	}
	if err != nil {
		return nil, fmt.Errorf("sink %q: %w", s.name, err)
	}
	if err := checkOutputFile(s.path, f); err != nil {
		f.Close()
		return nil, fmt.Errorf("sink %q: %w", s.name, err)
	}
	return f, nil
}

// checkOutputFile checks an opened output file: a regular file owned by
// root and not writable by group or others, or a character device.
func checkOutputFile(path string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	switch {
	case fi.Mode().IsRegular():
		return CheckOwnedFile(path, fi, false)
	case fi.Mode()&os.ModeCharDevice != 0:
		return nil
	}
	return &UntrustedError{Path: path, Reason: fmt.Sprintf("is not a regular file (%v)", fi.Mode().Type())}
}

// Name returns the sink's configured name.
func (s *File) Name() string { return s.name }

// Path returns the file the sink appends to.
func (s *File) Path() string { return s.path }

// Send appends alerts, one line each, in a single write, then fsyncs the file
// if FileOptions.Sync is set.
func (s *File) Send(_ context.Context, alerts []detect.Alert) error {
	s.buf = appendLines(s.buf[:0], s.opts.Format, alerts)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		f, err := s.open()
		if err != nil {
			return err
		}
		s.f = f
	}
	n, err := s.f.Write(s.buf)
	if err != nil {
		if n > 0 {
			s.cutTail(int64(n))
		}
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("sink %q: disk full: %w", s.name, err)
		}
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	if s.opts.Sync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("sink %q: %w", s.name, err)
		}
	}
	return nil
}

// cutTail removes the n bytes a failed write left at the end of the file, so
// the retried batch does not follow a torn line. With O_APPEND and this sink
// the only writer, they are the last n bytes. Truncating frees space, so it
// works on a full disk; if it fails anyway, a newline at least ends the torn
// line so that the next one parses.
func (s *File) cutTail(n int64) {
	end, err := s.f.Seek(0, io.SeekEnd)
	if err == nil && end >= n {
		err = s.f.Truncate(end - n)
	}
	if err != nil {
		s.log.WithError(err).Warn("cannot remove partly written batch")
		_, _ = s.f.Write([]byte{'\n'})
	}
}

// Reopen closes the file and opens path again, so that writes go to a new
// file after logrotate has moved the old one away. If the open fails, the
// error is returned and the next Send tries again. After Close it does nothing.
func (s *File) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var errClose error
	if s.f != nil {
		if err := s.f.Close(); err != nil {
			errClose = fmt.Errorf("sink %q: %w", s.name, err)
		}
		s.f = nil
	}
	f, err := s.open()
	if err != nil {
		return errors.Join(errClose, err)
	}
	s.f = f
	return errClose
}

// Close closes the file.
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("sink %q: %w", s.name, err)
	}
	return nil
}
