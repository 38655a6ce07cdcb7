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

// longLog writes n distinct base64 decodes, 1 ms apart: a replay of a few
// seconds.
func longLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "long.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		msg := fmt.Sprintf("msg=audit(%d.%03d:%d):", 1795759259+i/1000, i%1000, 100+i)
		fmt.Fprintf(w, "type=SYSCALL %s arch=c000003e syscall=59 success=yes exit=0 items=1 ppid=2810 pid=%d auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm=\"base64\" exe=\"/usr/bin/base64\" key=\"k\"\n", msg, 3000+i%30000)
		fmt.Fprintf(w, "type=EXECVE %s argc=3 a0=\"base64\" a1=\"-d\" a2=\"f%d\"\n", msg, i)
		fmt.Fprintf(w, "type=PROCTITLE %s proctitle=62617365363400\n", msg)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

// TestReplaySignalEndsWithSummary: SIGTERM (and SIGINT) during a long
// replay end it within a second, with the summary of what was read on
// stderr.
func TestReplaySignalEndsWithSummary(t *testing.T) {
	bin := buildEncwatch(t)
	log := longLog(t, 300_000)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd := exec.Command(bin, "replay", "--config", "../../config.hcl", log)
		var stderr syncBuf
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		time.Sleep(time.Second) // a second into the replay
		sent := time.Now()
		cmd.Process.Signal(sig)
		select {
		case err := <-done:
			took := time.Since(sent)
			t.Logf("%v: replay ended %v after the signal (%v)", sig, took.Round(time.Millisecond), err)
			if took > 5*time.Second {
				t.Errorf("%v: replay took %v to end, want about a second at most", sig, took)
			}
			out := stderr.String()
			if !strings.Contains(out, "replay summary") || !strings.Contains(out, "  events ") {
				t.Errorf("%v: no summary on stderr:\n%s", sig, out)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%v: replay still running 20 s after the signal; stderr:\n%s", sig, stderr.String())
		}
	}
}

// TestReplayHostileDirectoryBinary: `encwatch replay DIR` over a FIFO, a
// symbolic link to /dev/zero and a good log prints the good log's alerts,
// two warnings naming the others, and ends in under 5 s (it used to hang
// for ever, ignoring SIGTERM).
func TestReplayHostileDirectoryBinary(t *testing.T) {
	bin := buildEncwatch(t)
	dir := audittest.HostileLogDir(t, "../../testdata/replay-audit.log")
	cmd := exec.Command(bin, "replay", "--config", "../../config.hcl", dir)
	var stdout, stderr syncBuf
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Logf("replay ended after %v (%v)", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("replay of the directory still running after 5 s; stderr:\n%s", stderr.String())
	}
	if n := strings.Count(stdout.String(), "\n"); n != 4 {
		t.Errorf("%d alerts, want the good log's 4", n)
	}
	errOut := stderr.String()
	warnings := 0
	for _, l := range strings.Split(errOut, "\n") {
		if strings.Contains(l, "level=warning") {
			warnings++
		}
	}
	if warnings != 2 || !strings.Contains(errOut, "audit.log.1 is a FIFO") || !strings.Contains(errOut, "audit.log.2 is a symbolic link") {
		t.Errorf("want two warnings naming audit.log.1 and audit.log.2; stderr:\n%s", errOut)
	}
}
