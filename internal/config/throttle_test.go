package config

import (
	"strings"
	"testing"
	"time"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
)

const modePolicy = `
settings {
  environment          = "ci"
  alert_cap_per_minute = 2
}
signature "data_encoder_exec" {
  importance  = "high"
  executables = ["base64"]
  throttle {
    per    = "parent_exe"
    window = "1m"
  }
  actions {
    default = ["any mode"]
  }
  actions "encode" {
    ci = ["encode in ci"]
  }
}
`

// TestThrottleSettingsAndModeActions: the cap, a throttle without max
// (identical repeats coalesce after the first) and actions by mode decode
// into the policy.
func TestThrottleSettingsAndModeActions(t *testing.T) {
	cfg, err := Parse("mode.hcl", []byte(modePolicy))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Settings.AlertCap != 2 {
		t.Errorf("Settings.AlertCap = %d, want 2", cfg.Settings.AlertCap)
	}
	e := detect.NewEngine(cfg.Policy, "h", time.Now)
	run := func(serial uint64, argv ...string) []detect.Alert {
		return e.Evaluate(&audit.Event{Time: time.Unix(1700000000+int64(serial), 0), Serial: serial, Arch: audit.ArchX86_64,
			Syscall: 59, Success: true, PPID: 7, Exe: "/usr/bin/base64", Argv: argv})
	}
	tests := []struct {
		argv    []string
		actions string // "" for no alert
	}{
		{[]string{"base64", "f"}, "encode in ci"},
		{[]string{"base64", "f"}, ""}, // identical: coalesced
		{[]string{"base64", "-d", "f"}, "any mode"},
		{[]string{"base64", "-d", "g"}, ""}, // new, but past the cap of 2: only the alert_flood
	}
	for i, tt := range tests {
		got := run(uint64(i+1), tt.argv...)
		if i == 3 {
			if len(got) != 1 || got[0].Signature.Name != detect.FloodSignature {
				t.Errorf("run %d %q past the cap = %+v, want only the %s", i, tt.argv, got, detect.FloodSignature)
			}
			continue
		}
		switch {
		case tt.actions == "" && len(got) != 0:
			t.Errorf("run %d %q = %d alerts, want none", i, tt.argv, len(got))
		case tt.actions != "" && (len(got) != 1 || strings.Join(got[0].Actions, ",") != tt.actions):
			t.Errorf("run %d %q = %+v, want one alert with actions %q", i, tt.argv, got, tt.actions)
		}
	}
	if sums := e.FlushAll(); len(sums) != 2 {
		t.Errorf("FlushAll = %d summaries, want 2 (the coalesced repeat, the capped one)", len(sums))
	}
}

func TestThrottleSettingsErrors(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{`settings { alert_cap_per_minute = 0 }`, "alert_cap_per_minute must be a whole number from 1 to 10000000"},
		{`signature "s" {
  importance  = "high"
  executables = ["base64"]
  actions "encrypt" { default = ["x"] }
}`, `unknown mode "encrypt" for actions`},
		{`signature "s" {
  importance  = "high"
  executables = ["base64"]
  throttle {
    per    = "host"
    max    = 0
    window = "1m"
  }
}`, "max must be a whole number from 1"},
	}
	for _, tt := range tests {
		_, err := Parse("bad.hcl", []byte(tt.src))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error = %v, want one containing %q", tt.src, err, tt.want)
		}
	}
}
