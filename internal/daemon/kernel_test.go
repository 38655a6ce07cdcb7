package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/internal/audittest"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/input"
)

// testDaemon is a daemon.Run started by a kernel test, writing alerts as JSON
// lines into a file sink.
type testDaemon struct {
	alerts string // the file sink's path
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
	found  input.Status // the kernel status before the daemon started
	dir    string       // holds config.hcl, which a test may rewrite
	path   string       // config.hcl
}

// syncBuffer is a bytes.Buffer the daemon's logger and the test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon runs the daemon against the real kernel with policy (HCL, with
// the sinks and audit block left out: the harness adds a file sink and the
// test's own rule key) and waits until it holds the audit pid and its rules.
func startDaemon(t *testing.T, policy string) *testDaemon {
	t.Helper()
	return startDaemonWith(t, policy, "", Options{})
}

// startDaemonWith is startDaemon with extra attributes for the audit block
// and Run options.
//
// prepare, if given, runs once the test holds the kernel lock and the audit
// state has been snapshotted (and so will be restored), before the daemon
// starts.
func startDaemonWith(t *testing.T, policy, auditAttrs string, opts Options, prepare ...func()) *testDaemon {
	t.Helper()
	audittest.Setup(t)
	found, _ := kernelState(t)
	for _, f := range prepare {
		f()
	}
	dir := t.TempDir()
	d := &testDaemon{found: found, alerts: filepath.Join(dir, "alerts.jsonl"), done: make(chan error, 1), logs: &syncBuffer{}}
	d.dir = dir
	src := d.source(policy, audittest.Key(), auditAttrs)
	path := filepath.Join(dir, "config.hcl")
	d.path = path
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.LoadOptions{RequireRootOwned: true})
	if err != nil {
		t.Fatalf("load test policy: %v", err)
	}
	l := logrus.New()
	l.SetOutput(d.logs)
	l.SetFormatter(&logrus.JSONFormatter{})
	l.SetLevel(logrus.DebugLevel) // tests wait on debug lines, e.g. each tamper check
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.done <- Run(ctx, cfg, logrus.NewEntry(l), opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			t.Errorf("daemon did not stop within 10 s after the test; logs:\n%s", d.logs)
		}
	})
	// An owner holds the audit pid; a multicast reader never takes it, so
	// there the canary's log line says the kernel-to-pipeline path works.
	what := "the daemon to register as audit pid and install its rules"
	if opts.Mode == "multicast" {
		what = "the multicast daemon to install its rules and see its canary"
	}
	waitFor(t, what, func() (bool, error) {
		select {
		case err := <-d.done:
			return false, fmt.Errorf("daemon exited early: %v; logs:\n%s", err, d.logs)
		default:
		}
		st, rules := kernelState(t)
		if len(keyRules(rules, audittest.Key())) != 2 {
			return false, nil
		}
		if opts.Mode == "multicast" {
			if strings.Contains(d.logs.String(), "CANARY EXEC NOT SEEN") {
				return false, fmt.Errorf("multicast canary not seen; logs:\n%s", d.logs)
			}
			return strings.Contains(d.logs.String(), "canary exec seen"), nil
		}
		return st.PID == os.Getpid(), nil
	})
	return d
}

// source is the daemon's policy file: policy with an audit block keyed
// key and holding auditAttrs, no metrics endpoint and the file sink.
func (d *testDaemon) source(policy, key, auditAttrs string) string {
	return fmt.Sprintf("%s\naudit {\n  rule_key = %q\n%s\n}\nmetrics {\n  address = \"\"\n}\nsink \"file\" \"test\" {\n  path = %q\n}\n",
		policy, key, auditAttrs, d.alerts)
}

// stop cancels the daemon and returns how long Run took to come back.
func (d *testDaemon) stop(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	d.cancel()
	select {
	case err := <-d.done:
		d.done <- err // for the cleanup
		if err != nil {
			t.Errorf("daemon.Run returned %v; logs:\n%s", err, d.logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("daemon did not stop within 10 s of cancellation; logs:\n%s", d.logs)
	}
	return time.Since(start)
}

// alert is the part of a JSON alert line the kernel tests look at.
type alert struct {
	ID        string `json:"id"`
	Signature struct {
		Name       string `json:"name"`
		Importance string `json:"importance"`
	} `json:"signature"`
	Process struct {
		PID  int      `json:"pid"`
		PPID int      `json:"ppid"`
		Exe  string   `json:"exe"`
		Name string   `json:"name"`
		Args []string `json:"args"`
		User string   `json:"user"`
	} `json:"process"`
	Ancestry []struct {
		PID  int      `json:"pid"`
		Exe  string   `json:"exe"`
		Args []string `json:"args"`
	} `json:"ancestry"`
	Audit struct {
		Serial uint64 `json:"serial"`
		Key    string `json:"key"`
	} `json:"audit"`
}

// readAlerts parses every line of the file sink; a line that is not one JSON
// object fails the test.
func (d *testDaemon) readAlerts(t *testing.T) []alert {
	t.Helper()
	return readJSONLines[alert](t, d.alerts)
}

// readJSONLines parses every complete line of the file at path as a T; none
// if the file does not exist yet. A line the sink is still writing (no
// newline yet) is left for the next read; a complete line that is not one
// JSON object fails the test.
func readJSONLines[T any](t *testing.T, path string) []T {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	var out []T
	for line := range bytes.Lines(b) {
		var v T
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("alert line is not JSON: %v: %q", err, line)
		}
		out = append(out, v)
	}
	return out
}

// waitAlerts waits until pred accepts the alerts written so far.
func (d *testDaemon) waitAlerts(t *testing.T, what string, pred func([]alert) bool) []alert {
	t.Helper()
	var got []alert
	waitFor(t, what, func() (bool, error) {
		got = d.readAlerts(t)
		return pred(got), nil
	})
	return got
}

// waitFor polls cond until it holds, failing the test after 15 s. It waits for
// an outcome; it does not measure speed.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func kernelState(t *testing.T) (input.Status, []string) {
	t.Helper()
	return audittest.State(t)
}

