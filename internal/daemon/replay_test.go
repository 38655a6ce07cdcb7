package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

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
