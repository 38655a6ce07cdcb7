package netlink_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/rule"
	"github.com/elastic/go-libaudit/v2/rule/flags"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/audit/netlink"
	"github.com/encwatch/encwatch/internal/audittest"
)

// testDeadline bounds how long a kernel test waits for something the kernel
// should do at once; reaching it is a failure, never the expected path.
const testDeadline = 10 * time.Second

func testLog(t testing.TB) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
	}
	return logrus.NewEntry(l).WithField("test", t.Name())
}

func testConfig() netlink.OwnerConfig {
	// Zero fields take audit's defaults.
	return netlink.OwnerConfig{Settings: audit.Settings{Enabled: true, RuleKey: audittest.Key()}}
}

func status(t testing.TB) netlink.Status {
	t.Helper()
	st, _ := audittest.State(t)
	return st
}

func rules(t testing.TB) []string {
	t.Helper()
	_, r := audittest.State(t)
	return r
}

// openTestKernel takes the kernel test lock and snapshot, opens a Kernel
// with this test's rule key, and closes it (checking the error) when the
// test ends, before the snapshot is checked.
func openTestKernel(t *testing.T) *netlink.Owner {
	t.Helper()
	audittest.Setup(t)
	k, err := netlink.OpenOwner(testConfig(), testLog(t))
	if err != nil {
		t.Fatalf("OpenOwner: %v", err)
	}
	t.Cleanup(func() {
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return k
}

// runKernel starts k.Run and returns the batch channel and a stop function
// that cancels Run and checks it returned nil.
func runKernel(t *testing.T, k *netlink.Owner, capacity int) (<-chan []audit.Record, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan []audit.Record, capacity)
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx, out) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil after cancel", err)
			}
		case <-time.After(testDeadline):
			t.Fatalf("Run did not return within %v of cancel", testDeadline)
		}
	}
	t.Cleanup(stop)
	return out, stop
}

// waitExec reads batches until it has seen the SYSCALL record of pid and an
// EXECVE record holding marker. The kernel tags a SYSCALL record with the key
// of the first rule that matched, so key is checked only if not "".
func waitExec(t *testing.T, out <-chan []audit.Record, pid int, key, marker string) {
	t.Helper()
	pidField := fmt.Appendf(nil, " pid=%d ", pid)
	keyField := fmt.Appendf(nil, ` key="%s"`, key)
	if key == "" {
		keyField = nil
	}
	var sawSyscall, sawExecve bool
	deadline := time.After(testDeadline)
	for !sawSyscall || !sawExecve {
		select {
		case batch := <-out:
			for _, r := range batch {
				switch {
				case r.Type == audit.RecSyscall && bytes.Contains(r.Data, pidField) && bytes.Contains(r.Data, keyField):
					sawSyscall = true
				case r.Type == audit.RecExecve && bytes.Contains(r.Data, []byte(marker)):
					sawExecve = true
				}
			}
		case <-deadline:
			t.Fatalf("after %v: saw SYSCALL of pid %d with key %s: %v; saw EXECVE with %s: %v",
				testDeadline, pid, key, sawSyscall, marker, sawExecve)
		}
	}
}

func execMarker(t *testing.T) (pid int, marker string) {
	t.Helper()
	marker = fmt.Sprintf("encwatch-marker-%d-%d", os.Getpid(), time.Now().UnixNano())
	cmd := exec.Command("/bin/true", marker)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid, marker
}

func TestKernelReceivesExecAndRestores(t *testing.T) {
	audittest.Setup(t)
	before := status(t)
	key := "" // only when no one else's rule could match first
	if len(rules(t)) == 0 {
		key = audittest.Key()
	}
	cfg := testConfig()
	wait := uint32(1000)
	cfg.BacklogWaitTime = &wait

	k, err := netlink.OpenOwner(cfg, testLog(t))
	if err != nil {
		t.Fatalf("OpenOwner: %v", err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			k.Close()
		}
	})

	st, err := k.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.Enabled != 1 || st.BacklogLimit != audit.DefaultBacklogLimit || st.BacklogWaitTime != wait {
		t.Errorf("open: Status() = %+v, want pid %d enabled 1 backlog_limit %d backlog_wait_time %d",
			st, os.Getpid(), audit.DefaultBacklogLimit, wait)
	}
	have, err := k.Rules()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range k.OwnRules() {
		if !slices.Contains(have, r) {
			t.Errorf("open: kernel rules %q lack %q", have, r)
		}
	}
	if missing, err := k.VerifyRules(); err != nil || missing != 0 {
		t.Errorf("VerifyRules() = %d, %v, want 0, nil", missing, err)
	}

	out, stop := runKernel(t, k, 64)
	pid, marker := execMarker(t)
	waitExec(t, out, pid, key, marker)
	stop()
	if s := k.Stats(); s.Records == 0 || s.Batches == 0 || s.DroppedRecords != 0 {
		t.Errorf("Stats() = %+v, want records and batches, no drops", s)
	}

	if err := k.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	closed = true
	after := status(t)
	if after.PID != 0 || after.Enabled != before.Enabled || after.BacklogLimit != before.BacklogLimit ||
		after.BacklogWaitTime != before.BacklogWaitTime || after.RateLimit != before.RateLimit || after.Failure != before.Failure {
		t.Errorf("after Close: Status() = %+v, want pid 0 and settings as before %+v", after, before)
	}
	for _, r := range rules(t) {
		if strings.Contains(r, cfg.RuleKey) {
			t.Errorf("after Close: rule %q still in the kernel", r)
		}
	}
}

