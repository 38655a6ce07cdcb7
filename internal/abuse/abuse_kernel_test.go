package abuse

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKernelFIFOSwapDoesNotBlind needs root and the kernel audit: a user who
// swaps a FIFO under an encoder copy's path while running it must not stall
// detection (the daemon used to open the path after a stat and block in
// open for good). Afterwards a plain base64 -d alerts, once.
func TestKernelFIFOSwapDoesNotBlind(t *testing.T) {
	f := setup(t)
	d := startDaemon(t, f)
	dir := filepath.Join(f.attackDir, "swap")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chown(dir, nobodyUID, nobodyUID); err != nil {
		t.Fatal(err)
	}
	secs := "15"
	if testing.Short() {
		secs = "3"
	}
	out, err := helper(f, "swap", dir, secs).CombinedOutput()
	if err != nil {
		t.Fatalf("swap helper as nobody: %v\n%s", err, out)
	}
	t.Logf("attacker: %s", strings.TrimSpace(string(out)))
	checkPlainDecode(t, d, "fifo-"+t.Name())
}

// TestKernelBigArgvMemory needs root and the kernel audit: 300 execs of
// 1.9 MB of arguments by nobody leave the daemon's peak RSS (VmHWM) under
// 256 MiB (the process cache kept every argv whole: 13 GB after 4,000).
func TestKernelBigArgvMemory(t *testing.T) {
	const budget = 256 << 20
	f := setup(t)
	d := startDaemon(t, f)
	before := vmHWM(t, d.cmd.Process.Pid)
	if out, err := helper(f, "bigexec", "300", "1900000").CombinedOutput(); err != nil {
		t.Fatalf("bigexec helper as nobody: %v\n%s", err, out)
	}
	// The records of the last execs are still on their way.
	checkPlainDecode(t, d, "bigargv-"+t.Name())
	peak := vmHWM(t, d.cmd.Process.Pid)
	t.Logf("daemon VmHWM: %.1f MiB at start, %.1f MiB after 300 execs of 1.9 MB of arguments", mib(before), mib(peak))
	if peak >= budget {
		t.Errorf("daemon peak RSS = %.1f MiB, want under %.0f MiB", mib(peak), mib(budget))
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// TestKernelRenamedCopyInTmp needs root and the kernel audit: cp
// /usr/bin/base64 /tmp/x; /tmp/x -d alerts as a renamed encoder with the
// shipped unit's /tmp setting (PrivateTmp=yes used to make the daemon look
// in its own, empty /tmp). The same holds for any mount namespace.
func TestKernelRenamedCopyInTmp(t *testing.T) {
	f := setup(t)
	d := startDaemon(t, f)
	marker := fmt.Sprintf("renamed-%d", time.Now().UnixNano())
	copyPath := "/tmp/encwatch-abuse-" + marker
	defer os.Remove(copyPath)
	script := fmt.Sprintf("cp /usr/bin/base64 %s && %s -d /nonexistent-%s; sleep 1", copyPath, copyPath, marker)
	asNobody("sh", "-c", script).Run()
	want := []string{"data_encoder_exec", "renamed_encoder"}
	took, got := d.waitAlerts(marker, want, 15*time.Second)
	if !hasAll(got, want) {
		t.Fatalf("renamed copy %s -d raised %v within 15 s, want %v; daemon logs:\n%s", copyPath, names(got), want, tail(d.log(), 30))
	}
	t.Logf("renamed copy alerted %v after the exec", took)
	if len(got) != len(want) {
		t.Errorf("renamed copy raised %v, want each of %v once", names(got), want)
	}
	checkPlainDecode(t, d, "after-"+marker)
}

// TestKernelWriteLeaseDoesNotStall needs root and the kernel audit: a write
// lease nobody holds on their own encoder copy must not stall detection (an
// open that breaks it waited lease-break-time, 45 s, on the detection
// path).
func TestKernelWriteLeaseDoesNotStall(t *testing.T) {
	f := setup(t)
	d := startDaemon(t, f)
	marker := fmt.Sprintf("lease-%d", time.Now().UnixNano())
	cmd := helper(f, "lease", filepath.Join(f.attackDir, marker), marker, "20")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait(); os.Remove(filepath.Join(f.attackDir, marker)) }()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "leased" {
		t.Fatalf("lease helper as nobody did not take its lease (%q)", sc.Text())
	}
	checkPlainDecode(t, d, "after-"+marker)
	// The leased copy's own decode is not identified while the lease
	// holds (docs/security.md); it must not be raised twice either.
	if got := d.alertsFor("/nonexistent-" + marker); len(got) > 2 {
		t.Errorf("leased copy raised %v, want each signature at most once", names(got))
	}
}
