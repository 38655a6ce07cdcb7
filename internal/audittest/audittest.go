// Package audittest holds helpers for tests that run against the real kernel
// audit subsystem as root: a cross-process lock so such tests in different
// packages run one at a time, a precondition check that fails loudly under CI,
// and a snapshot that checks (and repairs) the kernel's audit state after a
// test; and the hostile log directory replay tests read.
package audittest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/rule"
	"github.com/elastic/go-libaudit/v2/rule/flags"
	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/audit/netlink"
)

// lockFile is the lock every kernel test shares: in /run/lock, the
// system's lock directory, or in /tmp where there is none.
func lockFile() string {
	if fi, err := os.Stat("/run/lock"); err == nil && fi.IsDir() {
		return "/run/lock/encwatch-kernel-test.lock"
	}
	return "/tmp/encwatch-kernel-test.lock"
}

// Setup prepares a kernel audit test: Lock, then Require, then Snapshot.
func Setup(t testing.TB) {
	t.Helper()
	Lock(t)
	Require(t)
	Snapshot(t)
}

// Key returns a rule key unique to this test process, never encwatch's own.
func Key() string {
	return fmt.Sprintf("encwatch-test-%d", os.Getpid())
}

// Lock takes an exclusive flock shared by every kernel test on the machine
// (go test runs packages in parallel processes; the kernel has one audit
// daemon slot) and releases it when the test ends.
func Lock(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(lockFile(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("kernel audit test lock: %v", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		t.Fatalf("kernel audit test lock %s: %v", f.Name(), err)
	}
	t.Cleanup(func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	})
}

// Require checks that this test can use the kernel audit subsystem: root, a
// kernel with NETLINK_AUDIT, no other live audit daemon, configuration not
// locked. When something is missing it fails the test under CI (CI set in the
// environment) and skips it elsewhere, naming what is missing either way.
func Require(t testing.TB) {
	t.Helper()
	if msg := missing(); msg != "" {
		msg = "kernel audit test cannot run: " + msg
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED (set CI=1 to make this a failure): " + msg)
	}
}

// Program returns the path of the program name, which a test needs from
// the Debian packages pkgs (make test-deps installs them). Missing, it
// fails the test under CI and skips it elsewhere, as Require does.
func Program(t testing.TB, name, pkgs string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("this test needs %s from Debian's %s (make test-deps installs it)", name, pkgs)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("!!! SKIPPED: " + msg)
	}
	return p
}

func missing() string {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Sprintf("not root (euid %d); run the kernel tests as root", uid)
	}
	c, err := netlink.OpenControl()
	if err != nil {
		return fmt.Sprintf("no NETLINK_AUDIT: %v", err)
	}
	defer c.Close()
	st, err := c.Status()
	if err != nil {
		return fmt.Sprintf("no NETLINK_AUDIT status: %v", err)
	}
	if st.Enabled == 2 {
		return "kernel audit configuration is locked (enabled=2) until reboot"
	}
	if st.PID != 0 && st.PID != os.Getpid() {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", st.PID)); err == nil {
			return fmt.Sprintf("audit pid owned by PID %d comm %s; stop it first", st.PID, strings.TrimSpace(string(comm)))
		}
	}
	return ""
}

// snapshot is what Snapshot saves to stateFile, so that a test process killed
// before its cleanup (a signal, a SIGPIPE from `| head`) is repaired by the
// next one.
type snapshot struct {
	Status netlink.Status
	Rules  []string
}

// stateFile sits beside the lock; it exists only while a test runs.
func stateFile() string {
	return strings.TrimSuffix(lockFile(), ".lock") + ".state"
}

// Snapshot records the kernel audit status and rule list now and, when the
// test ends, reports (t.Errorf) any difference and restores what it recorded.
// Call it with the Lock held. If an earlier test process died before it could
// restore its snapshot, Snapshot restores that one first and says so.
func Snapshot(t testing.TB) {
	t.Helper()
	if b, err := os.ReadFile(stateFile()); err == nil {
		var old snapshot
		if err := json.Unmarshal(b, &old); err != nil {
			t.Fatalf("kernel audit state left by a killed test (%s): %v", stateFile(), err)
		}
		have, haveRules := State(t)
		extra, gone := ruleDiff(haveRules, old.Rules)
		t.Logf("restoring kernel audit state left by a killed test (%s): status %s; rules left behind %q, removed %q",
			stateFile(), statusDiff(have, old.Status), extra, gone)
		if err := restore(old.Status, have, extra, gone); err != nil {
			t.Fatalf("restore kernel audit state left by a killed test: %v", err)
		}
	}
	before, beforeRules := State(t)
	b, err := json.Marshal(snapshot{before, beforeRules})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateFile(), b, 0o600); err != nil {
		t.Fatalf("save kernel audit state: %v", err)
	}
	t.Cleanup(func() {
		defer os.Remove(stateFile())
		after, afterRules := State(t)
		if diff := statusDiff(after, before); diff != "" {
			t.Errorf("kernel audit status not restored: %s", diff)
		}
		extra, gone := ruleDiff(afterRules, beforeRules)
		for _, r := range extra {
			t.Errorf("kernel audit rule left behind: %s", r)
		}
		for _, r := range gone {
			t.Errorf("kernel audit rule removed: %s", r)
		}
		if err := restore(before, after, extra, gone); err != nil {
			t.Errorf("restore kernel audit state: %v", err)
		}
	})
}

