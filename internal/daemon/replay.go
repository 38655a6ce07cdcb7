package daemon

import (
	"cmp"
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/input"
	"github.com/encwatch/encwatch/internal/sink"
)

// progressEvery is how often ReplayOptions.Progress is called.
const progressEvery = 200 * time.Millisecond

// JournalInput is the input name that stands for the systemd journal's audit
// records, read through journalctl.
const JournalInput = input.Journal

// DefaultMaxWindow is the largest zstd window or xz dictionary a replay
// decompresses unless told otherwise.
const DefaultMaxWindow = input.DefaultMaxWindow

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
	// glob (internal/input/files_open.go); MaxWindow bounds a zstd window
	// or xz dictionary (0: DefaultMaxWindow).
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
type InputStats = input.FileStats

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
	tally := newTally(sink.NewStdout("replay", o.Out, o.Format))
	p := newPipeline(pipelineOptions{
		Config: cfg,
		Log:    log,
		// Forensic output must be complete: detection waits for the
		// writer.
		Router: newRouter(log, []sink.Sink{tally}, true),
		// An interrupted replay ends at once with the summary of what it
		// read, rather than after the batches queued for the assembler.
		DropOnCancel: true,
	})
	in := input.OpenFiles(input.FilesOptions{Inputs: o.Inputs, Since: o.Since, Until: o.Until, Stdin: o.Stdin, Journalctl: o.Journalctl,
		FollowSymlinks: o.FollowSymlinks, MaxWindow: o.MaxWindow, Location: o.Location, Log: log})
	defer in.Close()
	stopProgress := startProgress(o.Progress, in, p, tally, start)
	err := p.run(ctx, in)
	s := ReplaySummary{Inputs: in.Stats(), Elapsed: time.Since(start)}
	stopProgress()
	s.Records, s.Events = p.Records.Load(), p.Events.Load()
	tally.summarise(&s)
	for _, i := range s.Inputs {
		if i.Records > 0 && (s.First.IsZero() || i.First.Before(s.First)) {
			s.First = i.First
		}
		if i.Last.After(s.Last) {
			s.Last = i.Last
		}
	}
	return s, errors.Join(err, in.Err())
}

// startProgress calls report every progressEvery until the returned stop is
// called, which reports once more with Done set and returns when the
// goroutine has ended.
func startProgress(report func(ReplayProgress), in *input.Files, p *pipeline, t *tally, start time.Time) (stop func()) {
	if report == nil {
		return func() {}
	}
	snap := func(done bool) ReplayProgress {
		read, total := in.Progress()
		return ReplayProgress{
			BytesRead: read, BytesTotal: total,
			Records: p.Records.Load(), Events: p.Events.Load(), Alert: t.alerts.Load(),
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
