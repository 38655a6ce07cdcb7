package main

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// buildEncwatch builds the command into the test's temporary directory and
// returns its path, for tests that run the real binary.
func buildEncwatch(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "encwatch")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go" // where .ci/run and the Makefile find go when PATH lacks it
	}
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
