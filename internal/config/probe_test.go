package config

import (
	"strings"
	"testing"
)

// TestProbeSocketSetting: the probe socket defaults per role (a
// registered block may give its own, blocks_test.go), keeps an
// explicit path or "" (none), and refuses a relative path.
func TestProbeSocketSetting(t *testing.T) {
	const sig = `signature "s" {
  importance  = "high"
  executables = ["base64"]
}
`
	for _, tc := range []struct{ name, src, want, err string }{
		{"agent default", sig, DefaultProbeSocket, ""},
		{"forwarder default", "forward {}\n", forwardProbeSocket, ""},
		{"agent set", sig + "metrics {\n  probe_socket = \"/run/x/p.sock\"\n}\n", "/run/x/p.sock", ""},
		{"forwarder set", "forward {}\n" + "metrics {\n  probe_socket = \"/run/x/p.sock\"\n}\n", "/run/x/p.sock", ""},
		{"off", sig + "metrics {\n  probe_socket = \"\"\n}\n", "", ""},
		{"relative", sig + "metrics {\n  probe_socket = \"p.sock\"\n}\n", "", "must be an absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("p.hcl", []byte(tc.src))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse = %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Metrics.ProbeSocket; got != tc.want {
				t.Errorf("Metrics.ProbeSocket = %q, want %q", got, tc.want)
			}
		})
	}
}
