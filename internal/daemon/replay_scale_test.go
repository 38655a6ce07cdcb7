package daemon

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/internal/config"
)

// distinctDecodesLog writes n execs of `base64 -d fN`, each argv new, 1 ms
// apart; with hosts, each from its own node= host hN.
func distinctDecodesLog(t testing.TB, n int, hosts bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("distinct-%d.log", n))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range n {
		ts := base.Add(time.Duration(i) * time.Millisecond)
		msg := fmt.Sprintf("msg=audit(%d.%03d:%d):", ts.Unix(), ts.Nanosecond()/1e6, 1000+i)
		node := ""
		if hosts {
			node = fmt.Sprintf("node=h%d ", i)
		}
		arg := fmt.Sprintf("f%d", i)
		fmt.Fprintf(w, "%stype=SYSCALL %s arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=2810 pid=%d auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm=\"base64\" exe=\"/usr/bin/base64\" key=\"encwatch\"\n", node, msg, 3000+i%30000)
		fmt.Fprintf(w, "%stype=EXECVE %s argc=3 a0=\"base64\" a1=\"-d\" a2=\"%s\"\n", node, msg, arg)
		fmt.Fprintf(w, "%stype=CWD %s cwd=\"/home/u\"\n", node, msg)
		fmt.Fprintf(w, "%stype=PATH %s item=0 name=\"/usr/bin/base64\" inode=246996 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0\n", node, msg)
		fmt.Fprintf(w, "%stype=PROCTITLE %s proctitle=%s\n", node, msg, hex.EncodeToString([]byte("base64\x00-d\x00"+arg)))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// replayCount replays path with the shipped policy, counting the alert
// lines written, and returns the summary and how long it took.
func replayCount(t testing.TB, path string) (ReplaySummary, uint64, time.Duration) {
	t.Helper()
	cfg, err := config.Load("../../config.hcl", config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	var out lineCounter
	start := time.Now()
	s, err := ReplayLogs(context.Background(), cfg, logrus.NewEntry(log), ReplayOptions{Inputs: []string{path}, Out: &out})
	if err != nil {
		t.Fatalf("ReplayLogs(%s) = %v", path, err)
	}
	return s, out.lines, time.Since(start)
}

// lineCounter counts the lines written to it.
type lineCounter struct{ lines uint64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			c.lines++
		}
	}
	return len(p), nil
}

// TestReplayDistinctDecodesScale replays 10,000 and then 200,000 distinct
// `base64 -d fN` execs 1 ms apart, and 200,000 from as many node= hosts.
// It asserts counts, not time: every event is read, alerts and their
// summaries account for every decode, the host list of the summary is
// bounded and the host count exact. The per-event cost of each run is
// logged (the throttle used to scan every window per alert once the first
// one ended: 0.5 ms an event, 65 s for 200,000; docs/performance.md).
func TestReplayDistinctDecodesScale(t *testing.T) {
	sizes := []int{10_000, 200_000}
	if testing.Short() {
		sizes = []int{10_000, 40_000}
	}
	per := map[int]time.Duration{}
	for _, n := range sizes {
		s, lines, took := replayCount(t, distinctDecodesLog(t, n, false))
		per[n] = took / time.Duration(n)
		t.Logf("%d distinct decodes: %v (%v an event), %d alerts", n, took.Round(time.Millisecond), per[n], s.Alerts)
		if s.Events != uint64(n) {
			t.Errorf("%d decodes: %d events, want %d", n, s.Events, n)
		}
		if lines != s.Alerts {
			t.Errorf("%d decodes: %d alert lines, summary says %d", n, lines, s.Alerts)
		}
		// A replay has no safety cap: every new command is raised.
		if s.Alerts != uint64(n) {
			t.Errorf("%d decodes: %d alerts, want %d", n, s.Alerts, n)
		}
	}
	t.Logf("per-event cost: %v at %d, %v at %d (ratio %.2f)", per[sizes[0]], sizes[0], per[sizes[1]], sizes[1], float64(per[sizes[1]])/float64(per[sizes[0]]))

	n := sizes[1]
	s, _, took := replayCount(t, distinctDecodesLog(t, n, true))
	t.Logf("%d decodes from %d hosts: %v (%v an event), %d alerts, %d hosts listed of %d", n, n, took.Round(time.Millisecond), took/time.Duration(n), s.Alerts, len(s.ByHost), s.Hosts)
	if s.Events != uint64(n) || s.Alerts != uint64(n) {
		t.Errorf("%d hosts: %d events and %d alerts, want %d of each", n, s.Events, s.Alerts, n)
	}
	if len(s.ByHost) != topHosts || s.Hosts != uint64(n) || s.HostsAtLeast {
		t.Errorf("summary lists %d hosts of %d (at least: %v), want %d of %d exactly", len(s.ByHost), s.Hosts, s.HostsAtLeast, topHosts, n)
	}
	if len(s.TopParents) > topParents {
		t.Errorf("summary lists %d parents, want at most %d", len(s.TopParents), topParents)
	}
}

// BenchmarkReplayDistinctDecodes replays b.N distinct decodes 1 ms apart,
// for the per-event cost at a size (-benchtime=200000x).
func BenchmarkReplayDistinctDecodes(b *testing.B) {
	path := distinctDecodesLog(b, b.N, false)
	b.ResetTimer()
	replayCount(b, path)
}
