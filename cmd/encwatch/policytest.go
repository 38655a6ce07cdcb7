package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
)

// testTime is when simulated policy tests run: fixed, so that alert ids and
// throttle windows are the same on every run.
var testTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// runPolicyTests runs the test blocks of cfg, printing one line per test, and
// returns an error listing each failing test at its file:line:col.
func runPolicyTests(cfg *config.Config, stdout io.Writer) error {
	var failures []string
	for _, t := range cfg.Tests {
		alerts := detect.DryRun(cfg.Policy, detect.Command{Argv: t.Argv, Parent: t.Parent, UID: t.UID, Cwd: t.Cwd}, cfg.Settings.Hostname, testTime)
		got := alertNames(alerts)
		var problems []string
		for _, want := range t.Expect {
			if !slices.Contains(got, want) {
				problems = append(problems, fmt.Sprintf("expected %s", want))
			}
		}
		for _, not := range t.ExpectNot {
			if slices.Contains(got, not) {
				problems = append(problems, fmt.Sprintf("did not expect %s", not))
			}
		}
		if len(problems) == 0 {
			fmt.Fprintf(stdout, "ok   test %q\n", t.Name)
			continue
		}
		raised := strings.Join(got, ", ")
		if raised == "" {
			raised = "no alerts"
		}
		fmt.Fprintf(stdout, "FAIL test %q\n", t.Name)
		failures = append(failures, fmt.Sprintf("%s: test %q failed: %s (raised: %s)", t.Pos, t.Name, strings.Join(problems, "; "), raised))
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "\n"))
	}
	return nil
}

// alertNames returns the signatures alerts come from, each once, in order.
func alertNames(alerts []detect.Alert) []string {
	var out []string
	for _, a := range alerts {
		if !slices.Contains(out, a.Signature.Name) {
			out = append(out, a.Signature.Name)
		}
	}
	return out
}
