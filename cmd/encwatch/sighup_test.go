package main

import (
	"fmt"
	"path/filepath"
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
	rootOnly(t)
	bin := buildEncwatch(t)
	dir := t.TempDir()
	metrics := freeAddr(t)
	policy := filepath.Join(dir, "config.hcl")
	writePolicy(t, policy, audispPolicy(metrics, fmt.Sprintf(`
sink "file" "alerts" {
  path = %q
}
`, filepath.Join(dir, "alerts.jsonl"))))
	d := &daemonProc{args: []string{"run", "--config", policy, "--log-format", "json"}}
	d.start(t, bin)
	defer d.kill()
	waitMetric(t, metrics, "encwatch_healthy", 1)

	d.signal(t, syscall.SIGHUP)
	waitMetric(t, metrics, `encwatch_reloads_total{result="ok"}`, 1)
	// The counter can move before the log line has come through the pipe.
	d.waitLog(t, `"trigger":"sighup"`, 10*time.Second)

	d.signal(t, syscall.SIGTERM)
	err, exited := d.wait(10 * time.Second)
	if !exited {
		t.Fatalf("still running 10 s after SIGTERM; logs:\n%s", d.logs.String())
	}
	if err != nil {
		t.Errorf("exit after SIGHUP then SIGTERM: %v; logs:\n%s", err, d.logs.String())
	}
}
