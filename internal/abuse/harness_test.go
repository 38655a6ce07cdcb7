package abuse

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/encwatch/encwatch/internal/audittest"
)

// helperEnv, when set, makes the test binary run one attacker helper
// (helpers_test.go) instead of the tests.
const helperEnv = "ENCWATCH_ABUSE_HELPER"

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		if err := runHelper(h, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	for _, dir := range []string{shared.stateDir, filepath.Dir(shared.attackDir)} {
		if dir != "" && dir != "." {
			os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// unit is what the harness takes from the shipped unit file.
type unit struct {
	caps       []string // CapabilityBoundingSet=, as setpriv names them
	privateTmp bool
	env        []string // Environment=
}

// shippedUnit reads packaging/encwatch.service.
func shippedUnit(t *testing.T) unit {
	t.Helper()
	b, err := os.ReadFile("../../packaging/encwatch.service")
	if err != nil {
		t.Fatalf("read the shipped unit: %v", err)
	}
	var u unit
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		switch {
		case !ok || strings.HasPrefix(k, "#"):
		case k == "CapabilityBoundingSet":
			for c := range strings.FieldsSeq(v) {
				u.caps = append(u.caps, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
			}
		case k == "PrivateTmp":
			u.privateTmp = v == "yes" || v == "true"
		case k == "Environment":
			u.env = append(u.env, strings.Fields(v)...)
		}
	}
	if len(u.caps) == 0 {
		t.Fatal("the shipped unit sets no CapabilityBoundingSet=")
	}
	return u
}

// fixture is what every test shares: the daemon binary, the helper binary
// that nobody can run, and the directory in /dev/shm where the attacker
// works.
type fixture struct {
	daemonBin string
	helperBin string
	attackDir string // owned by nobody
	stateDir  string // root only: policy and alerts, outside /tmp
}

var (
	fixtureOnce sync.Once
	shared      fixture
	fixtureErr  error
)

// nobodyUID is the unprivileged attacker.
const nobodyUID = 65534

// setup takes the kernel test lock (audittest.Setup: kernel tests of other
// packages wait, and the daemon build's load does not disturb their
// timing), then builds the fixture once.
func setup(t *testing.T) fixture {
	t.Helper()
	audittest.Setup(t)
	fixtureOnce.Do(func() { shared, fixtureErr = newFixture() })
	if fixtureErr != nil {
		t.Fatalf("abuse fixture: %v", fixtureErr)
	}
	return shared
}

func newFixture() (fixture, error) {
	var f fixture
	var err error
	// The daemon's state lives in /run: its own /tmp is a private tmpfs.
	if f.stateDir, err = os.MkdirTemp("/run", "encwatch-abuse-"); err != nil {
		return f, err
	}
	// The attacker works where both it and the daemon see the same files
	// (PrivateTmp hides /tmp and /var/tmp, not /dev/shm), so that an
	// attack on how the daemon opens them reaches it.
	if f.attackDir, err = os.MkdirTemp("/dev/shm", "encwatch-abuse-"); err != nil {
		return f, err
	}
	if err := os.Chmod(f.attackDir, 0o755); err != nil {
		return f, err
	}
	f.daemonBin = os.Getenv("ENCWATCH_ABUSE_BIN")
	if f.daemonBin == "" {
		f.daemonBin = filepath.Join(f.stateDir, "encwatch")
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = "/usr/local/go/bin/go" // where .ci/run finds go when PATH lacks it
		}
		if out, err := exec.Command(goBin, "build", "-o", f.daemonBin, "../../cmd/encwatch").CombinedOutput(); err != nil {
			return f, fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return f, err
	}
	b, err := os.ReadFile(self)
	if err != nil {
		return f, err
	}
	f.helperBin = filepath.Join(f.attackDir, "helper")
	if err := os.WriteFile(f.helperBin, b, 0o755); err != nil {
		return f, err
	}
	work := filepath.Join(f.attackDir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		return f, err
	}
	f.attackDir = work
	return f, os.Chown(work, nobodyUID, nobodyUID)
}

// daemon is one running encwatch.
type daemon struct {
	cmd    *exec.Cmd
	alerts string
	mu     sync.Mutex
	logs   strings.Builder
}

// policy is the test policy: an encoder that decodes, by name or by what
// the file is, and a renamed copy of one.
const policy = `
signature "data_encoder_exec" {
  importance  = "high"
  executables = ["base64"]
  mode        = "decode"
}
signature "renamed_encoder" {
  importance      = "high"
  renamed_encoder = true
  mode            = "decode"
}
audit {
  rule_key = %q
}
metrics {
  address = %q
}
sink "file" "alerts" {
  path = %q
}
`

// startDaemon runs the daemon as the shipped unit would see the system: a
// private tmpfs on /tmp and /var/tmp when the unit sets PrivateTmp=yes, the
// unit's capability bounding set and Environment=, no new privileges. It
// waits for the canary and stops the daemon when t ends; setup took the
// snapshot that restores the kernel's audit state.
func startDaemon(t *testing.T, f fixture) *daemon {
	t.Helper()
	return startDaemonWith(t, f, "")
}

// startDaemonWith is startDaemon with the metrics endpoint on metricsAddr
// ("" serves none).
func startDaemonWith(t *testing.T, f fixture, metricsAddr string) *daemon {
	t.Helper()
	return startDaemonPolicy(t, f, metricsAddr, "")
}

// startDaemonPolicy is startDaemonWith with extra appended to the test
// policy: a test that needs a condition older builds lack asks for it, so
// that the others still run against them (ENCWATCH_ABUSE_BIN).
func startDaemonPolicy(t *testing.T, f fixture, metricsAddr, extra string) *daemon {
	t.Helper()
	return startDaemonText(t, f, func(alerts string) []byte {
		return append(fmt.Appendf(nil, policy, audittest.Key(), metricsAddr, alerts), extra...)
	})
}

// startDaemonText is startDaemon with the policy text conf returns for the
// file sink's path.
func startDaemonText(t *testing.T, f fixture, conf func(alerts string) []byte) *daemon {
	t.Helper()
	u := shippedUnit(t)
	dir, err := os.MkdirTemp(f.stateDir, t.Name()+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemon{alerts: filepath.Join(dir, "alerts.jsonl")}
	confPath := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(confPath, conf(d.alerts), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := "true"
	if u.privateTmp {
		tmp = "mount -t tmpfs -o mode=1777 tmpfs /tmp && mount -t tmpfs -o mode=1777 tmpfs /var/tmp"
	}
	d.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", tmp+` && exec "$@"`, "sh",
		"setpriv", "--bounding-set", "-all,+"+strings.Join(u.caps, ",+"), "--no-new-privs",
		f.daemonBin, "run", "--config", confPath, "--log-format", "json")
	d.cmd.Env = append(os.Environ(), u.env...)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		seen := false
		for sc.Scan() {
			d.mu.Lock()
			d.logs.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if !seen && strings.Contains(sc.Text(), "canary exec seen") {
				seen = true
				ready <- true
			}
		}
		if !seen {
			ready <- false
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() { d.stop(t) })
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("daemon exited before it was ready (needs root and the kernel audit); logs:\n%s", d.log())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon not ready within 20 s; logs:\n%s", d.log())
	}
	return d
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

func (d *daemon) stop(t *testing.T) {
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-done
		t.Errorf("daemon still running 15 s after SIGTERM (killed)")
	}
}

// alert is what the tests read of an alert.
type alert struct {
	Signature struct {
		Name string `json:"name"`
	} `json:"signature"`
	line string
}

// alertsFor returns the alerts whose JSON mentions marker.
func (d *daemon) alertsFor(marker string) []alert {
	b, _ := os.ReadFile(d.alerts)
	b = b[:bytes.LastIndexByte(b, '\n')+1] // not the line the sink is still writing
	var out []alert
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.Contains(line, marker) {
			continue
		}
		a := alert{line: line}
		json.Unmarshal([]byte(line), &a)
		out = append(out, a)
	}
	return out
}

// waitAlerts waits up to max for the alerts mentioning marker to name
// every signature in want, then a little longer for duplicates, and
// returns how long the first took and what arrived.
func (d *daemon) waitAlerts(marker string, want []string, max time.Duration) (time.Duration, []alert) {
	start := time.Now()
	for time.Since(start) < max {
		got := d.alertsFor(marker)
		if hasAll(got, want) {
			took := time.Since(start)
			time.Sleep(500 * time.Millisecond) // a duplicate would follow closely
			return took, d.alertsFor(marker)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return max, d.alertsFor(marker)
}

func hasAll(got []alert, want []string) bool {
	for _, w := range want {
		found := false
		for _, a := range got {
			found = found || a.Signature.Name == w
		}
		if !found {
			return false
		}
	}
	return true
}

// names lists the signatures of as, sorted as they came.
func names(as []alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Signature.Name)
	}
	return out
}

// asNobody runs argv as the unprivileged attacker.
func asNobody(argv ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", "nobody", "--"}, argv...)...)
}

// helper runs the attacker helper name as nobody.
func helper(f fixture, name string, args ...string) *exec.Cmd {
	return asNobody(append([]string{"env", helperEnv + "=" + name, f.helperBin}, args...)...)
}

// startHelper starts helper name as nobody, killed when the test ends, and
// returns the first line it prints (its report that it is in place); a
// first line without the prefix want fails the test.
func startHelper(t *testing.T, f fixture, want, name string, args ...string) string {
	t.Helper()
	cmd := helper(f, name, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, want) {
		t.Fatalf("%s helper as nobody: %q, want a line starting %q", name, line, want)
	}
	return strings.TrimSpace(line)
}

// checkPlainDecode runs an ordinary base64 -d as nobody and requires one
// data_encoder_exec alert for it, within 15 s; it logs the latency.
func checkPlainDecode(t *testing.T, d *daemon, marker string) {
	t.Helper()
	arg := "/nonexistent-" + marker
	asNobody("base64", "-d", arg).Run() // fails on the missing file; the exec is what counts
	took, got := d.waitAlerts(arg, []string{"data_encoder_exec"}, 15*time.Second)
	if !hasAll(got, []string{"data_encoder_exec"}) {
		t.Fatalf("base64 -d %s as nobody raised no alert within 15 s (detection blinded); daemon logs:\n%s", arg, tail(d.log(), 30))
	}
	t.Logf("plain base64 -d alerted within %v of its exit", took)
	if len(got) != 1 {
		t.Errorf("base64 -d raised %v, want exactly one data_encoder_exec alert", names(got))
	}
}

// vmHWM is the peak resident set of pid, from /proc/PID/status.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
