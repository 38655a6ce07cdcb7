package daemon

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/proc"
)

// TestDynamicExecsOpenNoFileInSteadyState pushes a recorded batch of real,
// dynamically linked execs (testdata/dynamic-execs.log: /bin/true, env,
// sh -c one-liners, a three-stage pipeline, a shell script, from several
// parents; TestKernelCaptureDynamicExecs) through the live pipeline with the
// real file identifier, over a proc root whose processes have all exited
// (only their parents' and init's roots are left, as at a thousand execs a
// second), and counts the files the identifier opens. The first pass looks
// the programs up; ten seconds later, the same execs again must open no
// file and queue no lookup: a count, which a fast machine cannot hide.
func TestDynamicExecsOpenNoFileInSteadyState(t *testing.T) {
	cfg, err := config.Load("../../config.hcl", config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(dynamicExecs)
	if err != nil {
		t.Fatal(err)
	}
	text := thisMachinesFiles(string(raw))
	procfs := t.TempDir()
	for _, pid := range append(parents(text), 1) {
		dir := filepath.Join(procfs, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/", filepath.Join(dir, "root")); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	log := logrus.NewEntry(lg)
	p := newPipeline(pipelineOptions{Config: cfg, Log: log, Router: newRouter(log, nil, false), Live: true, ProcRoot: procfs})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.files.Run(ctx)

	learned := uint64(0)
	pass := func(shift time.Duration) (events uint64, st proc.IdentifierStats) {
		t.Helper()
		recs := readRecords(t, shiftTimes(text, shift))
		asm := audit.NewAssembler(assemblerConfig(cfg, true))
		emit := func(ev *audit.Event) {
			events++
			p.evaluate(ev)
		}
		now := time.Now()
		for _, r := range recs {
			asm.Push(r, now, emit)
		}
		asm.Flush(emit)
		// Detection takes every finished lookup back, as its loop does.
		for learned < p.files.Stats().Queued {
			select {
			case j := <-p.files.Done():
				p.reidentify(j)
				learned++
			case <-time.After(10 * time.Second):
				t.Fatalf("%d of %d lookups finished within 10 s", learned, p.files.Stats().Queued)
			}
		}
		return events, p.files.Stats()
	}
	events, first := pass(0)
	if want := uint64(strings.Count(text, "type=SYSCALL ")); events != want || events == 0 {
		t.Fatalf("first pass: %d events, want the batch's %d", events, want)
	}
	if first.Opened == 0 || first.Queued == 0 {
		t.Fatalf("first pass looked nothing up (%+v): the batch names no file to identify", first)
	}
	for _, shift := range []time.Duration{10 * time.Second, 20 * time.Second} {
		events, st := pass(shift)
		opened, queued := st.Opened-first.Opened, st.Queued-first.Queued
		if opened != 0 || queued != 0 || st.Dropped != 0 {
			t.Errorf("%v later: %d files opened and %d lookups queued for %d events (%.2f opens per event), want 0 (%+v)",
				shift, opened, queued, events, float64(opened)/float64(events), st)
		}
		first = st
	}
}

var (
	pathRecord  = regexp.MustCompile(`(?m)^(type=PATH .* name=")([^"]*)(" inode=)\d+( dev=)[0-9a-f:]+( mode=)[0-7]+( ouid=)\d+`)
	syscallPPID = regexp.MustCompile(`(?m)^type=SYSCALL .* ppid=(\d+) `)
	auditTime   = regexp.MustCompile(`audit\((\d+)\.`)
)

// thisMachinesFiles rewrites the recorded PATH records' inode, device,
// mode and owner to those of the file at their name on this machine (as
// the kernel would record them here), leaving a name this machine lacks as
// recorded.
func thisMachinesFiles(text string) string {
	return pathRecord.ReplaceAllStringFunc(text, func(m string) string {
		sub := pathRecord.FindStringSubmatch(m)
		var st unix.Stat_t
		if unix.Stat(sub[2], &st) != nil {
			return m
		}
		return sub[1] + sub[2] + sub[3] + strconv.FormatUint(st.Ino, 10) + sub[4] + proc.AuditDev(st.Dev) +
			sub[5] + "0" + strconv.FormatUint(uint64(st.Mode), 8) + sub[6] + strconv.FormatUint(uint64(st.Uid), 10)
	})
}

// parents returns the parent pids of the recorded execs.
func parents(text string) []int {
	var out []int
	for _, m := range syscallPPID.FindAllStringSubmatch(text, -1) {
		pid, _ := strconv.Atoi(m[1])
		out = append(out, pid)
	}
	return out
}

// shiftTimes moves every record's timestamp by d (whole seconds).
func shiftTimes(text string, d time.Duration) string {
	return auditTime.ReplaceAllStringFunc(text, func(m string) string {
		s, _ := strconv.ParseInt(m[len("audit("):len(m)-1], 10, 64)
		return "audit(" + strconv.FormatInt(s+int64(d/time.Second), 10) + "."
	})
}

// readRecords reads the records of an audit log's text.
func readRecords(t *testing.T, text string) []audit.Record {
	t.Helper()
	out := make(chan []audit.Record, 1024)
	if err := audit.ReadLog(context.Background(), strings.NewReader(text), out, func(int, error) {}); err != nil {
		t.Fatal(err)
	}
	close(out)
	var recs []audit.Record
	for batch := range out {
		recs = append(recs, batch...)
	}
	return recs
}
