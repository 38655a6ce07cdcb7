package daemon

import (
	"strings"
	"testing"

	"github.com/encwatch/encwatch/internal/audittest"
)

// TestKernelReloadRekeys needs root and the kernel audit subsystem: a
// reloaded policy with a new rule key and backlog limit reaches the kernel
// through the audit reloader (the supervisor applies it), the reload counts
// as ok, and the daemon removes the rules under the new key on exit.
func TestKernelReloadRekeys(t *testing.T) {
	d := startDaemon(t, encoderPolicy)
	oldKey, newKey := audittest.Key(), audittest.Key()+"-b"
	writeReplace(t, d.path, d.source(encoderPolicy, newKey, "  backlog_limit = 7777"))
	waitFor(t, "the reload to be logged", func() (bool, error) {
		if strings.Contains(d.logs.String(), "policy reload failed") {
			t.Fatalf("reload failed; logs:\n%s", d.logs)
		}
		return strings.Contains(d.logs.String(), `"msg":"policy reloaded"`), nil
	})
	st, rules := kernelState(t)
	if got := len(exactKeyRules(rules, oldKey)); got != 0 {
		t.Errorf("after the reload: %d rules with the old key, want 0", got)
	}
	if got := len(exactKeyRules(rules, newKey)); got != 2 {
		t.Errorf("after the reload: %d rules with the new key, want 2", got)
	}
	if st.BacklogLimit != 7777 {
		t.Errorf("after the reload: backlog_limit %d, want 7777", st.BacklogLimit)
	}
	if !strings.Contains(d.logs.String(), "audit settings applied") {
		t.Errorf("logs do not say the audit settings were applied")
	}
	d.stop(t)
	if _, rules := kernelState(t); len(exactKeyRules(rules, newKey)) != 0 {
		t.Errorf("rules with the new key left after stop: %q", keyRules(rules, newKey))
	}
}

// exactKeyRules returns the rules whose key is key itself, not one it is a
// prefix of (keyRules would count the new key's rules as the old one's).
func exactKeyRules(rules []string, key string) []string {
	var out []string
	for _, r := range rules {
		if strings.HasSuffix(r, "-k "+key) || strings.HasSuffix(r, "key="+key) {
			out = append(out, r)
		}
	}
	return out
}
