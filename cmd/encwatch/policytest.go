package main

import (
	"fmt"
	"io"

	"github.com/encwatch/encwatch/internal/config"
)

// runPolicyTests runs the test blocks of cfg, printing one line per test, and
// returns an error listing each failing test at its file:line:col.
func runPolicyTests(cfg *config.Config, stdout io.Writer) error {
	results := cfg.RunTests()
	for _, r := range results {
		if len(r.Problems) == 0 {
			fmt.Fprintf(stdout, "ok   test %q\n", r.Test.Name)
		} else {
			fmt.Fprintf(stdout, "FAIL test %q\n", r.Test.Name)
		}
	}
	return config.TestsError(results)
}
