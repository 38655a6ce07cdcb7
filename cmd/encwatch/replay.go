package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/daemon"
	"github.com/encwatch/encwatch/internal/report"
	"github.com/encwatch/encwatch/internal/sink"
)

// replaySynopsis is replay's synopsis, listing the registered formats.
func replaySynopsis() string {
	return "--config FILE [--format " + strings.Join(sink.Formats(), "|") + "] [--report FILE.html] [--since T] [--until T] [--journal] [--follow-symlinks] [--max-window MIB] [--tz ZONE] [LOG|DIR|GLOB|-...]"
}

// cmdReplay replays audit logs: alerts to stdout, warnings, the progress
// line (on a terminal) and the summary to stderr.
func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", replaySynopsis(), stderr)
	path := fs.String("config", defaultConfig, "policy file")
	level := fs.String("log-level", "warning", "log level: debug, info, warning, error")
	format := fs.String("format", "json", "alert format: "+strings.Join(sink.Formats(), ", ")+" (text is for people)")
	since := fs.String("since", "", "only records at or after this time: RFC 3339, \"2006-01-02 15:04:05\" (local), a date, or @UNIX")
	until := fs.String("until", "", "only records before this time (same forms as --since)")
	journal := fs.Bool("journal", false, "also read the systemd journal's audit records (journalctl -o export _TRANSPORT=audit)")
	reportPath := fs.String("report", "", "also write the alerts as one self-contained HTML page to this file (timeline per host, process trees, filters)")
	follow := fs.Bool("follow-symlinks", false, "follow symbolic links found in a log directory or by a glob (default: refused with a warning)")
	tz := fs.String("tz", "UTC", "time zone of ausearch -i stamps (the analyst's, e.g. Europe/Paris or Local)")
	maxWindow := fs.Uint64("max-window", daemon.DefaultMaxWindow>>20, "MiB: refuse a zstd or xz input declaring a larger window or dictionary")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*level, "text", stderr)
	if err != nil {
		return err
	}
	if *maxWindow == 0 || *maxWindow > 4096 {
		return fmt.Errorf("--max-window: %d MiB: want 1 to 4096", *maxWindow)
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("--tz: %w", err)
	}
	o := daemon.ReplayOptions{Inputs: fs.Args(), Out: stdout, FollowSymlinks: *follow, MaxWindow: *maxWindow << 20, Location: loc}
	if o.Since, err = parseWhen(*since); err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	if o.Until, err = parseWhen(*until); err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	if *journal {
		o.Inputs = append(o.Inputs, daemon.JournalInput)
	}
	if o.Format, err = sink.NewFormat(*format, sink.FormatOptions{Version: version, Terminal: isTerminal(stdout)}); err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	cfg, err := config.Load(*path, config.LoadOptions{})
	if err != nil {
		return err
	}
	if isTerminal(stderr) {
		o.Progress = progressLine(stderr)
	}
	var rep *report.Report
	if *reportPath != "" {
		rep = report.New(report.DefaultMax)
		o.Out, o.Format = rep.Attach(o.Out, o.Format)
	}
	sum, err := daemon.ReplayLogs(ctx, cfg, log, o)
	if sum.Inputs != nil || sum.Records > 0 {
		writeSummary(stderr, &sum)
	}
	if rep != nil {
		if werr := writeReport(*reportPath, rep, &sum); werr != nil {
			return errors.Join(err, werr)
		}
	}
	return err
}

