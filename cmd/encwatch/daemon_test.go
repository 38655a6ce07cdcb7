package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/encwatch/encwatch/internal/audittest"
)

// Helpers of the tests that run the built binary as a daemon.

// encSignature is the signature the daemon tests raise alerts with: an
// exec of base64 (as in b64Events).
const encSignature = `
signature "enc" {
  importance  = "high"
  executables = ["base64"]
}
`

// audispPolicy is a policy of encSignature for the daemon in audisp mode
// (records on stdin) serving metrics on address, with the given sinks.
func audispPolicy(address, sinks string) string {
	return encSignature + fmt.Sprintf(`
audit {
  mode = "audisp"
}
metrics {
  address = %q
}
`, address) + sinks
}

// daemonProc is an encwatch process a test runs: an agent (audisp mode,
// records on stdin, kept open because audisp mode ends when stdin does),
// the kernel audit daemon or a collector. Its stderr is kept in logs.
type daemonProc struct {
	args  []string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	logs  syncBuf
	done  chan struct{} // closed when the process has exited
	err   error         // how it exited, once done is closed
}

func (p *daemonProc) start(t *testing.T, bin string) {
	t.Helper()
	p.cmd = exec.Command(bin, p.args...)
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	p.logs = syncBuf{}
	p.cmd.Stderr = &p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	p.done = done
	go func() { p.err = p.cmd.Wait(); close(done) }()
}

// kill is kill -9.
func (p *daemonProc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stop ends the process cleanly (SIGINT), or kills it when it is still
// running 15 s later.
func (p *daemonProc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	if _, exited := p.wait(15 * time.Second); !exited {
		p.kill()
	}
}

// signal sends sig to the process.
func (p *daemonProc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// wait waits up to within for the process to exit; exited says whether it
// did, and err is then how.
func (p *daemonProc) wait(within time.Duration) (err error, exited bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(within):
		return nil, false
	}
}

// waitLog waits up to within for a line of the logs to contain s; the test
// fails (and the process is killed) if it exits or the time runs out first.
func (p *daemonProc) waitLog(t *testing.T, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.logs.String(), s) {
		select {
		case <-p.done:
			t.Fatalf("daemon exited (%v) before it logged %q; logs:\n%s", p.err, s, p.logs.String())
		case <-time.After(20 * time.Millisecond): // polling the logs
		}
		if time.Now().After(deadline) {
			p.kill()
			t.Fatalf("daemon did not log %q within %s; logs:\n%s", s, within, p.logs.String())
		}
	}
}

// writePolicy writes a root-owned policy file only root can read.
func writePolicy(t *testing.T, path, src string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rootOnly skips the test (fails it under CI) without root: the daemon
// loads only a root-owned policy.
func rootOnly(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root: the daemon loads only a root-owned policy")
		}
		t.Skip("!!! SKIPPED: needs root (the daemon loads only a root-owned policy)")
	}
}

// needRoot is rootOnly, and takes the machine-wide lock of the kernel
// tests: the fleet tests use no kernel, but they keep both cores busy,
// which would upset the timing of kernel tests running beside them in
// other packages.
func needRoot(t *testing.T) {
	t.Helper()
	rootOnly(t)
	audittest.Lock(t)
}

// b64Events returns the records of n base64 execs with serials from
// first on, copies of the captured exec of the replay log.
func b64Events(t *testing.T, first, n int) string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/replay-audit.log")
	if err != nil {
		t.Fatal(err)
	}
	var event []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, ":6): ") {
			event = append(event, l)
		}
	}
	var out strings.Builder
	for i := range n {
		for _, l := range event {
			out.WriteString(strings.Replace(l, ":6): ", fmt.Sprintf(":%d): ", first+i), 1) + "\n")
		}
	}
	return out.String()
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitMetric polls /metrics until the sample named by series reaches want.
func waitMetric(t *testing.T, addr, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
					last = v
					if f, err := strconv.ParseFloat(v, 64); err == nil && f >= want {
						resp.Body.Close()
						return
					}
				}
			}
			resp.Body.Close()
		}
		time.Sleep(20 * time.Millisecond) // polling the endpoint
	}
	t.Fatalf("%s did not reach %v (last %q)", series, want, last)
}

// syncBuf is a buffer a child's stderr copier and the test can share.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
