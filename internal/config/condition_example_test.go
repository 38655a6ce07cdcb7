package config

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/encwatch/encwatch/internal/doctest"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
)

// comm is the worked example of docs/development.md ("Adding a condition"): a condition
// on the kernel's name for the process (comm, 15 characters at most). In
// encwatch itself the entry goes into detect's table (detect/condition_builtins.go)
// and its Compile function beside it; here it extends a copy of the table.
var comm = detect.Condition{
	Attr: "comm",          // the HCL attribute, and the key in detect.Conditions
	Type: detect.Strings,  // config decodes a list of strings
	Cost: detect.CostScan, // a list lookup: runs before regexes and ancestry
	Compile: func(v any, _ detect.Conditions) (*detect.Predicate, error) {
		names := slices.Clone(v.([]string))
		if len(names) == 0 {
			return nil, nil // asks nothing: a block with only this is refused
		}
		return &detect.Predicate{
			Holds: func(x *detect.Exec) bool { return slices.Contains(names, x.Event().Comm) },
			Explain: func(x *detect.Exec, ms []detect.Match) []detect.Match {
				c := x.Event().Comm
				return append(ms, detect.Match{Field: "comm", Value: c, Reason: "comm " + strconv.Quote(c) + " is listed"})
			},
		}, nil
	},
}

func TestAddingACondition(t *testing.T) {
	table := append(detect.Builtin(), comm)
	src := []byte(`
signature "renamed_b64" {
  importance = "high"
  comm       = ["b64"]
  mode       = "decode"
}
`)
	cfg, err := load("p.hcl", []source{{name: "p.hcl", src: src}}, false, false, table)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	e := detect.NewEngine(cfg.Policy, "host", time.Now)
	ev := &audit.Event{Syscall: 59, Success: true, PID: 100, PPID: 99,
		Comm: "b64", Exe: "/tmp/b64", Argc: 2, Argv: []string{"base64", "-d"}}
	alerts := e.Evaluate(ev)
	if len(alerts) != 1 {
		t.Fatalf("Evaluate(b64 -d) = %d alerts, want 1", len(alerts))
	}
	// Reasons come in table order: comm was appended after mode.
	want := []detect.Match{
		{Field: "mode", Value: "decode", Reason: "base64 decodes (-d)"},
		{Field: "comm", Value: "b64", Reason: `comm "b64" is listed`},
	}
	if got := alerts[0].Matches; !slices.Equal(got, want) {
		t.Errorf("match reasons = %+v, want %+v", got, want)
	}

	// The built-in table does not know the attribute: config says so.
	if _, err := Parse("p.hcl", src); err == nil {
		t.Error("Parse with the built-in table accepted comm")
	}
}

// TestDevelopmentDocQuotesTheExample keeps the worked example of "Adding a
// condition" in docs/development.md this file, verbatim.
func TestDevelopmentDocQuotesTheExample(t *testing.T) {
	doctest.Quoted(t, "Adding a condition", "condition_example_test.go", "../../detect/condition.go")
}

// TestArchitectureDocQuotesTheExample: the condition seam of
// docs/architecture.md quotes this example verbatim.
func TestArchitectureDocQuotesTheExample(t *testing.T) {
	doctest.Architecture(t, "Seam: condition", "condition_example_test.go")
}
