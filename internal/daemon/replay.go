package daemon

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
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/sink"
)

// maxShownMalformed is how many malformed lines a replay names with file
// and line; the rest are counted per file.
const maxShownMalformed = 10

// progressEvery is how often ReplayOptions.Progress is called.
const progressEvery = 200 * time.Millisecond

// JournalInput is the input name that stands for the systemd journal's audit
// records, read through journalctl.
const JournalInput = "journal:"

// ReplayOptions configure ReplayLogs.
type ReplayOptions struct {
	// Inputs are files, directories (every audit.log* in rotation order,
	// oldest first), glob patterns, "-" for Stdin, or JournalInput. Each
	// may be plain, gzip, zstd or xz (told by its magic bytes), and hold
	// auditd log lines or a journal export (journalctl -o export). Log
	// lines may be plain or enriched, ausearch's output, behind an RFC
	// 3164 or RFC 5424 syslog header, or the kernel's "audit: type=NNNN"
	// printk, mixed in one file (see audit.LogReader).
	Inputs []string
	// Since and Until, when not zero, keep only records stamped at or
	// after Since and before Until.
	Since, Until time.Time
	// Out receives the alerts in Format (nil: JSON lines).
	Out    io.Writer
	Format sink.Format
	// Stdin is read for "-" (nil: os.Stdin).
	Stdin io.Reader
	// Journalctl is the journalctl command for JournalInput (default
	// "journalctl").
	Journalctl string
	// Progress, if set, is called every 200 ms from a goroutine of
	// ReplayLogs, and once more with Done set before ReplayLogs returns.
	Progress func(ReplayProgress)
	// FollowSymlinks follows symbolic links found in a directory or by a
	// glob (replay_open.go); MaxWindow bounds a zstd window or xz
	// dictionary (0: DefaultMaxWindow).
	FollowSymlinks bool
	MaxWindow      uint64
	// Location is the time zone of ausearch -i stamps (nil: UTC).
	Location *time.Location
}

// ReplayProgress is a replay's progress so far.
type ReplayProgress struct {
	// BytesRead and BytesTotal count the input as stored (compressed
	// bytes of a compressed file); BytesTotal is 0 when unknown (stdin,
	// the journal).
	BytesRead, BytesTotal  int64
	Records, Events, Alert uint64
	Elapsed                time.Duration
	Done                   bool
}

// InputStats are what one input held.
type InputStats struct {
	Name string
	audit.LogStats
}

// Count is a name and how many times it was seen.
type Count struct {
	Name string
	N    uint64
}

// ReplaySummary is what a replay read and found.
type ReplaySummary struct {
	Inputs                  []InputStats
	Records, Events, Alerts uint64
	// BySignature counts alerts by "signature (importance)", ByHost by
	// host (the topHosts most), TopParents by the parent's command: most
	// first. Hosts is how many hosts raised alerts (HostsAtLeast: a lower
	// bound); past tallyCapacity hosts the counts are estimates
	// (replay_tally.go).
	BySignature, ByHost, TopParents []Count
	Hosts                           uint64
	HostsAtLeast                    bool
	// First and Last are the earliest and latest record times read.
	First, Last time.Time
	Elapsed     time.Duration
}

// Malformed returns the malformed lines over all inputs.
func (s *ReplaySummary) Malformed() uint64 {
	var n uint64
	for _, in := range s.Inputs {
		n += in.Malformed
	}
	return n
}

// Replay reads auditd log files ("-" is stdin) through the same pipeline as
// Run and writes the alerts as JSON lines to out. It needs no privileges.
func Replay(ctx context.Context, cfg *config.Config, log *logrus.Entry, files []string, out io.Writer) error {
	_, err := ReplayLogs(ctx, cfg, log, ReplayOptions{Inputs: files, Out: out})
	return err
}

