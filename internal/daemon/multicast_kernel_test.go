package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	libaudit "github.com/elastic/go-libaudit/v2"

	"github.com/encwatch/encwatch/internal/audittest"
)

// TestKernelMulticastReadsBesideOwner needs root and the kernel audit
// subsystem: the daemon in multicast mode (rules installed on request) never
// takes the audit pid or changes kernel settings, yet alerts on a base64 run;
// on stop it removes exactly the rules it added.
func TestKernelMulticastReadsBesideOwner(t *testing.T) {
	// auditd, the owner a multicast reader runs beside, would have enabled
	// audit; the test plays its part and puts back what it found.
	setEnabled := func(on bool) {
		c, err := libaudit.NewAuditClient(nil)
		if err != nil {
			t.Fatalf("audit control socket: %v", err)
		}
		defer c.Close()
		if err := c.SetEnabled(on, libaudit.WaitForReply); err != nil {
			t.Fatalf("set audit enabled=%v: %v", on, err)
		}
	}
	enable := func() {
		st, _ := kernelState(t)
		setEnabled(true)
		t.Cleanup(func() { setEnabled(st.Enabled != 0) })
	}
	d := startDaemonWith(t, encoderPolicy, "install_rules = true", Options{Mode: "multicast"}, enable)
	if st, _ := kernelState(t); st.PID != d.found.PID {
		t.Errorf("audit pid = %d in multicast mode, want it left as found (%d)", st.PID, d.found.PID)
	}

	input := filepath.Join(t.TempDir(), "multicast-marker.txt")
	if err := os.WriteFile(input, []byte("multicast\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/base64", input)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run base64: %v: %s", err, out)
	}
	got := d.waitAlerts(t, "the multicast alert for our base64 run", func(as []alert) bool {
		for _, a := range as {
			if a.Process.PID == cmd.Process.Pid {
				return true
			}
		}
		return false
	})
	for _, a := range got {
		if a.Process.PID == cmd.Process.Pid && (a.Process.Exe != "/usr/bin/base64" || len(a.Process.Args) != 2 || a.Process.Args[1] != input) {
			t.Errorf("multicast alert process = %+v, want /usr/bin/base64 %s", a.Process, input)
		}
	}

	d.stop(t)
	st, rules := kernelState(t)
	if st.Enabled != 1 {
		t.Errorf("enabled = %d after a multicast daemon stopped, want 1: it must not change kernel settings", st.Enabled)
	}
	if left := keyRules(rules, audittest.Key()); len(left) != 0 {
		t.Errorf("rules left behind after stop: %q", left)
	}
	if st.PID != d.found.PID {
		t.Errorf("after stop pid=%d, want as found: %d", st.PID, d.found.PID)
	}
}