func keyRules(rules []string, key string) []string {
	var out []string
	for _, r := range rules {
		if strings.Contains(r, "-k "+key) || strings.Contains(r, "key="+key) {
			out = append(out, r)
		}
	}
	return out
}

const encoderPolicy = `
signature "data_encoder_exec" {
  description = "Data encoder execution"
  category    = "Execution"
  method      = "Command and Scripting Interpreter"
  importance  = "high"
  mitre       = ["T1059", "T1027", "T1132"]
  executables = ["base64", "base32", "basenc"]
}
`

// TestKernelDaemonAlertsOnBase64 needs root and the kernel audit subsystem: it
// runs the daemon, executes /usr/bin/base64 with a unique argument, finds
// exactly that alert in the file sink, then stops the daemon and checks the
// kernel is left as it was found.
func TestKernelDaemonAlertsOnBase64(t *testing.T) {
	d := startDaemon(t, encoderPolicy)
	st0 := d.found

	input := filepath.Join(t.TempDir(), fmt.Sprintf("marker-%d.txt", time.Now().UnixNano()))
	if err := os.WriteFile(input, []byte("encwatch kernel test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command("/usr/bin/base64", "--wrap=0", input)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run base64: %v: %s", err, out)
	}
	want := []string{"/usr/bin/base64", "--wrap=0", input}
	got := d.waitAlerts(t, "the alert for our base64 run", func(as []alert) bool {
		for _, a := range as {
			if a.Process.PID == cmd.Process.Pid {
				return true
			}
		}
		return false
	})
	t.Logf("exec to alert in the file sink: %v", time.Since(start))

	var mine []alert
	for _, a := range got {
		if a.Process.PID == cmd.Process.Pid {
			mine = append(mine, a)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("got %d alerts for pid %d, want exactly 1: %+v", len(mine), cmd.Process.Pid, mine)
	}
	a := mine[0]
	if a.Signature.Name != "data_encoder_exec" || a.Signature.Importance != "high" {
		t.Errorf("signature = %+v, want data_encoder_exec/high", a.Signature)
	}
	if a.Process.Exe != "/usr/bin/base64" || a.Process.Name != "base64" {
		t.Errorf("process exe, name = %q, %q, want /usr/bin/base64, base64", a.Process.Exe, a.Process.Name)
	}
	if strings.Join(a.Process.Args, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("process.args = %q, want %q", a.Process.Args, want)
	}
	if a.Process.User != "root" {
		t.Errorf("process.user = %q, want root (the test runs base64 as uid 0)", a.Process.User)
	}
	if a.Process.PPID != os.Getpid() {
		t.Errorf("process.ppid = %d, want the test's pid %d", a.Process.PPID, os.Getpid())
	}
	if a.Audit.Key != audittest.Key() || a.Audit.Serial == 0 || a.ID == "" {
		t.Errorf("audit = %+v, id %q: want key %q, a serial and an id", a.Audit, a.ID, audittest.Key())
	}

	if took := d.stop(t); took > 5*time.Second {
		t.Errorf("daemon took %v to stop, want under 5 s", took)
	}
	st, rules := kernelState(t)
	if left := keyRules(rules, audittest.Key()); len(left) != 0 {
		t.Errorf("rules left behind after stop: %q", left)
	}
	if st.PID != 0 {
		t.Errorf("audit pid after stop = %d, want 0 (released)", st.PID)
	}
	if st.Enabled != st0.Enabled || st.BacklogLimit != st0.BacklogLimit {
		t.Errorf("after stop enabled=%d backlog_limit=%d, want as found: %d, %d",
			st.Enabled, st.BacklogLimit, st0.Enabled, st0.BacklogLimit)
	}
}