// writeReport writes the HTML report to path, through a temporary file
// renamed into place, readable by its owner only: it holds command lines.
func writeReport(path string, rep *report.Report, sum *daemon.ReplaySummary) error {
	s := report.Summary{Records: sum.Records, Events: sum.Events, Alerts: sum.Alerts, First: sum.First, Last: sum.Last, Elapsed: sum.Elapsed}
	for _, in := range sum.Inputs {
		s.Inputs = append(s.Inputs, report.Input{Name: in.Name, Records: in.Records, Malformed: in.Malformed})
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".encwatch-report-*")
	if err != nil {
		return fmt.Errorf("--report %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriter(f)
	err = rep.Write(w, s)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("--report %s: %w", path, err)
	}
	return nil
}

// parseWhen reads a --since/--until time; "" is no bound.
func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		sec, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: not @UNIX-SECONDS", s)
		}
		return time.Unix(0, int64(sec*1e9)), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339, \"2006-01-02 15:04:05\", 2006-01-02 or @UNIX", s)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressLine returns a progress reporter that redraws one line on w (a
// terminal) and erases it when the replay is done.
func progressLine(w io.Writer) func(daemon.ReplayProgress) {
	return func(p daemon.ReplayProgress) {
		if p.Done {
			fmt.Fprint(w, "\r\x1b[K")
			return
		}
		fmt.Fprint(w, "\r\x1b[K"+progressText(p))
	}
}

// progressText is the progress line's text: bytes read of total, records,
// alerts, rate and, when the total is known, ETA.
func progressText(p daemon.ReplayProgress) string {
	var b strings.Builder
	secs := p.Elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(p.BytesRead) / secs
	}
	fmt.Fprintf(&b, "replay: %s", sizeText(p.BytesRead))
	if p.BytesTotal > 0 {
		fmt.Fprintf(&b, " of %s (%d%%)", sizeText(p.BytesTotal), min(100, p.BytesRead*100/p.BytesTotal))
	}
	fmt.Fprintf(&b, ", %d records, %d alerts, %s/s", p.Records, p.Alert, sizeText(int64(rate)))
	if p.BytesTotal > 0 && rate > 0 && p.BytesRead < p.BytesTotal {
		eta := time.Duration(float64(p.BytesTotal-p.BytesRead) / rate * float64(time.Second))
		fmt.Fprintf(&b, ", ETA %s", eta.Round(time.Second))
	}
	return b.String()
}

// sizeText writes n bytes as B, KB, MB or GB (powers of 1000).
func sizeText(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// writeSummary writes the replay's summary: what was read, what was found,
// where and under whom, what could not be read, and the time covered.
func writeSummary(w io.Writer, s *daemon.ReplaySummary) {
	var b strings.Builder
	fmt.Fprintf(&b, "replay summary (%.2f s)\n", s.Elapsed.Seconds())
	fmt.Fprintf(&b, "  inputs      %d\n", len(s.Inputs))
	fmt.Fprintf(&b, "  records     %d\n", s.Records)
	fmt.Fprintf(&b, "  events      %d\n", s.Events)
	fmt.Fprintf(&b, "  alerts      %d\n", s.Alerts)
	if !s.First.IsZero() {
		fmt.Fprintf(&b, "  time span   %s .. %s (%s)\n", s.First.UTC().Format(time.DateTime), s.Last.UTC().Format(time.DateTime+" MST"), s.Last.Sub(s.First).Round(time.Second))
	}
	counts := func(title string, cs []daemon.Count) {
		for i, c := range cs {
			if i == 0 {
				fmt.Fprintf(&b, "  %-11s %6d  %s\n", title, c.N, sink.Printable(c.Name))
			} else {
				fmt.Fprintf(&b, "  %-11s %6d  %s\n", "", c.N, sink.Printable(c.Name))
			}
		}
	}
	counts("signatures", s.BySignature)
	counts("hosts", s.ByHost)
	if more := s.Hosts - uint64(len(s.ByHost)); s.Hosts > uint64(len(s.ByHost)) {
		atLeast := ""
		if s.HostsAtLeast {
			atLeast = "at least "
		}
		fmt.Fprintf(&b, "  %-11s %6s  and %s%d more hosts (%s%d in all)\n", "", "", atLeast, more, atLeast, s.Hosts)
	}
	counts("top parents", s.TopParents)
	var seps, foreign uint64
	for _, in := range s.Inputs {
		seps, foreign = seps+in.Separators, foreign+in.Foreign
	}
	if seps > 0 || foreign > 0 {
		fmt.Fprintf(&b, "  not audit   %d lines (%d ausearch separators, %d syslog lines of other programs)\n", seps+foreign, seps, foreign)
	}
	fmt.Fprintf(&b, "  malformed   %d lines\n", s.Malformed())
	for _, in := range s.Inputs {
		if in.Malformed > 0 {
			fmt.Fprintf(&b, "  %-11s %6d  %s\n", "", in.Malformed, sink.Printable(in.Name))
		}
	}
	io.WriteString(w, b.String())
}
