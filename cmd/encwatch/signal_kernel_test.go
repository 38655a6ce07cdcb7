package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
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
	src := fmt.Sprintf(`
signature "enc" {
  importance  = "high"
  executables = ["base64"]
}
audit {
  rule_key = %q
}
metrics {
  address = ""
}
sink "file" "alerts" {
  path = %q
}
`, audittest.Key(), filepath.Join(dir, "alerts.jsonl"))
	if err := os.WriteFile(policy, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin, "run", "--config", policy, "--log-format", "json")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The canary line says rules are in and records flow.
			ready := make(chan bool, 1)
			var logs strings.Builder
			go func() {
				sc := bufio.NewScanner(stderr)
				seen := false
				for sc.Scan() {
					logs.WriteString(sc.Text() + "\n")
					if !seen && strings.Contains(sc.Text(), "canary exec seen") {
						seen = true
						ready <- true
					}
				}
				if !seen {
					ready <- false
				}
			}()
			select {
			case ok := <-ready:
				if !ok {
					cmd.Wait()
					t.Fatalf("daemon exited before it was ready")
				}
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("daemon not ready within 15 s")
			}
			if st, rules := audittest.State(t); st.PID != cmd.Process.Pid || len(keyed(rules)) != 2 {
				t.Fatalf("while running: audit pid %d (want %d), our rules %q", st.PID, cmd.Process.Pid, keyed(rules))
			}

			start := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("exit after %v: %v; logs:\n%s", sig, err, logs.String())
				}
				t.Logf("%v: stopped in %v", sig, time.Since(start))
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("still running 10 s after %v", sig)
			}
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
