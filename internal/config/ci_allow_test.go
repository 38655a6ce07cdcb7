package config

import (
	"os"
	"strings"
	"testing"
)

// TestCIRunnerAllowExample loads the shipped policy plus the CI runner
// example of docs/policy.md (an allow block and its tests) and runs every
// test block: encoding under the runner is quiet, decoding under it and
// encoding elsewhere still alert.
func TestCIRunnerAllowExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "```hcl\nallow \"ci_runner_encodes_artefacts\"")
	if !ok {
		t.Fatal("docs/policy.md has no ci_runner_encodes_artefacts example")
	}
	example, _, _ := strings.Cut(after, "```")
	example = "allow \"ci_runner_encodes_artefacts\"" + example
	base, err := os.ReadFile("../../config.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("config.hcl+example", append(base, "\n"+example...))
	if err != nil {
		t.Fatalf("Parse(config.hcl + the CI example): %v", err)
	}
	results := cfg.RunTests()
	ran := 0
	for _, r := range results {
		if strings.HasPrefix(r.Test.Name, "ci_runner_") || r.Test.Name == "encode_elsewhere_still_alerts" {
			ran++
		}
	}
	if ran != 3 {
		t.Errorf("ran %d of the example's tests, want 3", ran)
	}
	if err := TestsError(results); err != nil {
		t.Errorf("policy tests with the CI example: %v", err)
	}
}
