package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fullAlert is what the throttle kernel tests read from the file sink: the
// summary's matches and count besides the process.
type fullAlert struct {
	Signature struct {
		Name string `json:"name"`
	} `json:"signature"`
	Process struct {
		PID  int      `json:"pid"`
		PPID int      `json:"ppid"`
		Args []string `json:"args"`
		Mode string   `json:"mode"`
	} `json:"process"`
	Matches []struct {
		Field string `json:"field"`
		Value string `json:"value"`
	} `json:"matches"`
	Throttled uint64 `json:"throttled"`
}

func (a fullAlert) match(field string) string {
	for _, m := range a.Matches {
		if m.Field == field {
			return m.Value
		}
	}
	return ""
}

func (d *testDaemon) readFull(t *testing.T) []fullAlert {
	t.Helper()
	return readJSONLines[fullAlert](t, d.alerts)
}

// shortWindowPolicy is the shipped policy with every throttle window cut
// to 3 s, so that a summary reaches the sink within the test's wait.
func shortWindowPolicy(t *testing.T) string {
	p := defaultPolicy(t)
	if !strings.Contains(p, `window = "1m"`) {
		t.Fatal(`config.hcl has no throttle with window = "1m" to shorten`)
	}
	return strings.ReplaceAll(p, `window = "1m"`, `window = "3s"`)
}

// runScript runs a shell script and returns the shell's pid.
func runScript(t *testing.T, script string) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run script: %v: %s", err, out)
	}
	return cmd.Process.Pid
}

// TestKernelThrottleCoalescesRepeats needs root and the kernel audit
// subsystem: one shell runs 50 identical and 50 distinct decodes within
// seconds, under the shipped policy (throttle windows shortened). Every
// distinct decode raises data_encoder_exec, the identical ones raise one,
// and an alerts_suppressed summary of the other 49 reaches the file sink.
func TestKernelThrottleCoalescesRepeats(t *testing.T) {
	d := startDaemon(t, shortWindowPolicy(t))
	dir := t.TempDir()
	for i := range 51 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%d.b64", i)), []byte("aGVsbG8K\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	same := filepath.Join(dir, "p50.b64")
	script := fmt.Sprintf(`i=0; while [ $i -lt 50 ]; do /usr/bin/base64 -d %s >/dev/null; /usr/bin/base64 -d %s/p$i.b64 >/dev/null; i=$((i+1)); done`, same, dir)
	sh := runScript(t, script)

	var got []fullAlert
	waitFor(t, "50 distinct alerts, the first identical one and the summary", func() (bool, error) {
		got = d.readFull(t)
		distinct, identical, summaries := 0, 0, 0
		for _, a := range got {
			if a.Process.PPID != sh {
				continue
			}
			switch {
			case a.Signature.Name == "data_encoder_exec" && len(a.Process.Args) == 3 && a.Process.Args[2] == same:
				identical++
			case a.Signature.Name == "data_encoder_exec":
				distinct++
			case a.Signature.Name == "alerts_suppressed":
				summaries++
			}
		}
		return distinct >= 50 && identical >= 1 && summaries >= 1, nil
	})
	distinct, identical := map[string]bool{}, 0
	var sum *fullAlert
	for i, a := range got {
		if a.Process.PPID != sh {
			continue
		}
		switch a.Signature.Name {
		case "data_encoder_exec":
			if a.Process.Mode != "decode" {
				t.Errorf("data_encoder_exec for %q has process.mode %q, want decode", a.Process.Args, a.Process.Mode)
			}
			if a.Process.Args[2] == same {
				identical++
			} else {
				distinct[a.Process.Args[2]] = true
			}
		case "alerts_suppressed":
			if a.match("suppressed.signature") == "data_encoder_exec" {
				sum = &got[i]
			}
		}
	}
	if len(distinct) != 50 || identical != 1 {
		t.Errorf("got %d distinct and %d identical data_encoder_exec alerts, want 50 and 1", len(distinct), identical)
	}
	if sum == nil {
		t.Fatalf("no alerts_suppressed summary for data_encoder_exec in the sink")
	}
	wantArgv := "/usr/bin/base64 -d " + same
	if sum.Throttled != 49 || sum.match("suppressed.count") != "49" || sum.match("suppressed.first_argv") != wantArgv || sum.match("suppressed.last_argv") != wantArgv {
		t.Errorf("summary throttled %d, matches %+v; want 49 held of %q", sum.Throttled, sum.Matches, wantArgv)
	}
	if sum.Process.Mode != "decode" {
		t.Errorf("summary process.mode = %q, want decode", sum.Process.Mode)
	}
}

// TestKernelDecoysThenPayload needs root and the kernel audit subsystem: a
// script runs decoy decodes, then a different payload, under the shipped
// policy; the payload raises its alert. Five inline python decodes fill
// what was interpreter_inline_decode's old max of 5 per ancestry; twelve
// base64 decodes exceed data_encoder_exec's old max of 10 per parent. An
// encode run from the same script alerts too, with process.mode "encode".
func TestKernelDecoysThenPayload(t *testing.T) {
	d := startDaemon(t, defaultPolicy(t))
	dir := t.TempDir()
	for _, f := range []string{"decoy.b64", "payload.b64"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("aGVsbG8K\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	decoy := `import base64;base64.b64decode("aGVsbG8K")`
	inline := `import base64;exec(base64.b64decode("cHJpbnQoImVuY3dhdGNoLXBheWxvYWQiKQ=="))` // print("encwatch-payload")
	script := fmt.Sprintf(`for i in 1 2 3 4 5; do /usr/bin/python3 -c '%[2]s'; done; /usr/bin/python3 -c '%[3]s' >/dev/null
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do base64 -d %[1]s/decoy.b64 >/dev/null; done; base64 -d %[1]s/payload.b64 >/dev/null; echo hello | base64 >/dev/null`, dir, decoy, inline)
	sh := runScript(t, script)
	payload := filepath.Join(dir, "payload.b64")
	modes := map[string]string{}
	inlinePayload := false
	waitFor(t, "the payloads' and the encode run's alerts", func() (bool, error) {
		for _, a := range d.readFull(t) {
			if a.Process.PPID != sh {
				continue
			}
			switch a.Signature.Name {
			case "data_encoder_exec":
				modes[strings.Join(a.Process.Args[1:], " ")] = a.Process.Mode
			case "interpreter_inline_decode":
				inlinePayload = inlinePayload || (len(a.Process.Args) == 3 && a.Process.Args[2] == inline)
			}
		}
		_, p := modes["-d "+payload]
		_, e := modes[""]
		return p && e && inlinePayload, nil
	})
	if m := modes["-d "+payload]; m != "decode" {
		t.Errorf("payload alert process.mode = %q, want decode", m)
	}
	if m := modes[""]; m != "encode" {
		t.Errorf("`echo hello | base64` alert process.mode = %q, want encode", m)
	}
}
