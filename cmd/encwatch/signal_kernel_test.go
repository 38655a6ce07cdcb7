package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/encwatch/encwatch/internal/audittest"
)

// TestKernelSignalsStopCleanly needs root and the kernel audit subsystem: the
// built binary, running as the audit daemon, exits 0 on SIGTERM and on SIGINT
// with its rules removed, the audit pid released and the enabled flag as it
// was found.
func TestKernelSignalsStopCleanly(t *testing.T) {
	audittest.Setup(t)
	found, _ := audittest.State(t)
	dir := t.TempDir()
	bin := buildEncwatch(t)
	policy := filepath.Join(dir, "config.hcl")
	writePolicy(t, policy, encSignature+fmt.Sprintf(`
audit {
  rule_key = %q
}
metrics {
  address = ""
}
sink "file" "alerts" {
  path = %q
}
`, audittest.Key(), filepath.Join(dir, "alerts.jsonl")))

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			d := &daemonProc{args: []string{"run", "--config", policy, "--log-format", "json"}}
			d.start(t, bin)
			defer d.kill()
			// The canary line says rules are in and records flow.
			d.waitLog(t, "canary exec seen", 15*time.Second)
			if st, rules := audittest.State(t); st.PID != d.cmd.Process.Pid || len(keyed(rules)) != 2 {
				t.Fatalf("while running: audit pid %d (want %d), our rules %q", st.PID, d.cmd.Process.Pid, keyed(rules))
			}

			start := time.Now()
			d.signal(t, sig)
			err, exited := d.wait(10 * time.Second)
			if !exited {
				t.Fatalf("still running 10 s after %v; logs:\n%s", sig, d.logs.String())
			}
			if err != nil {
				t.Errorf("exit after %v: %v; logs:\n%s", sig, err, d.logs.String())
			}
			t.Logf("%v: stopped in %v", sig, time.Since(start))
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v to stop after %v, want under 5 s", took, sig)
			}
			st, rules := audittest.State(t)
			if left := keyed(rules); len(left) != 0 {
				t.Errorf("rules left after %v: %q", sig, left)
			}
			if st.PID != 0 || st.Enabled != found.Enabled || st.BacklogLimit != found.BacklogLimit {
				t.Errorf("after %v: pid %d enabled %d backlog_limit %d, want 0, %d, %d", sig, st.PID, st.Enabled, st.BacklogLimit, found.Enabled, found.BacklogLimit)
			}
		})
	}
}

// keyed returns the rules that carry this test's key.
func keyed(rules []string) []string {
	var out []string
	for _, r := range rules {
		if strings.Contains(r, "-k "+audittest.Key()) || strings.Contains(r, "key="+audittest.Key()) {
			out = append(out, r)
		}
	}
	return out
}
