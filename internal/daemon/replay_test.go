package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/internal/config"
)

// TestReplayCapturedLog replays an audit.log captured from this kernel (auditd
// format: no EOE records) through the default policy and checks the alerts.
func TestReplayCapturedLog(t *testing.T) {
	cfg, err := config.Load("../../config.hcl", config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(io.Discard)
	if err := Replay(context.Background(), cfg, logrus.NewEntry(log), []string{"../../testdata/replay-audit.log"}, &out); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	type row struct {
		sig, importance string
		serial          uint64
		args            string
	}
	want := []row{
		{"data_encoder_exec", "high", 6, "/usr/bin/base64 --decode /etc/hostname"},
		{"interpreter_inline_decode", "high", 11, "/bin/sh -c echo ZWNobyBoZWxsbwo= | base64 -d | sh"},
		{"data_encoder_exec", "high", 12, "base64 -d"},
		{"decoder_piped_to_interpreter", "critical", 13, "sh"},
	}
	var got []row
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var a alert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("alert line is not JSON: %v: %q", err, line)
		}
		got = append(got, row{a.Signature.Name, a.Signature.Importance, a.Audit.Serial, strings.Join(a.Process.Args, " ")})
	}
	if len(got) != len(want) {
		t.Fatalf("Replay gave %d alerts, want %d:\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("alert %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// gatedWriter holds its first Write until open is closed, then counts lines.
type gatedWriter struct {
	open  chan struct{}
	lines atomic.Int64
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	<-w.open
	w.lines.Add(int64(bytes.Count(p, []byte("\n"))))
	return len(p), nil
}

// TestReplayLosesNoAlertToASlowWriter replays more alerting events than a
// sink queue holds while the output is stalled: forensic replay must wait for
// its writer, not drop.
func TestReplayLosesNoAlertToASlowWriter(t *testing.T) {
	// No throttles, and n above the default safety cap: a replay has no
	// real-time flood to cap, so every event is an alert of its own.
	cfg, err := config.Parse("encoder.hcl", []byte(encoderPolicy))
	if err != nil {
		t.Fatal(err)
	}
	captured, err := os.ReadFile("../../testdata/replay-audit.log")
	if err != nil {
		t.Fatal(err)
	}
	var event []string // the records of serial 6: /usr/bin/base64 --decode /etc/hostname
	for _, l := range strings.Split(string(captured), "\n") {
		if strings.Contains(l, ":6): ") {
			event = append(event, l)
		}
	}
	const n = 3000
	var log strings.Builder
	for i := range n {
		for _, l := range event {
			l = strings.Replace(l, ":6): ", fmt.Sprintf(":%d): ", 1000+i), 1)
			log.WriteString(l + "\n")
		}
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(log.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	w := &gatedWriter{open: make(chan struct{})}
	time.AfterFunc(200*time.Millisecond, func() { close(w.open) })
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	if err := Replay(context.Background(), cfg, logrus.NewEntry(quiet), []string{path}, w); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if got := w.lines.Load(); got != n {
		t.Errorf("replay wrote %d alerts, want %d: none may be dropped while the writer is slow", got, n)
	}
}