// addRule installs a rule through a plain libaudit client and removes it when
// the test ends (before the snapshot check, which runs later).
func addRule(t *testing.T, text string) {
	t.Helper()
	r, err := flags.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	w, err := rule.Build(r)
	if err != nil {
		t.Fatal(err)
	}
	c, err := libaudit.NewAuditClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.AddRule(w); err != nil {
		t.Fatalf("add rule %q: %v", text, err)
	}
	t.Cleanup(func() {
		c, err := libaudit.NewAuditClient(nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		if err := c.DeleteRule(w); err != nil {
			t.Errorf("delete rule %q: %v", text, err)
		}
	})
}

func TestKernelLeavesOtherRules(t *testing.T) {
	audittest.Setup(t)
	cfg := testConfig()
	foreignKey := fmt.Sprintf("encwatch-foreign-%d", os.Getpid())
	// Someone else's rule with another key, and someone's rule identical to
	// our 64-bit one: Close must leave both.
	addRule(t, "-a always,exit -F arch=b64 -S execve,execveat -k "+foreignKey)
	addRule(t, "-a always,exit -F arch=b64 -S execve,execveat -k "+cfg.RuleKey)
	before := rules(t)

	k, err := netlink.OpenOwner(cfg, testLog(t))
	if err != nil {
		t.Fatalf("OpenOwner: %v", err)
	}
	if got, want := len(rules(t)), len(before)+1; got != want {
		t.Errorf("open: %d kernel rules, want %d (only the b32 rule added)", got, want)
	}
	if err := k.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if got := rules(t); !slices.Equal(got, before) {
		t.Errorf("after Close: rules = %q, want %q", got, before)
	}
}

func TestKernelReinstallsDeletedRules(t *testing.T) {
	k := openTestKernel(t)
	// Tamper: delete both our rules behind the Kernel's back.
	c, err := libaudit.NewAuditClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, text := range k.OwnRules() {
		r, err := flags.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		w, err := rule.Build(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteRule(w); err != nil {
			t.Fatal(err)
		}
	}
	if missing, err := k.VerifyRules(); err != nil || missing != 2 {
		t.Errorf("VerifyRules() after deletion = %d, %v, want 2, nil", missing, err)
	}
	if err := k.InstallRules(); err != nil {
		t.Fatalf("InstallRules: %v", err)
	}
	if missing, err := k.VerifyRules(); err != nil || missing != 0 {
		t.Errorf("VerifyRules() after InstallRules = %d, %v, want 0, nil", missing, err)
	}
}

const ownerEnv = "ENCWATCH_TEST_AUDIT_OWNER"

// TestHelperAuditOwner is not a test: run as a child process with ownerEnv
// set, it registers as the audit daemon, says so on stdout and holds the
// registration until stdin closes or it is killed.
func TestHelperAuditOwner(t *testing.T) {
	if os.Getenv(ownerEnv) == "" {
		t.Skip("helper process for TestKernelPIDTaken")
	}
	c, err := libaudit.NewAuditClient(nil)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if err := c.SetPID(libaudit.WaitForReply); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("registered")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

func TestKernelPIDTaken(t *testing.T) {
	audittest.Setup(t)
	before := status(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAuditOwner$")
	cmd.Env = append(os.Environ(), ownerEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			cmd.Process.Kill()
			cmd.Wait()
			stdin.Close()
		}
	}
	t.Cleanup(kill)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "registered\n" {
		t.Fatalf("helper owner said %q, %v; want \"registered\"", line, err)
	}

	_, err = netlink.OpenOwner(testConfig(), testLog(t))
	var taken *netlink.PIDTakenError
	if !errors.As(err, &taken) {
		t.Fatalf("OpenOwner with pid owned by helper = %v, want *PIDTakenError", err)
	}
	if taken.PID != cmd.Process.Pid || taken.Comm != "netlink.test" {
		t.Errorf("PIDTakenError = %+v, want PID %d Comm netlink.test", taken, cmd.Process.Pid)
	}
	for _, want := range []string{fmt.Sprint(cmd.Process.Pid), "(netlink.test)", "probably auditd", `audit { mode = "multicast" }`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// The refused open changed nothing.
	if st := status(t); st.Enabled != before.Enabled || st.BacklogLimit != before.BacklogLimit || st.PID != cmd.Process.Pid {
		t.Errorf("after refused open: Status() = %+v, want as before %+v with pid %d", st, before, cmd.Process.Pid)
	}
	for _, r := range rules(t) {
		if strings.Contains(r, audittest.Key()) {
			t.Errorf("after refused open: rule %q in the kernel", r)
		}
	}

	// A dead owner: the kernel still reports its pid until it next tries to
	// reach it; registering makes it try (AUDIT_REPLACE), fail and let us in.
	kill()
	t.Logf("status after the owner died: pid %d (owner was %d)", status(t).PID, cmd.Process.Pid)
	k, err := netlink.OpenOwner(testConfig(), testLog(t))
	if err != nil {
		t.Fatalf("OpenOwner after the owner died: %v", err)
	}
	if st := status(t); st.PID != os.Getpid() {
		t.Errorf("after open: pid %d, want %d", st.PID, os.Getpid())
	}
	if err := k.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if st := status(t); st.PID != 0 {
		t.Errorf("after Close: pid %d, want 0", st.PID)
	}
}

func TestKernelSecondOpenSameProcess(t *testing.T) {
	k := openTestKernel(t)
	k2, err := netlink.OpenOwner(testConfig(), testLog(t))
	if err == nil {
		k2.Close()
		t.Fatal("second OpenOwner in the same process succeeded, want an error")
	}
	var taken *netlink.PIDTakenError
	if errors.As(err, &taken) {
		t.Errorf("second OpenOwner = %v, want an error naming this process, not PIDTakenError", err)
	}
	t.Logf("second OpenOwner: %v", err)
	// The first is untouched.
	if st := status(t); st.PID != os.Getpid() {
		t.Errorf("pid %d, want %d", st.PID, os.Getpid())
	}
	if missing, err := k.VerifyRules(); err != nil || missing != 0 {
		t.Errorf("VerifyRules() = %d, %v, want 0, nil", missing, err)
	}
	out, stop := runKernel(t, k, 64)
	pid, marker := execMarker(t)
	waitExec(t, out, pid, "", marker)
	stop()
}

// waitStats polls Stats until ok or the test deadline.
func waitStats(t *testing.T, k *netlink.Owner, ok func(netlink.ReaderStats) bool) netlink.ReaderStats {
	t.Helper()
	deadline := time.Now().Add(testDeadline)
	for {
		s := k.Stats()
		if ok(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKernelDropsWhenNextStageFull(t *testing.T) {
	k := openTestKernel(t)
	_, stop := runKernel(t, k, 0) // nobody receives: every batch is dropped
	execMarker(t)
	waitStats(t, k, func(s netlink.ReaderStats) bool { return s.DroppedRecords > 0 })
	stop()
	// Once Run has returned every record it received is accounted for;
	// before, a batch may be between recv and the hand-off.
	s := k.Stats()
	if s.DroppedRecords == 0 || s.Batches != 0 || s.DroppedRecords != s.Records {
		t.Errorf("Stats() = %+v, want every record dropped, no batch delivered", s)
	}
}

// TestKernelOverflowIsCounted fills a tiny receive buffer while nobody reads
// and checks the loss shows up: as ENOBUFS on the socket or in the kernel's
// lost counter.
func TestKernelOverflowIsCounted(t *testing.T) {
	audittest.Setup(t)
	cfg := testConfig()
	cfg.ReceiveBuffer = 4096
	cfg.BacklogLimit = 64
	cfg.Failure = "silent" // no printk per lost record
	zero := uint32(0)      // drop at once instead of stalling the audited processes
	cfg.BacklogWaitTime = &zero
	k, err := netlink.OpenOwner(cfg, testLog(t))
	if err != nil {
		t.Fatalf("OpenOwner: %v", err)
	}
	defer k.Close()
	lostBefore := status(t).Lost
	for range 200 {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
	}
	st := status(t)
	_, stop := runKernel(t, k, 1024)
	s := waitStats(t, k, func(s netlink.ReaderStats) bool { return s.Records > 0 })
	stop()
	t.Logf("after 200 execs unread: backlog %d, lost +%d; reader: %+v", st.Backlog, st.Lost-lostBefore, s)
	if st.Lost == lostBefore && s.ENOBUFS == 0 {
		t.Errorf("no loss counted (lost %d → %d, ENOBUFS %d) after overflowing a %d-byte buffer and a %d-record backlog",
			lostBefore, st.Lost, s.ENOBUFS, cfg.ReceiveBuffer, cfg.BacklogLimit)
	}
}

// BenchmarkKernelReceive runs b.N execs of /bin/true with the reader
// receiving into a counting consumer, and reports how many records each exec
// produced and how many records each wake-up of the reader delivered.
func BenchmarkKernelReceive(b *testing.B) {
	audittest.Setup(b)
	k, err := netlink.OpenOwner(testConfig(), testLog(b))
	if err != nil {
		b.Fatalf("OpenOwner: %v", err)
	}
	defer k.Close()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan []audit.Record, 256)
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx, out) }()
	consumed := make(chan int)
	go func() {
		n := 0
		for batch := range out {
			n += len(batch)
		}
		consumed <- n
	}()

	b.ResetTimer()
	for range b.N {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// Let the last records arrive: the kernel queues them asynchronously.
	waitStatsB(b, k, func(s netlink.ReaderStats) bool { return s.Records >= uint64(b.N)*6 })
	cancel()
	if err := <-done; err != nil {
		b.Errorf("Run = %v", err)
	}
	close(out)
	<-consumed
	s := k.Stats()
	b.ReportMetric(float64(s.Records)/float64(b.N), "records/exec")
	if s.Batches > 0 {
		b.ReportMetric(float64(s.Records)/float64(s.Batches), "records/batch")
	}
	b.ReportMetric(float64(s.DroppedRecords+s.ENOBUFS), "losses")
}

func waitStatsB(b *testing.B, k *netlink.Owner, ok func(netlink.ReaderStats) bool) {
	deadline := time.Now().Add(testDeadline)
	for !ok(k.Stats()) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// keyedRules counts the kernel's rules carrying key.
func keyedRules(t *testing.T, key string) int {
	t.Helper()
	n := 0
	for _, r := range rules(t) {
		if strings.HasSuffix(r, "key="+key) {
			n++
		}
	}
	return n
}

func TestKernelOwnerReconfigureRekeys(t *testing.T) {
	k := openTestKernel(t)
	oldKey, newKey := audittest.Key(), audittest.Key()+"-b"
	cfg := testConfig()
	cfg.RuleKey = newKey
	cfg.BacklogLimit = 4321
	if err := k.Reconfigure(cfg); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	if got := keyedRules(t, oldKey); got != 0 {
		t.Errorf("after Reconfigure: %d rules with the old key, want 0", got)
	}
	if got := keyedRules(t, newKey); got != 2 {
		t.Errorf("after Reconfigure: %d rules with the new key, want 2", got)
	}
	if st := status(t); st.BacklogLimit != 4321 {
		t.Errorf("after Reconfigure: backlog_limit %d, want 4321", st.BacklogLimit)
	}
	cfg.RuleKey = "enc:watch"
	if err := k.Reconfigure(cfg); err == nil || !strings.Contains(err.Error(), audit.CheckRuleKey("enc:watch").Error()) {
		t.Errorf("Reconfigure(rule key enc:watch) = %v, want the audit validator's error", err)
	}
	if got := keyedRules(t, newKey); got != 2 {
		t.Errorf("after a refused Reconfigure: %d rules with the new key, want 2 still", got)
	}
}

func TestKernelMulticastReconfigureRules(t *testing.T) {
	audittest.Setup(t)
	key := audittest.Key()
	m, err := netlink.OpenMulticast(netlink.MulticastConfig{Settings: audit.Settings{RuleKey: key, InstallRules: true}}, testLog(t))
	if err != nil {
		t.Fatalf("OpenMulticast: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if got := keyedRules(t, key); got != 2 || !m.RulesInstalled() {
		t.Fatalf("after OpenMulticast with InstallRules: %d rules, RulesInstalled %v; want 2, true", got, m.RulesInstalled())
	}
	if err := m.Reconfigure(netlink.MulticastConfig{Settings: audit.Settings{RuleKey: key}}); err != nil {
		t.Fatalf("Reconfigure without InstallRules: %v", err)
	}
	if got := keyedRules(t, key); got != 0 || m.RulesInstalled() {
		t.Errorf("after Reconfigure without InstallRules: %d rules, RulesInstalled %v; want 0, false", got, m.RulesInstalled())
	}
	newKey := key + "-b"
	if err := m.Reconfigure(netlink.MulticastConfig{Settings: audit.Settings{RuleKey: newKey, InstallRules: true}}); err != nil {
		t.Fatalf("Reconfigure with a new key: %v", err)
	}
	if got := keyedRules(t, newKey); got != 2 {
		t.Errorf("after Reconfigure with a new key: %d rules with it, want 2", got)
	}
}
