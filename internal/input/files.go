package input

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
)

// maxShownMalformed is how many malformed lines a replay names with file
// and line; the rest are counted per file.
const maxShownMalformed = 10

// Journal is the input name that stands for the systemd journal's audit
// records, read through journalctl.
const Journal = "journal:"

// FilesOptions are what OpenFiles reads.
type FilesOptions struct {
	// Inputs are files, directories (every audit.log* in rotation order,
	// oldest first), glob patterns, "-" for Stdin, or Journal. Each may be
	// plain, gzip, zstd or xz (told by its magic bytes), and hold auditd
	// log lines or a journal export (journalctl -o export). Log lines may
	// be plain or enriched, ausearch's output, behind an RFC 3164 or RFC
	// 5424 syslog header, or the kernel's "audit: type=NNNN" printk, mixed
	// in one file (see audit.LogReader). None is "-".
	Inputs []string
	// Since and Until, when not zero, keep only records stamped at or
	// after Since and before Until.
	Since, Until time.Time
	// Stdin is read for "-" (nil: os.Stdin).
	Stdin io.Reader
	// Journalctl is the journalctl command for Journal (default
	// "journalctl").
	Journalctl string
	// FollowSymlinks follows symbolic links found in a directory or by a
	// glob (files_open.go); MaxWindow bounds a zstd window or xz
	// dictionary (0: DefaultMaxWindow).
	FollowSymlinks bool
	MaxWindow      uint64
	// Location is the time zone of ausearch -i stamps (nil: UTC).
	Location *time.Location
	Log      *logrus.Entry
}

// FileStats are what one input file held.
type FileStats struct {
	Name string
	audit.LogStats
}

// Files reads log files, "-" being stdin, one after the other: the input of
// `encwatch replay`. Every input is read even when one fails.
type Files struct {
	files        []string
	log          *logrus.Entry
	since, until time.Time
	stdin        io.Reader
	journalctl   string
	// named are the inputs named by the caller: the rest came from a
	// directory or a glob (see openReplayFile).
	named     map[string]bool
	follow    bool
	maxWindow uint64
	loc       *time.Location

	// done takes back the record batches the assembler is done with, when
	// Events runs the files.
	done <-chan []audit.Record

	total int64        // bytes of the regular files
	read  atomic.Int64 // bytes read so far, as stored
	shown int          // malformed lines named so far
	// stats and errs are written by the reading goroutine and read once
	// the stream has ended.
	stats []FileStats
	errs  []error
}

var _ Input = (*Files)(nil)

// OpenFiles expands o.Inputs into the files they name, in reading order.
// An input that names no file is an error of Err's; the others are read.
func OpenFiles(o FilesOptions) *Files {
	files, errs := expandInputs(o.Inputs)
	r := &Files{files: files, log: o.Log, since: o.Since, until: o.Until, stdin: o.Stdin,
		journalctl: o.Journalctl, total: totalSize(files), errs: errs,
		named: make(map[string]bool), follow: o.FollowSymlinks, maxWindow: cmp.Or(o.MaxWindow, DefaultMaxWindow), loc: o.Location}
	for _, name := range o.Inputs {
		r.named[name] = true
	}
	return r
}

// Events feeds the files' records through the assembler.
func (r *Files) Events(ctx context.Context, so StreamOptions) (Stream, error) {
	// The assembler hands each batch back once done with it, and the
	// log readers reuse its memory (audit.LogReader.Done).
	done := make(chan []audit.Record, recordBatches)
	r.done = done
	return feed(ctx, r.Run, so, nil, done), nil
}

// Progress returns the bytes read so far and the bytes of the regular
// files (compressed bytes as stored); it may be called from any goroutine.
func (r *Files) Progress() (read, total int64) { return r.read.Load(), r.total }

// Stats returns what each input held, once the stream has ended.
func (r *Files) Stats() []FileStats { return r.stats }

// Err joins each input's error (missing, unreadable, or holding lines but
// no audit record), once the stream has ended.
func (r *Files) Err() error { return errors.Join(r.errs...) }

