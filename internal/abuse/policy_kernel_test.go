package abuse

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/encwatch/encwatch/internal/audittest"
)

// failedReloads reads encwatch_reloads_total{result="failed"} from the
// daemon's /metrics at addr (0 before the first failure).
func failedReloads(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `encwatch_reloads_total{result="failed"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("encwatch_reloads_total{result=\"failed\"} %q: %v", v, err)
			}
			return int(n)
		}
	}
	return 0
}

// hupRefused sends SIGHUP and waits up to 10 s for the failed-reload count
// to pass before, then requires the daemon alive.
func hupRefused(t *testing.T, d *daemon, addr string, before int) {
	t.Helper()
	pid := d.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for failedReloads(t, addr) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("no failed reload counted within 10 s of SIGHUP; logs:\n%s", tail(d.log(), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("daemon gone after SIGHUP: %v; logs:\n%s", err, tail(d.log(), 20))
	}
	if n := strings.Count(d.log(), "policy reloaded"); n != 0 {
		t.Errorf("daemon logged %d successful reloads, want 0; logs:\n%s", n, tail(d.log(), 20))
	}
}

// TestKernelPolicyDirWritableByNobody needs root and the kernel audit: once
// the policy's directory is writable by others, a reload is refused and the
// running policy stays; nobody then swapping in a policy that detects
// nothing, through a symbolic link in that directory, is refused too (it
// used to be accepted).
func TestKernelPolicyDirWritableByNobody(t *testing.T) {
	f := setup(t)
	addr := freeAddr(t)
	d := startDaemonWith(t, f, addr)
	dir := filepath.Dir(d.alerts)
	conf := filepath.Join(dir, "config.hcl")

	// nobody may pass through the state directory to reach the policy's.
	if err := os.Chmod(f.stateDir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(f.stateDir, 0o700) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	before := failedReloads(t, addr)
	hupRefused(t, d, addr, before)
	checkPlainDecode(t, d, "policydir-writable")

	// A root-owned policy that is valid but detects nothing: only the
	// directory's mode stops the swap.
	decoy := filepath.Join(f.stateDir, t.Name()+"-decoy.hcl")
	quiet := strings.Replace(fmt.Sprintf(policy, audittest.Key(), addr, d.alerts),
		`executables = ["base64"]`, `executables = ["encwatch-no-such-encoder"]`, 1)
	quiet = strings.Replace(quiet, "renamed_encoder = true", "renamed_encoder = false", 1)
	if err := os.WriteFile(decoy, []byte(quiet), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(decoy) })
	if out, err := asNobody("ln", "-sfn", decoy, conf).CombinedOutput(); err != nil {
		t.Fatalf("nobody's symlink swap: %v\n%s", err, out)
	}
	if target, err := os.Readlink(conf); err != nil || target != decoy {
		t.Fatalf("policy is not nobody's link to the decoy: %q, %v", target, err)
	}
	hupRefused(t, d, addr, failedReloads(t, addr))
	checkPlainDecode(t, d, "policydir-symlink")
}

// TestKernelPolicyDeepNesting needs root and the kernel audit: a policy
// that nests 100,000 brackets, written by root, then SIGHUP: the daemon
// stays up, the reload fails and the running policy stays (the parser's
// recursion used to overflow the stack and kill the daemon).
func TestKernelPolicyDeepNesting(t *testing.T) {
	const depth = 100_000
	f := setup(t)
	addr := freeAddr(t)
	d := startDaemonWith(t, f, addr)
	conf := filepath.Join(filepath.Dir(d.alerts), "config.hcl")
	src := fmt.Sprintf(policy, audittest.Key(), addr, d.alerts) +
		"locals {\n  deep = " + strings.Repeat("[", depth) + strings.Repeat("]", depth) + "\n}\n"
	before := failedReloads(t, addr)
	if err := os.WriteFile(conf, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	hupRefused(t, d, addr, before)
	checkPlainDecode(t, d, "policy-deep-nesting")
}

// TestKernelFileSinkSymlink needs root and the kernel audit: nobody plants
// a symbolic link at the file sink's path, pointing at a root-owned file,
// while the sink's directory is writable by others; the daemon refuses to
// start, naming the directory, and once root has made the directory its
// own again, refuses still, saying the path is a symbolic link. The target
// is never touched.
func TestKernelFileSinkSymlink(t *testing.T) {
	f := setup(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	const precious = "root's data, not alerts\n"
	if err := os.WriteFile(target, []byte(precious), 0o644); err != nil {
		t.Fatal(err)
	}
	// In /dev/shm: the daemon and nobody see it, and t.TempDir's parent
	// is closed to nobody.
	sinkDir, err := os.MkdirTemp("/dev/shm", "encwatch-abuse-sink-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sinkDir) })
	if err := os.Chmod(sinkDir, 0o777); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(sinkDir, "alerts.jsonl")
	if out, err := asNobody("ln", "-s", target, link).CombinedOutput(); err != nil {
		t.Fatalf("nobody's symlink: %v\n%s", err, out)
	}
	conf := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(conf, fmt.Appendf(nil, policy, audittest.Key(), "", link), 0o600); err != nil {
		t.Fatal(err)
	}
	refusedStart(t, f, conf, []string{sinkDir, "writable by group or others"})
	if err := os.Chmod(sinkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	refusedStart(t, f, conf, []string{link, "symbolic link"})
	if b, err := os.ReadFile(target); err != nil || string(b) != precious {
		t.Errorf("symlink target after the daemon ran: %q, %v; want %q untouched", b, err, precious)
	}
}

// refusedStart runs the daemon on conf and requires it to exit non-zero
// within 20 s, before its canary, with every string of want in its output.
func refusedStart(t *testing.T, f fixture, conf string, want []string) {
	t.Helper()
	cmd := exec.Command(f.daemonBin, "run", "--config", conf)
	done := make(chan []byte, 1)
	go func() { b, _ := cmd.CombinedOutput(); done <- b }()
	select {
	case logs := <-done:
		msg := string(logs)
		if cmd.ProcessState.Success() {
			t.Errorf("daemon exited 0; logs:\n%s", tail(msg, 20))
		}
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Errorf("start-up error lacks %q; logs:\n%s", w, tail(msg, 20))
			}
		}
		if strings.Contains(msg, "canary exec seen") {
			t.Errorf("daemon went on to start; logs:\n%s", tail(msg, 20))
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Signal(syscall.SIGTERM)
		logs := <-done
		t.Errorf("daemon still running 20 s after start; logs:\n%s", tail(string(logs), 20))
	}
}
