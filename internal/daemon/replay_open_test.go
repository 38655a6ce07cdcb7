package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/internal/audittest"
	"github.com/encwatch/encwatch/internal/config"
)

// replayWith replays inputs with the shipped policy and o's options,
// returning the alert lines, the summary, the warnings and the error.
func replayWith(t *testing.T, o ReplayOptions) ([]string, ReplaySummary, string, error) {
	t.Helper()
	cfg, err := config.Load("../../config.hcl", config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	var out bytes.Buffer
	o.Out = &out
	s, err := ReplayLogs(context.Background(), cfg, logrus.NewEntry(log), o)
	var lines []string
	if out.Len() > 0 {
		lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	}
	return lines, s, logs.String(), err
}

// TestReplayHostileDirectory: a log directory holding a FIFO named
// audit.log.1, a symbolic link audit.log.2 to /dev/zero and a good
// audit.log replays the good log's alerts, warns by name of the two others
// and ends (it used to block in open() for ever, then read zeros for
// ever). With --follow-symlinks the link is followed, and refused as a
// device.
func TestReplayHostileDirectory(t *testing.T) {
	dir := audittest.HostileLogDir(t, "../../testdata/replay-audit.log")
	for _, follow := range []bool{false, true} {
		start := time.Now()
		done := make(chan struct{})
		var lines []string
		var sum ReplaySummary
		var rerr error
		var logs string
		go func() {
			defer close(done)
			lines, sum, logs, rerr = replayWith(t, ReplayOptions{Inputs: []string{dir}, FollowSymlinks: follow})
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("follow %v: replay of the directory still running after 30 s", follow)
		}
		t.Logf("follow %v: %v, %d alerts", follow, time.Since(start).Round(time.Millisecond), len(lines))
		if rerr != nil {
			t.Errorf("follow %v: ReplayLogs = %v, want nil (refused inputs are warnings)", follow, rerr)
		}
		if len(lines) != 4 || len(sum.Inputs) != 1 {
			t.Errorf("follow %v: %d alerts from %d inputs, want the good log's 4 from 1", follow, len(lines), len(sum.Inputs))
		}
		link := "is a symbolic link in the log directory; not followed"
		if follow {
			link = "is a character device, not a regular file"
		}
		for _, want := range []string{"audit.log.1 is a FIFO, not a regular file", "audit.log.2 " + link} {
			if !strings.Contains(logs, want) {
				t.Errorf("follow %v: warnings lack %q:\n%s", follow, want, logs)
			}
		}
		if n := strings.Count(logs, "level=warning"); n != 2 {
			t.Errorf("follow %v: %d warnings, want 2:\n%s", follow, n, logs)
		}
	}
}

// TestReplayNamedFIFORefused: a FIFO named on the command line is refused
// at once too (open with O_NONBLOCK, then fstat), not waited on.
func TestReplayNamedFIFORefused(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	lines, _, logs, err := replayWith(t, ReplayOptions{Inputs: []string{fifo}})
	if err != nil || len(lines) != 0 || !strings.Contains(logs, "is a FIFO, not a regular file; not read (pipe it to replay - instead)") {
		t.Errorf("replay of a FIFO: err %v, %d alerts, logs %q; want a warning and nothing read", err, len(lines), logs)
	}
}

// zstdFrame is a zstd frame (RFC 8878) declaring a window of 1<<log2
// bytes and holding data as one raw block.
func zstdFrame(log2 uint, data []byte) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(log2-10) << 3}
	hdr := uint32(len(data))<<3 | 1 // last block, raw
	b = append(b, byte(hdr), byte(hdr>>8), byte(hdr>>16))
	return append(b, data...)
}

// TestReplayCompressionWindowBounded: a zstd frame declaring a 512 MiB
// window and an xz stream declaring a 256 MiB dictionary are refused with
// a clear error (the zstd one cost 547 MB of memory); the same log with a
// window the limit allows replays, and so does the xz stream under a
// higher --max-window.
func TestReplayCompressionWindowBounded(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile("../../testdata/replay-audit.log")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bomb := write("bomb.zst", zstdFrame(29, good))
	fine := write("fine.zst", zstdFrame(20, good))
	plain := write("plain.log", good)
	xzBomb := filepath.Join(dir, "dict.xz")
	if out, err := exec.Command("sh", "-c", "xz -c --lzma2=dict=256MiB "+plain+" > "+xzBomb).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v %s", err, out)
	}
	for _, tc := range []struct {
		name      string
		path      string
		maxWindow uint64
		wantErr   string
	}{
		{"zstd 512 MiB window", bomb, 0, "window"},
		{"zstd 1 MiB window", fine, 0, ""},
		{"xz 256 MiB dictionary", xzBomb, 0, "dictionary is 256 MiB, past the limit of 128 MiB"},
		{"xz 256 MiB dictionary, limit 300 MiB", xzBomb, 300 << 20, ""},
	} {
		lines, _, _, err := replayWith(t, ReplayOptions{Inputs: []string{tc.path}, MaxWindow: tc.maxWindow})
		switch {
		case tc.wantErr == "" && (err != nil || len(lines) != 4):
			t.Errorf("%s: %d alerts, error %v; want the log's 4", tc.name, len(lines), err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "--max-window")):
			t.Errorf("%s: error %v, want one saying %q and naming --max-window", tc.name, err, tc.wantErr)
		case tc.wantErr != "":
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

// TestReplayInterruptedSummarises: a replay whose context ends mid-file
// returns at once with what it read of that file in the summary.
func TestReplayInterruptedSummarises(t *testing.T) {
	path := distinctDecodesLog(t, 200_000, false)
	cfg, err := config.Load("../../config.hcl", config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	s, err := ReplayLogs(ctx, cfg, logrus.NewEntry(log), ReplayOptions{Inputs: []string{path}, Out: io.Discard})
	took := time.Since(start)
	t.Logf("cancelled after 500 ms, returned after %v with %d of 200,000 events", took.Round(time.Millisecond), s.Events)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ReplayLogs = %v, want context.Canceled", err)
	}
	if len(s.Inputs) != 1 || s.Inputs[0].Records == 0 || s.Events == 0 || s.Events >= 200_000 {
		t.Errorf("summary: %d inputs, events %d; want the interrupted file with part of its events", len(s.Inputs), s.Events)
	}
}