// expandInputs turns directories and globs into files, in reading order,
// with an error for each input that names no file.
func expandInputs(inputs []string) ([]string, []error) {
	if len(inputs) == 0 {
		return []string{"-"}, nil
	}
	var out []string
	var errs []error
	for _, in := range inputs {
		if in == "-" || in == Journal {
			out = append(out, in)
			continue
		}
		fi, err := os.Stat(in)
		switch {
		case err == nil && fi.IsDir():
			logs, err := rotatedLogs(in)
			if err != nil {
				errs = append(errs, err)
			}
			out = append(out, logs...)
		case err == nil:
			out = append(out, in)
		case strings.ContainsAny(in, "*?["):
			m, gerr := filepath.Glob(in)
			if gerr != nil || len(m) == 0 {
				errs = append(errs, fmt.Errorf("replay: %s: no file matches", in))
			}
			out = append(out, sortRotation(m)...)
		default:
			errs = append(errs, fmt.Errorf("replay: %w", err))
		}
	}
	return out, errs
}

// rotatedLogs lists dir's audit.log* files in rotation order.
func rotatedLogs(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "audit.log*"))
	if err != nil || len(m) == 0 {
		return nil, fmt.Errorf("replay: %s: no audit.log* file in the directory", dir)
	}
	return sortRotation(m), nil
}

// sortRotation orders names as auditd rotates them: audit.log.N is older
// than audit.log.N-1, and audit.log (no number) is the newest. Names
// without a rotation number keep their lexical order, after the numbered
// ones of the same base.
func sortRotation(names []string) []string {
	key := func(name string) (string, int) {
		base := filepath.Base(name)
		for _, ext := range []string{".gz", ".zst", ".xz"} {
			base = strings.TrimSuffix(base, ext)
		}
		if i := strings.LastIndexByte(base, '.'); i >= 0 {
			if n, err := strconv.Atoi(base[i+1:]); err == nil && n >= 0 {
				return filepath.Join(filepath.Dir(name), base[:i]), n
			}
		}
		return filepath.Join(filepath.Dir(name), base), 0
	}
	out := slices.Clone(names)
	slices.SortStableFunc(out, func(a, b string) int {
		ba, na := key(a)
		bb, nb := key(b)
		if c := strings.Compare(ba, bb); c != 0 {
			return c
		}
		return cmp.Compare(nb, na) // higher number: older: first
	})
	return out
}

