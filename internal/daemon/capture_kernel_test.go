package daemon

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/elastic/go-libaudit/v2/auparse"
	"github.com/klauspost/compress/zstd"
	"github.com/sirupsen/logrus"
	"github.com/ulikunitz/xz"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/audit/netlink"
	"github.com/encwatch/encwatch/internal/audittest"
)

var capture = flag.Bool("capture", false, "regenerate testdata/replay-rotated from the real kernel (root)")

// rotatedDir holds the rotated logs TestKernelCaptureRotatedLogs writes and
// TestReplayRotatedDirectory reads.
const rotatedDir = "../../testdata/replay-rotated"

// rotation is the files of the fixture, oldest first, and how each is
// compressed: what auditd's rotation plus logrotate leave behind.
var rotation = []struct{ name, compress string }{
	{"audit.log.3.xz", "xz"}, {"audit.log.2.zst", "zstd"}, {"audit.log.1.gz", "gzip"}, {"audit.log", ""},
}

// TestKernelCaptureRotatedLogs needs root and the kernel audit subsystem,
// and runs only with -capture: it records four rounds of real execs
// (a base64 decode of a file named for the round, among benign commands) as
// auditd log lines, one round per rotated file, and writes them
// compressed as rotation lists.
func TestKernelCaptureRotatedLogs(t *testing.T) {
	if !*capture {
		t.Skip("generates testdata/replay-rotated; run with -capture as root")
	}
	out := captureRecords(t)
	dir := t.TempDir()
	for i, f := range rotation {
		round := len(rotation) - 1 - i // audit.log.3 is round 3 ... audit.log round 0
		marker := filepath.Join(dir, fmt.Sprintf("round-%d.b64", round))
		if err := os.WriteFile(marker, []byte("aGVsbG8K\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmds := [][]string{{"/bin/true"}, {"/usr/bin/base64", "--decode", marker}, {"/bin/ls", dir}}
		want := len(cmds)
		if round == 0 {
			// sh, and the base64 and sh of its pipeline.
			cmds = append(cmds, []string{"/bin/sh", "-c", "echo ZWNobyBoZWxsbwo= | base64 -d | sh"})
			want += 3
		}
		for _, c := range cmds {
			if b, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("run %v: %v: %s", c, err, b)
			}
		}
		lines := collectLines(t, out, want)
		if err := writeCompressed(filepath.Join(rotatedDir, f.name), f.compress, lines); err != nil {
			t.Fatal(err)
		}
	}
}

// collectLines gathers, as auditd log lines (no EOE: auditd writes none),
// the records of the execs of this process and its descendants, until want
// of them have been seen; other processes' execs on the machine are left
// out of the fixture.
func collectLines(t *testing.T, out <-chan []audit.Record, want int) []byte {
	t.Helper()
	ours := map[string]bool{strconv.Itoa(os.Getpid()): true}
	var b bytes.Buffer
	got := 0
	deadline := time.After(10 * time.Second)
	var pending []audit.Record // the records of the serial being read
	flush := func() {
		if len(pending) == 0 || pending[0].Type != audit.RecSyscall {
			pending = pending[:0]
			return
		}
		p, err := audit.ParseRecord(pending[0])
		pid, _ := p.Get("pid")
		ppid, _ := p.Get("ppid")
		if err == nil && ours[ppid] {
			ours[pid] = true
			got++
			for _, r := range pending {
				fmt.Fprintf(&b, "type=%s msg=%s\n", auparse.AuditMessageType(r.Type), bytes.TrimRight(r.Data, "\x00\n"))
			}
		}
		pending = pending[:0]
	}
	for got < want {
		select {
		case batch := <-out:
			for _, r := range batch {
				switch {
				case r.Type == audit.RecEOE:
					flush()
				case r.Type == audit.RecSyscall:
					flush()
					pending = append(pending, audit.Record{Type: r.Type, Data: bytes.Clone(r.Data)})
				case len(pending) > 0:
					pending = append(pending, audit.Record{Type: r.Type, Data: bytes.Clone(r.Data)})
				}
			}
		case <-deadline:
			t.Fatalf("saw %d of our %d execs within 10s", got, want)
		}
	}
	return b.Bytes()
}

// writeCompressed writes data to path compressed with how ("" plain).
func writeCompressed(path, how string, data []byte) error {
	var b bytes.Buffer
	switch how {
	case "":
		b.Write(data)
	case "gzip":
		z := gzip.NewWriter(&b)
		z.Write(data)
		z.Close()
	case "zstd":
		z, _ := zstd.NewWriter(&b)
		z.Write(data)
		z.Close()
	case "xz":
		z, err := xz.NewWriter(&b)
		if err != nil {
			return err
		}
		z.Write(data)
		z.Close()
	default:
		return fmt.Errorf("unknown compression %q", how)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// captureRecords takes the kernel test lock, opens encwatch's owner of the
// audit socket with the test's own rule key, and returns the channel its
// records arrive on, until the test ends.
func captureRecords(t *testing.T) <-chan []audit.Record {
	t.Helper()
	audittest.Setup(t)
	o, err := netlink.OpenOwner(netlink.OwnerConfig{Settings: audit.Settings{Enabled: true, RuleKey: audittest.Key()}}, logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatalf("open the kernel audit socket (root): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan []audit.Record, 1024)
	done := make(chan struct{})
	go func() { _ = o.Run(ctx, out); close(done) }()
	t.Cleanup(func() { cancel(); o.Close(); <-done })
	return out
}