// ReplayLogs reads o.Inputs through the same pipeline as Run (not live:
// nothing is looked up on this machine) and writes the alerts to o.Out.
// Every input is read even when one fails; the error joins each input's
// (missing, unreadable, or holding lines but no audit record).
func ReplayLogs(ctx context.Context, cfg *config.Config, log *logrus.Entry, o ReplayOptions) (ReplaySummary, error) {
	start := time.Now()
	files, inputErrs := expandInputs(o.Inputs)
	tally := newTally(sink.NewStdout("replay", o.Out, o.Format))
	p := newPipeline(pipelineOptions{
		Config: cfg,
		Log:    log,
		// Forensic output must be complete: detection waits for the
		// writer.
		Router: newRouter(log, []sink.Sink{tally}, true),
	})
	in := &replayInput{files: files, log: log, since: o.Since, until: o.Until, stdin: o.Stdin, journalctl: o.Journalctl,
		named: make(map[string]bool), follow: o.FollowSymlinks, maxWindow: cmp.Or(o.MaxWindow, DefaultMaxWindow), loc: o.Location}
	for _, name := range o.Inputs {
		in.named[name] = true
	}
	in.total = totalSize(files)
	defer in.Close()
	stopProgress := startProgress(o.Progress, in, p, tally, start)
	defer abandonOnCancel(ctx, p)()
	err := p.run(ctx, in.Run)
	s := ReplaySummary{Inputs: in.stats, Elapsed: time.Since(start)}
	stopProgress()
	st := p.asm.Stats()
	s.Records, s.Events = st.Records, st.Events
	tally.summarise(&s)
	for _, i := range s.Inputs {
		if i.Records > 0 && (s.First.IsZero() || i.First.Before(s.First)) {
			s.First = i.First
		}
		if i.Last.After(s.Last) {
			s.Last = i.Last
		}
	}
	return s, errors.Join(err, errors.Join(inputErrs...), errors.Join(in.errs...))
}