// totalSize sums the sizes of the regular files among names.
func totalSize(names []string) int64 {
	var n int64
	for _, name := range names {
		if fi, err := os.Stat(name); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// Run reads every file in turn. An input that fails is recorded in errs
// and the next one is read; Run itself fails only when ctx ends.
func (r *Files) Run(ctx context.Context, out chan<- []audit.Record) error {
	for _, name := range r.files {
		st, err := r.file(ctx, name, out)
		if warnRefused(r.log, name, err) {
			continue
		}
		if ctx.Err() != nil {
			// Interrupted: what was read of this input is summarised.
			r.stats = append(r.stats, FileStats{Name: name, LogStats: st})
			return ctx.Err()
		}
		r.stats = append(r.stats, FileStats{Name: name, LogStats: st})
		if st.Malformed > 0 {
			r.log.WithFields(logrus.Fields{"file": name, "malformed": st.Malformed}).Warn("malformed lines skipped")
		}
		if st.Foreign > 0 {
			// A syslog file holds other programs' lines: not damage.
			r.log.WithFields(logrus.Fields{"file": name, "lines": st.Foreign}).Info("syslog lines of other programs skipped")
		}
		switch {
		case err != nil:
			r.errs = append(r.errs, err)
		case name == Journal && st.AuditLines() == 0:
			r.log.Warn("the journal holds no audit record: journald's audit transport is off, or auditd has them")
		case st.Lines > 0 && st.AuditLines() == 0:
			r.errs = append(r.errs, fmt.Errorf("replay: %s: not an audit log: none of its %d lines is an audit record", name, st.Lines))
		}
	}
	return nil
}

// file reads one input, decompressing it as its magic bytes say.
func (r *Files) file(ctx context.Context, name string, out chan<- []audit.Record) (audit.LogStats, error) {
	l := &audit.LogReader{Since: r.since, Until: r.until, Location: r.loc, Done: r.done, OnMalformed: func(line int, err error) {
		r.shown++
		switch {
		case r.shown <= maxShownMalformed:
			r.log.WithFields(logrus.Fields{"file": name, "line": line}).WithError(err).Warn("skipping malformed audit record")
		case r.shown == maxShownMalformed+1:
			r.log.Warn("further malformed lines are counted per file, not shown")
		}
	}}
	var src io.Reader
	switch name {
	case "-":
		src = cmp.Or[io.Reader](r.stdin, os.Stdin)
	case Journal:
		return r.journal(ctx, l, out)
	default:
		f, err := openReplayFile(name, !r.named[name], r.follow)
		if err != nil {
			return audit.LogStats{}, fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		src = f
	}
	dec, closeDec, err := decompress(countingReader{src, &r.read}, r.maxWindow)
	if err != nil {
		return audit.LogStats{}, fmt.Errorf("replay %s: %w", name, err)
	}
	defer closeDec()
	br := bufio.NewReaderSize(dec, 64<<10)
	if audit.IsJournalExport(br) {
		err = l.ReadJournal(ctx, br, out)
	} else {
		err = l.Read(ctx, br, out)
	}
	if err != nil {
		return l.Stats(), fmt.Errorf("replay %s: %w", name, err)
	}
	return l.Stats(), nil
}

// journal reads the journal's audit records through journalctl's export
// format: binary-safe (a field with any byte is length-prefixed), and
// parsed with no JSON decoding (see audit.LogReader.ReadJournal).
func (r *Files) journal(ctx context.Context, l *audit.LogReader, out chan<- []audit.Record) (audit.LogStats, error) {
	args := []string{"--no-pager", "-o", "export", "_TRANSPORT=audit"}
	if !r.since.IsZero() {
		args = append(args, "--since=@"+strconv.FormatInt(r.since.Unix(), 10))
	}
	if !r.until.IsZero() {
		// journalctl's bound is inclusive and in seconds: one more second,
		// and the reader drops what is past the exact bound.
		args = append(args, "--until=@"+strconv.FormatInt(r.until.Unix()+1, 10))
	}
	cmd := exec.CommandContext(ctx, cmp.Or(r.journalctl, "journalctl"), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return audit.LogStats{}, fmt.Errorf("replay journal: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return audit.LogStats{}, fmt.Errorf("replay journal: %w", err)
	}
	rerr := l.ReadJournal(ctx, countingReader{stdout, &r.read}, out)
	_, _ = io.Copy(io.Discard, stdout) // let journalctl finish if the reader stopped
	werr := cmd.Wait()
	switch {
	case rerr != nil:
		return l.Stats(), fmt.Errorf("replay journal: %w", rerr)
	case werr != nil:
		return l.Stats(), fmt.Errorf("replay journal: journalctl: %w: %s", werr, strings.TrimSpace(stderr.String()))
	}
	return l.Stats(), nil
}

// Magic bytes of the compressed formats replay reads: RFC 1952 (gzip),
// RFC 8878 (zstd) and the xz file format, section 2.1.1.1.
var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// decompress returns r decompressed as its first bytes say, and a function
// that releases the decompressor.
func decompress(r io.Reader, maxWindow uint64) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(6)
	switch {
	case hasMagic(head, magicGzip):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return z, func() { _ = z.Close() }, nil
	case hasMagic(head, magicZstd):
		return newZstdReader(br, maxWindow)
	case hasMagic(head, magicXz):
		z, err := newXzReader(br, maxWindow)
		if err != nil {
			return nil, nil, fmt.Errorf("xz: %w", err)
		}
		return z, func() {}, nil
	}
	return br, func() {}, nil
}

func hasMagic(b, magic []byte) bool {
	return len(b) >= len(magic) && string(b[:len(magic)]) == string(magic)
}

// countingReader adds the bytes read to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Close does nothing: each file is closed when read.
func (r *Files) Close() error { return nil }
