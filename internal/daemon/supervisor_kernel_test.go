package daemon

import (
	"strings"
	"testing"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/rule"
	"github.com/elastic/go-libaudit/v2/rule/flags"

	"github.com/encwatch/encwatch/internal/audittest"
)

// kernelClient is the kernel's own audit interface, as auditctl uses it,
// opened by the test beside the daemon.
func kernelClient(t *testing.T) *libaudit.AuditClient {
	t.Helper()
	c, err := libaudit.NewAuditClient(nil)
	if err != nil {
		t.Fatalf("open audit client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tamperAlerts(as []alert) int { return countAlerts(as, sigTamper) }

// TestKernelTamperRuleDeleted needs root and the kernel audit subsystem: it
// deletes one of the daemon's rules through the kernel's netlink interface
// (not through the daemon) and expects an audit_tamper alert and the rule
// back.
func TestKernelTamperRuleDeleted(t *testing.T) {
	d := startDaemonWith(t, encoderPolicy, `  tamper_interval = "1s"`, Options{})
	_, rules := kernelState(t)
	mine := keyRules(rules, audittest.Key())
	r, err := flags.Parse(mine[0])
	if err != nil {
		t.Fatal(err)
	}
	w, err := rule.Build(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := kernelClient(t).DeleteRule(w); err != nil {
		t.Fatalf("delete rule %q: %v", mine[0], err)
	}
	got := d.waitAlerts(t, "the audit_tamper alert", func(as []alert) bool { return tamperAlerts(as) > 0 })
	for _, a := range got {
		if a.Signature.Name == sigTamper && a.Signature.Importance != "critical" {
			t.Errorf("audit_tamper importance = %q, want critical", a.Signature.Importance)
		}
	}
	waitFor(t, "the deleted rule to be back", func() (bool, error) {
		_, rules := kernelState(t)
		return len(keyRules(rules, audittest.Key())) == 2, nil
	})
	if !strings.Contains(d.logs.String(), "rules re-installed") {
		t.Errorf("logs do not say the rules were re-installed:\n%s", d.logs)
	}
}

// TestKernelTamperAuditDisabled needs root and the kernel audit subsystem:
// it switches kernel auditing off (enabled=0) through the kernel's netlink
// interface and expects an audit_tamper alert and enabled=1 restored.
func TestKernelTamperAuditDisabled(t *testing.T) {
	d := startDaemonWith(t, encoderPolicy, `  tamper_interval = "1s"`, Options{})
	if err := kernelClient(t).SetEnabled(false, libaudit.WaitForReply); err != nil {
		t.Fatalf("disable audit: %v", err)
	}
	d.waitAlerts(t, "the audit_tamper alert", func(as []alert) bool { return tamperAlerts(as) > 0 })
	waitFor(t, "audit enabled=1 again", func() (bool, error) {
		st, _ := kernelState(t)
		return st.Enabled == 1, nil
	})
}

// TestKernelTamperPersistentStateAlertsOnce needs root and the kernel audit
// subsystem: a multicast reader cannot switch audit back on, so the state
// persists across checks; it must raise one audit_tamper alert, not one per
// check.
func TestKernelTamperPersistentStateAlertsOnce(t *testing.T) {
	client := kernelClient(t)
	var found uint32
	enable := func() {
		st, _ := kernelState(t)
		found = st.Enabled
		if err := client.SetEnabled(true, libaudit.WaitForReply); err != nil {
			t.Fatalf("enable audit: %v", err)
		}
		t.Cleanup(func() { client.SetEnabled(found != 0, libaudit.WaitForReply) })
	}
	d := startDaemonWith(t, encoderPolicy, "install_rules = true\n  tamper_interval = \"100ms\"", Options{Mode: "multicast"}, enable)
	if err := client.SetEnabled(false, libaudit.WaitForReply); err != nil {
		t.Fatalf("disable audit: %v", err)
	}
	d.waitAlerts(t, "the audit_tamper alert", func(as []alert) bool { return tamperAlerts(as) > 0 })
	waitFor(t, "three more checks that still find audit off", func() (bool, error) {
		return strings.Count(d.logs.String(), "kernel audit still tampered with") >= 3, nil
	})
	if n := tamperAlerts(d.readAlerts(t)); n != 1 {
		t.Errorf("%d audit_tamper alerts for one persistent change, want 1", n)
	}
}
