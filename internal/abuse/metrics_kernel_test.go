package abuse

import (
	"fmt"
	"net"
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

// freeAddr is a loopback address whose port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestKernelMetricsPortTaken needs root and the kernel audit: when nobody
// binds the metrics address first, the daemon refuses to start, saying
// which address is taken and by whom (it used to start, then lose its
// reload watcher and watchdog, and die on the next SIGHUP).
func TestKernelMetricsPortTaken(t *testing.T) {
	f := setup(t)
	addr := freeAddr(t)
	startHelper(t, f, "listening", "listen", addr, "25")
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.hcl")
	alerts := filepath.Join(dir, "alerts.jsonl")
	if err := os.WriteFile(conf, fmt.Appendf(nil, policy, audittest.Key(), addr, alerts), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(f.daemonBin, "run", "--config", conf)
	done := make(chan []byte, 1)
	go func() { b, _ := cmd.CombinedOutput(); done <- b }()
	select {
	case logs := <-done:
		msg := string(logs)
		if cmd.ProcessState.Success() {
			t.Errorf("daemon exited 0 with the metrics port taken; logs:\n%s", tail(msg, 20))
		}
		for _, want := range []string{addr, "already in use", "uid 65534"} {
			if !strings.Contains(msg, want) {
				t.Errorf("start-up error lacks %q; logs:\n%s", want, tail(msg, 20))
			}
		}
		if strings.Contains(msg, "READY") || strings.Contains(msg, "canary exec seen") {
			t.Errorf("daemon went on to start; logs:\n%s", tail(msg, 20))
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Signal(syscall.SIGTERM)
		logs := <-done
		t.Fatalf("daemon still running 20 s after start with its metrics port taken by nobody; logs:\n%s", tail(string(logs), 20))
	}
}

// TestKernelMetricsIdleConnections needs root and the kernel audit: 1,000
// idle keep-alive connections to /metrics by nobody leave the daemon's
// descriptors bounded, and meanwhile a plain base64 -d still alerts and a
// SIGHUP reload still succeeds (they used to exhaust the descriptors).
func TestKernelMetricsIdleConnections(t *testing.T) {
	const conns, maxFDs = 1000, 200
	f := setup(t)
	addr := freeAddr(t)
	d := startDaemonWith(t, f, addr)
	pid := d.cmd.Process.Pid
	// The daemon runs under unshare/sh/setpriv, which exec it: same pid.
	t.Logf("attacker: %s", startHelper(t, f, "", "keepalive", addr, strconv.Itoa(conns), "15"))
	fds := countFDs(t, pid)
	t.Logf("daemon descriptors with %d idle connections attempted: %d", conns, fds)
	if fds > maxFDs {
		t.Errorf("daemon holds %d descriptors, want at most %d", fds, maxFDs)
	}
	checkPlainDecode(t, d, "idleconns-"+t.Name())
	before := strings.Count(d.log(), "policy reloaded")
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(d.log(), "policy reloaded") == before {
		if time.Now().After(deadline) {
			t.Fatalf("no successful reload within 10 s of SIGHUP; logs:\n%s", tail(d.log(), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("daemon gone after SIGHUP: %v", err)
	}
}

// countFDs is how many descriptors pid has open.
func countFDs(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// holdPort listens on addr (args[0]) for args[1] seconds, printing
// "listening" once bound.
func holdPort(args []string) error {
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println("listening")
	secs, _ := strconv.Atoi(args[1])
	time.Sleep(time.Duration(secs) * time.Second)
	return nil
}

// idleConns opens args[1] connections to addr (args[0]), sends one
// keep-alive GET /metrics on each, and holds them idle for args[2]
// seconds. It prints how many it opened once done opening.
func idleConns(args []string) error {
	n, _ := strconv.Atoi(args[1])
	secs, _ := strconv.Atoi(args[2])
	var held []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", args[0], time.Second)
		if err != nil {
			continue
		}
		fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: keep-alive\r\n\r\n", args[0])
		held = append(held, c)
	}
	// Let the daemon answer (or close) them all before the count.
	time.Sleep(2 * time.Second)
	fmt.Printf("opened %d connections\n", len(held))
	time.Sleep(time.Duration(secs) * time.Second)
	return nil
}