// startProgress calls report every progressEvery until the returned stop is
// called, which reports once more with Done set and returns when the
// goroutine has ended.
func startProgress(report func(ReplayProgress), in *replayInput, p *pipeline, t *tally, start time.Time) (stop func()) {
	if report == nil {
		return func() {}
	}
	snap := func(done bool) ReplayProgress {
		return ReplayProgress{
			BytesRead: in.read.Load(), BytesTotal: in.total,
			Records: p.records.Load(), Events: p.events.Load(), Alert: t.alerts.Load(),
			Elapsed: time.Since(start), Done: done,
		}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		report(snap(false))
		for {
			select {
			case <-tick.C:
				report(snap(false))
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		wg.Wait()
		report(snap(true))
	}
}

// expandInputs turns directories and globs into files, in reading order,
// with an error for each input that names no file.
func expandInputs(inputs []string) ([]string, []error) {
	if len(inputs) == 0 {
		return []string{"-"}, nil
	}
	var out []string
	var errs []error
	for _, in := range inputs {
		if in == "-" || in == JournalInput {
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

// replayInput reads log files, "-" being stdin, one after the other. It
// is used by the pipeline's source goroutine; its stats and errs are read
// after the pipeline has stopped, read by the progress goroutine.
type replayInput struct {
	files        []string
	log          *logrus.Entry
	since, until time.Time
	stdin        io.Reader
	journalctl   string
	// named are the inputs named on the command line: the rest came from
	// a directory or a glob (see openReplayFile).
	named     map[string]bool
	follow    bool
	maxWindow uint64
	loc       *time.Location

	total int64        // bytes of the regular files
	read  atomic.Int64 // bytes read so far, as stored
	shown int          // malformed lines named so far
	stats []InputStats
	errs  []error
}

var _ input = (*replayInput)(nil)

// Run reads every file in turn. An input that fails is recorded in errs
// and the next one is read; Run itself fails only when ctx ends.
func (r *replayInput) Run(ctx context.Context, out chan<- []audit.Record) error {
	for _, name := range r.files {
		st, err := r.file(ctx, name, out)
		if warnRefused(r.log, name, err) {
			continue
		}
		if ctx.Err() != nil {
			// Interrupted: what was read of this input is summarised.
			r.stats = append(r.stats, InputStats{Name: name, LogStats: st})
			return ctx.Err()
		}
		r.stats = append(r.stats, InputStats{Name: name, LogStats: st})
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
		case name == JournalInput && st.AuditLines() == 0:
			r.log.Warn("the journal holds no audit record: journald's audit transport is off, or auditd has them")
		case st.Lines > 0 && st.AuditLines() == 0:
			r.errs = append(r.errs, fmt.Errorf("replay: %s: not an audit log: none of its %d lines is an audit record", name, st.Lines))
		}
	}
	return nil
}

// file reads one input, decompressing it as its magic bytes say.
func (r *replayInput) file(ctx context.Context, name string, out chan<- []audit.Record) (audit.LogStats, error) {
	l := &audit.LogReader{Since: r.since, Until: r.until, Location: r.loc, OnMalformed: func(line int, err error) {
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
	case JournalInput:
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
func (r *replayInput) journal(ctx context.Context, l *audit.LogReader, out chan<- []audit.Record) (audit.LogStats, error) {
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
func (r *replayInput) Close() error { return nil }

// tally is the replay's sink: it counts the alerts it passes on to its
// output sink. Send and Close are called from the router's goroutine; the
// counts are read after the pipeline has stopped, alerts at any time.
type tally struct {
	out     sink.Sink
	alerts  atomic.Uint64
	bySig   map[string]uint64
	byHost  *topCounter
	parents *topCounter
}

var _ sink.Sink = (*tally)(nil)

func newTally(out sink.Sink) *tally {
	return &tally{out: out, bySig: map[string]uint64{}, byHost: newTopCounter(), parents: newTopCounter()}
}

// Name returns the output sink's name.
func (t *tally) Name() string { return t.out.Name() }

// Send counts alerts and passes them on.
func (t *tally) Send(ctx context.Context, alerts []detect.Alert) error {
	for i := range alerts {
		a := &alerts[i]
		t.alerts.Add(1)
		t.bySig[a.Signature.Name+" ("+a.Signature.Importance.String()+")"]++
		t.byHost.add(a.Host)
		t.parents.add(parentOf(a))
	}
	return t.out.Send(ctx, alerts)
}

// Close closes the output sink.
func (t *tally) Close() error { return t.out.Close() }

// parentOf names the alerted process's parent by its command line, or its
// pid when the replay never saw it start.
func parentOf(a *detect.Alert) string {
	if len(a.Ancestry) > 0 {
		p := a.Ancestry[0]
		if len(p.Argv) > 0 {
			return strings.Join(p.Argv, " ")
		}
		if p.Exe != "" {
			return p.Exe
		}
	}
	if a.Event != nil {
		return "pid " + strconv.Itoa(a.Event.PPID)
	}
	return "?"
}

// topParents is how many parents a summary lists.
const topParents = 5

// summarise fills s's alert counts.
func (t *tally) summarise(s *ReplaySummary) {
	s.Alerts = t.alerts.Load()
	s.BySignature = sortedCounts(t.bySig, 0)
	s.ByHost = t.byHost.top(topHosts)
	s.Hosts, s.HostsAtLeast = t.byHost.distinctNames()
	s.TopParents = t.parents.top(topParents)
}

// sortedCounts lists m most first (then by name), at most limit (0: all).
func sortedCounts(m map[string]uint64, limit int) []Count {
	out := make([]Count, 0, len(m))
	for k, n := range m {
		out = append(out, Count{k, n})
	}
	slices.SortFunc(out, func(a, b Count) int {
		return cmp.Or(cmp.Compare(b.N, a.N), strings.Compare(a.Name, b.Name))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
