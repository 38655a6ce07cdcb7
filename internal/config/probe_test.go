package config

import (
	"strings"
	"testing"
)

// TestProbeSocketSetting: the probe socket defaults per role, keeps an
// explicit path or "" (none), and refuses a relative path.
func TestProbeSocketSetting(t *testing.T) {
	const sig = `signature "s" {
  importance  = "high"
  executables = ["base64"]
}
`
	const collect = `collect {
  urls     = ["nats://127.0.0.1:4222"]
  insecure = true
}
`
	for _, tc := range []struct{ name, src, want, err string }{
		{"agent default", sig, DefaultProbeSocket, ""},
		{"collector default", collect, DefaultCollectProbeSocket, ""},
		{"agent set", sig + "metrics {\n  probe_socket = \"/run/x/p.sock\"\n}\n", "/run/x/p.sock", ""},
		{"collector set", collect + "metrics {\n  probe_socket = \"/run/x/p.sock\"\n}\n", "/run/x/p.sock", ""},
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
	if DefaultProbeSocket == DefaultCollectProbeSocket {
		t.Errorf("agent and collector share the default probe socket")
	}
}
