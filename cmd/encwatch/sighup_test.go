package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPReloadsAsRoot runs the real binary as an audisp plugin (no
// kernel needed; root because the daemon only loads a root-owned policy)
// and sends it SIGHUP with the policy files untouched: the command catches
// the signal and the daemon reloads, counted as ok, with trigger sighup;
// the process keeps running and exits 0 on SIGTERM.
func TestSIGHUPReloadsAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root: the daemon loads only a root-owned policy")
		}
		t.Skip("!!! SKIPPED: needs root (the daemon loads only a root-owned policy)")
	}
	bin := buildEncwatch(t)
	dir := t.TempDir()
	metrics := freeAddr(t)
	policy := filepath.Join(dir, "config.hcl")
	src := fmt.Sprintf(`
signature "enc" {
  importance  = "high"
  executables = ["base64"]
}
audit {
  mode = "audisp"
}
metrics {
  address = %q
}
sink "file" "alerts" {
  path = %q
}
`, metrics, filepath.Join(dir, "alerts.jsonl"))
	if err := os.WriteFile(policy, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", policy, "--log-format", "json")
	stdin, err := cmd.StdinPipe() // kept open: audisp mode ends when stdin does
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var logs syncBuf
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	waitMetric(t, metrics, "encwatch_healthy", 1)

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, metrics, `encwatch_reloads_total{result="ok"}`, 1)
	if got := logs.String(); !strings.Contains(got, `"trigger":"sighup"`) {
		t.Errorf("no reload with trigger sighup in the logs:\n%s", got)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the deferred Kill
		if err != nil {
			t.Errorf("exit after SIGHUP then SIGTERM: %v; logs:\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after SIGTERM; logs:\n%s", logs.String())
	}
}
