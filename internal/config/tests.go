package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/encwatch/encwatch/detect"
)

// testTime is when simulated policy tests run: fixed, so that alert ids and
// throttle windows are the same on every run.
var testTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// TestResult is the outcome of one test block.
type TestResult struct {
	Test *PolicyTest
	// Raised are the signatures the simulated command raised, each once.
	Raised []string
	// Problems say what went wrong ("expected X", "did not expect Y");
	// empty when the test passed.
	Problems []string
}

// Failure describes a failed test at its file:line:col, or "" if it passed.
func (r TestResult) Failure() string {
	if len(r.Problems) == 0 {
		return ""
	}
	raised := strings.Join(r.Raised, ", ")
	if raised == "" {
		raised = "no alerts"
	}
	return fmt.Sprintf("%s: test %q failed: %s (raised: %s)", r.Test.Pos, r.Test.Name, strings.Join(r.Problems, "; "), raised)
}

// RunTests runs the policy's test blocks against its compiled policy, each
// with a fresh engine, and returns one result per test in order.
func (c *Config) RunTests() []TestResult {
	out := make([]TestResult, 0, len(c.Tests))
	for i := range c.Tests {
		t := &c.Tests[i]
		alerts := detect.DryRun(c.Policy, detect.Command{Argv: t.Argv, Parent: t.Parent, UID: t.UID, Cwd: t.Cwd}, c.Settings.Hostname, testTime)
		r := TestResult{Test: t, Raised: alertNames(alerts)}
		for _, want := range t.Expect {
			if !slices.Contains(r.Raised, want) {
				r.Problems = append(r.Problems, fmt.Sprintf("expected %s", want))
			}
		}
		for _, not := range t.ExpectNot {
			if slices.Contains(r.Raised, not) {
				r.Problems = append(r.Problems, fmt.Sprintf("did not expect %s", not))
			}
		}
		out = append(out, r)
	}
	return out
}

// TestsError joins the failures of results into one error, one line each;
// nil when every test passed.
func TestsError(results []TestResult) error {
	var failures []string
	for _, r := range results {
		if f := r.Failure(); f != "" {
			failures = append(failures, f)
		}
	}
	if len(failures) == 0 {
		return nil
	}
	return errors.New(strings.Join(failures, "\n"))
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