// State returns the kernel's audit status and every rule, as auditctl
// would print it.
func State(t testing.TB) (netlink.Status, []string) {
	t.Helper()
	c, err := netlink.OpenControl()
	if err != nil {
		t.Fatalf("kernel audit snapshot: %v", err)
	}
	defer c.Close()
	st, err := c.Status()
	if err != nil {
		t.Fatalf("kernel audit snapshot: %v", err)
	}
	rules, err := c.Rules()
	if err != nil {
		t.Fatalf("kernel audit snapshot: %v", err)
	}
	return st, rules
}

func statusDiff(got, want netlink.Status) string {
	var d []string
	field := func(name string, g, w uint32) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %d, want %d", name, g, w))
		}
	}
	field("enabled", got.Enabled, want.Enabled)
	field("failure", got.Failure, want.Failure)
	field("pid", uint32(got.PID), uint32(want.PID))
	field("rate_limit", got.RateLimit, want.RateLimit)
	field("backlog_limit", got.BacklogLimit, want.BacklogLimit)
	field("backlog_wait_time", got.BacklogWaitTime, want.BacklogWaitTime)
	return strings.Join(d, "; ")
}

// ruleDiff returns the rules in got but not want, and in want but not got,
// counting duplicates.
func ruleDiff(got, want []string) (extra, gone []string) {
	rest := slices.Clone(want)
	for _, r := range got {
		if i := slices.Index(rest, r); i >= 0 {
			rest = slices.Delete(rest, i, i+1)
		} else {
			extra = append(extra, r)
		}
	}
	return extra, rest
}

// restore puts the kernel back as Snapshot found it.
func restore(want, have netlink.Status, extra, gone []string) error {
	c, err := libaudit.NewAuditClient(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	var errs []error
	for _, r := range extra {
		if w, err := wire(r); err != nil {
			errs = append(errs, err)
		} else if err := c.DeleteRule(w); err != nil {
			errs = append(errs, fmt.Errorf("delete %q: %w", r, err))
		}
	}
	for _, r := range gone {
		if w, err := wire(r); err != nil {
			errs = append(errs, err)
		} else if err := c.AddRule(w); err != nil {
			errs = append(errs, fmt.Errorf("add %q: %w", r, err))
		}
	}
	if have.PID != want.PID && want.PID == 0 {
		// Only the registered process may unregister; a dead one is reset
		// by the kernel on its next attempt to reach it.
		if err := unregister(c, have.PID); err != nil {
			errs = append(errs, err)
		}
	}
	set := func(name string, got, w uint32, f func(uint32) error) {
		if got != w {
			if err := f(w); err != nil {
				errs = append(errs, fmt.Errorf("set %s: %w", name, err))
			}
		}
	}
	set("backlog_limit", have.BacklogLimit, want.BacklogLimit, func(v uint32) error { return c.SetBacklogLimit(v, libaudit.WaitForReply) })
	set("backlog_wait_time", have.BacklogWaitTime, want.BacklogWaitTime, func(v uint32) error { return c.SetBacklogWaitTime(int32(v), libaudit.WaitForReply) })
	set("rate_limit", have.RateLimit, want.RateLimit, func(v uint32) error { return c.SetRateLimit(v, libaudit.WaitForReply) })
	set("failure", have.Failure, want.Failure, func(v uint32) error { return c.SetFailure(libaudit.FailureMode(v), libaudit.WaitForReply) })
	set("enabled", have.Enabled, want.Enabled, func(v uint32) error { return c.SetEnabled(v == 1, libaudit.WaitForReply) })
	return errors.Join(errs...)
}

// unregister clears the audit pid if this process or a dead one holds it; a
// live holder can only be reported.
func unregister(c *libaudit.AuditClient, pid int) error {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); pid != os.Getpid() && err == nil {
		return fmt.Errorf("audit pid %d is held by another live process; cannot restore 0", pid)
	}
	// libaudit only clears the pid from Close of a client that set it. Our
	// SetPID fails with EEXIST if this process holds the pid; for a dead
	// holder the kernel's liveness ping fails and it lets us in. Either way
	// Close then sends pid 0, which the kernel accepts from the holder.
	u, err := libaudit.NewAuditClient(nil)
	if err != nil {
		return err
	}
	if err := u.SetPID(libaudit.NoWait); err != nil && !errors.Is(err, unix.EEXIST) {
		u.Close()
		return err
	}
	return u.Close()
}

func wire(text string) (rule.WireFormat, error) {
	r, err := flags.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse rule %q: %w", text, err)
	}
	w, err := rule.Build(r)
	if err != nil {
		return nil, fmt.Errorf("build rule %q: %w", text, err)
	}
	return w, nil
}

// HostileLogDir makes a log directory an attacker could have built: the
// log at good copied as audit.log, a FIFO as audit.log.1 (an open of it
// blocks for ever) and a symbolic link to /dev/zero as audit.log.2 (an
// endless read). It returns the directory.
func HostileLogDir(tb testing.TB, good string) string {
	tb.Helper()
	dir := tb.TempDir()
	data, err := os.ReadFile(good)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "audit.log"), data, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "audit.log.1"), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "audit.log.2")); err != nil {
		tb.Fatal(err)
	}
	return dir
}
