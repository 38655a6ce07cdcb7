package daemon

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/internal/config"
)

// audispDaemon is a daemon.Run in audisp mode fed by the test through a
// pipe: the whole daemon (reload, sinks, metrics) without the kernel.
type audispDaemon struct {
	testDaemon
	in      *io.PipeWriter
	mu      sync.Mutex
	serial  uint64
	metrics string // base URL of /metrics and /healthz
}

// startAudisp writes policy (with a file sink) into a fresh directory and
// runs the daemon in audisp mode on a pipe. Each of with may change the
// options before the daemon starts.
func startAudisp(t *testing.T, policy string, with ...func(*Options)) *audispDaemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the daemon refuses a policy not owned by root; run as root")
	}
	dir := t.TempDir()
	d := &audispDaemon{testDaemon: testDaemon{dir: dir, path: filepath.Join(dir, "config.hcl"),
		alerts: filepath.Join(dir, "alerts.jsonl"), done: make(chan error, 1), logs: &syncBuffer{}}, serial: 1000}
	writeReplace(t, d.path, d.policy(policy))
	cfg, err := config.Load(d.path, config.LoadOptions{RequireRootOwned: true})
	if err != nil {
		t.Fatalf("load test policy: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.metrics = "http://" + ln.Addr().String()
	pr, pw := io.Pipe()
	d.in = pw
	l := logrus.New()
	l.SetOutput(d.logs)
	l.SetFormatter(&logrus.JSONFormatter{})
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	opts := Options{Mode: "audisp", Stdin: pr, metricsListener: ln, debounce: 50 * time.Millisecond}
	for _, f := range with {
		f(&opts)
	}
	go func() { d.done <- Run(ctx, cfg, logrus.NewEntry(l), opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			t.Errorf("daemon did not stop within 10 s after the test; logs:\n%s", d.logs)
		}
	})
	waitFor(t, "the daemon to serve /healthz", func() (bool, error) {
		resp, err := http.Get(d.metrics + "/healthz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	return d
}

func (d *audispDaemon) policy(body string) string {
	return fmt.Sprintf("%s\nsink \"file\" \"test\" {\n  path = %q\n}\n", body, d.alerts)
}

// exec writes the records of one exec of argv, in auditd's log format, and
// returns its serial.
func (d *audispDaemon) exec(t *testing.T, argv ...string) uint64 {
	t.Helper()
	d.mu.Lock()
	d.serial++
	s := d.serial
	d.mu.Unlock()
	now := time.Now()
	hdr := fmt.Sprintf("msg=audit(%d.%03d:%d):", now.Unix(), now.Nanosecond()/1e6, s)
	var b strings.Builder
	fmt.Fprintf(&b, "type=SYSCALL %s arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=1 ppid=1 pid=%d auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=%q exe=%q key=\"encwatch\"\n",
		hdr, 100000+s, filepath.Base(argv[0]), argv[0])
	fmt.Fprintf(&b, "type=EXECVE %s argc=%d", hdr, len(argv))
	for i, a := range argv {
		fmt.Fprintf(&b, " a%d=%q", i, a)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "type=CWD %s cwd=\"/\"\n", hdr)
	fmt.Fprintf(&b, "type=PATH %s item=0 name=%q inode=1 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL\n", hdr, argv[0])
	fmt.Fprintf(&b, "type=PROCTITLE %s proctitle=%s\n", hdr, hex.EncodeToString([]byte(strings.Join(argv, "\x00"))))
	fmt.Fprintf(&b, "type=EOE %s\n", hdr)
	if _, err := io.WriteString(d.in, b.String()); err != nil {
		t.Fatalf("write records: %v", err)
	}
	return s
}

// writeReplace replaces path the way editors and configuration managers do:
// write a temporary file beside it, then rename it over the old one.
func writeReplace(t *testing.T, path, src string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func countAlerts(as []alert, sig string) int {
	n := 0
	for _, a := range as {
		if a.Signature.Name == sig {
			n++
		}
	}
	return n
}

func hasExeAlert(as []alert, exe string) bool {
	for _, a := range as {
		if a.Process.Exe == exe && a.Signature.Name == "data_encoder_exec" {
			return true
		}
	}
	return false
}

// xxdPolicy is encoderPolicy with xxd added to the encoders.
var xxdPolicy = strings.Replace(encoderPolicy, `"basenc"]`, `"basenc", "xxd"]`, 1)

// TestReloadWhileEventsFlow changes the policy by rename-replace while execs
// stream in: the change is applied (xxd now alerts) and no base64 alert is
// lost across the swap.
func TestReloadWhileEventsFlow(t *testing.T) {
	d := startAudisp(t, encoderPolicy)
	const n = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			d.exec(t, "/usr/bin/base64", fmt.Sprintf("flow-%d", i))
			if i%50 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	writeReplace(t, d.path, d.policy(xxdPolicy))
	waitFor(t, "the reload to be logged", func() (bool, error) {
		return strings.Contains(d.logs.String(), `"msg":"policy reloaded"`), nil
	})
	<-done
	d.exec(t, "/usr/bin/xxd", "-r", "-p")
	got := d.waitAlerts(t, "every base64 alert and the xxd one", func(as []alert) bool {
		return countAlerts(as, "data_encoder_exec") >= n+1 && hasExeAlert(as, "/usr/bin/xxd")
	})
	if c := countAlerts(got, "data_encoder_exec"); c != n+1 {
		t.Errorf("got %d data_encoder_exec alerts, want %d (%d base64 + 1 xxd)", c, n+1, n)
	}
}

// TestReloadBrokenPolicyKeepsOld writes a policy that does not load, and one
// whose test block fails: each is rejected with a policy_reload_failed
// alert, and the running policy still matches base64.
func TestReloadBrokenPolicyKeepsOld(t *testing.T) {
	d := startAudisp(t, encoderPolicy)
	broken := []string{
		`signature "data_encoder_exec" { importance = "hgih" executables = ["xxd"] }`,
		xxdPolicy + `
test "base64 must not alert" {
  command    = ["base64", "-d"]
  expect_not = ["data_encoder_exec"]
}
`,
	}
	for i, src := range broken {
		writeReplace(t, d.path, d.policy(src))
		defer func() {
			if t.Failed() {
				t.Log(d.logs)
			}
		}()
		d.waitAlerts(t, fmt.Sprintf("policy_reload_failed alert %d", i+1), func(as []alert) bool {
			return countAlerts(as, sigReloadFailed) == i+1
		})
	}
	d.exec(t, "/usr/bin/base64", "still-watched")
	d.exec(t, "/usr/bin/xxd", "-r")
	d.waitAlerts(t, "the base64 alert under the old policy", func(as []alert) bool {
		return hasExeAlert(as, "/usr/bin/base64")
	})
	if hasExeAlert(d.readAlerts(t), "/usr/bin/xxd") {
		t.Errorf("xxd alerted: a rejected policy was applied")
	}
	m := scrape(t, d.metrics+"/metrics")
	if !strings.Contains(m, `encwatch_reloads_total{result="failed"} 2`) {
		t.Errorf("/metrics does not count 2 failed reloads:\n%s", grepLines(m, "encwatch_reloads"))
	}
}

// TestReloadSymlinkSwap lays the policy out as a Kubernetes ConfigMap mount
// (config.hcl → ..data/config.hcl, ..data → a timestamped directory) and
// swaps the ..data symlink atomically: the daemon sees it.
func TestReloadSymlinkSwap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the daemon refuses a policy not owned by root; run as root")
	}
	// startAudisp writes a plain file; replace it with the ConfigMap
	// layout before the daemon starts is not possible through it, so the
	// swap is made from a plain file to the symlinked layout and then
	// between two versions of it.
	d := startAudisp(t, encoderPolicy)
	mkVersion := func(name, policy string) {
		v := filepath.Join(d.dir, name)
		if err := os.Mkdir(v, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(v, "config.hcl"), []byte(d.policy(policy)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	swap := func(version string) {
		tmp := filepath.Join(d.dir, "..data_tmp")
		if err := os.Symlink(version, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(d.dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	mkVersion("..v1", encoderPolicy)
	mkVersion("..v2", xxdPolicy)
	swap("..v1")
	tmp := filepath.Join(d.dir, "config.hcl.link")
	if err := os.Symlink("..data/config.hcl", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, d.path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload after the switch to the ConfigMap layout", func() (bool, error) {
		return strings.Count(d.logs.String(), `"msg":"policy reloaded"`) >= 1, nil
	})
	before := strings.Count(d.logs.String(), `"msg":"policy reloaded"`)
	swap("..v2")
	waitFor(t, "the reload after the ..data swap", func() (bool, error) {
		return strings.Count(d.logs.String(), `"msg":"policy reloaded"`) > before, nil
	})
	d.exec(t, "/usr/bin/xxd", "-r", "-p")
	d.waitAlerts(t, "the xxd alert from the swapped-in policy", func(as []alert) bool {
		return hasExeAlert(as, "/usr/bin/xxd")
	})
}

// TestMetricsMoveWithAlerts scrapes /metrics while alerts flow and checks
// the counters move.
func TestMetricsMoveWithAlerts(t *testing.T) {
	d := startAudisp(t, encoderPolicy)
	d.exec(t, "/usr/bin/base64", "one")
	d.waitAlerts(t, "the first alert", func(as []alert) bool { return len(as) == 1 })
	first := scrape(t, d.metrics+"/metrics")
	for i := range 5 {
		d.exec(t, "/usr/bin/base64", fmt.Sprint("more-", i))
	}
	d.waitAlerts(t, "six alerts", func(as []alert) bool { return len(as) == 6 })
	var second string
	waitFor(t, "the sink to have sent six alerts", func() (bool, error) {
		second = scrape(t, d.metrics+"/metrics")
		return strings.Contains(second, `encwatch_sink_sent_total{sink="test"} 6`), nil
	})
	tests := []struct{ name, before, after string }{
		{"alerts", `encwatch_alerts_total{importance="high",signature="data_encoder_exec"} 1`, `encwatch_alerts_total{importance="high",signature="data_encoder_exec"} 6`},
		{"events", "encwatch_events_total 1", "encwatch_events_total 6"},
		{"records", "encwatch_records_total 6", "encwatch_records_total 36"},
		{"latency", "encwatch_alert_latency_seconds_count 1", "encwatch_alert_latency_seconds_count 6"},
	}
	for _, tt := range tests {
		if !strings.Contains(first, tt.before) {
			t.Errorf("first scrape: no %q:\n%s", tt.before, grepLines(first, "encwatch_"+tt.name))
		}
		if !strings.Contains(second, tt.after) {
			t.Errorf("second scrape: no %q:\n%s", tt.after, grepLines(second, "encwatch_"+tt.name))
		}
	}
	for _, want := range []string{`encwatch_losses_total{cause="serial_gap"} 0`, `encwatch_sink_queue_depth{sink="test"} 0`, `encwatch_reloads_total{result="ok"} 0`, "encwatch_healthy 1"} {
		if !strings.Contains(second, want) {
			t.Errorf("second scrape: no %q", want)
		}
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	return string(b)
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
