package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/encwatch/encwatch/internal/config"
)

func TestDefaultPolicyTestsPass(t *testing.T) {
	cfg, err := config.Load("../../config.hcl", config.LoadOptions{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var out bytes.Buffer
	if err := runPolicyTests(cfg, &out); err != nil {
		t.Fatalf("runPolicyTests: %v\n%s", err, out.String())
	}
	if got := strings.Count(out.String(), "ok   test"); got != len(cfg.Tests) || got == 0 {
		t.Errorf("ok lines = %d, want %d:\n%s", got, len(cfg.Tests), out.String())
	}
}

func TestPolicyTestFailureNamesPosition(t *testing.T) {
	cfg, err := config.Parse("p.hcl", []byte(`
signature "b64" {
  importance  = "high"
  executables = ["base64"]
  mode        = "decode"
}
test "wrong" {
  command = "base64 -w0 file"
  expect  = ["b64"]
}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	err = runPolicyTests(cfg, &bytes.Buffer{})
	want := `p.hcl:7:1: test "wrong" failed: expected b64 (raised: no alerts)`
	if err == nil || err.Error() != want {
		t.Errorf("runPolicyTests = %v, want %s", err, want)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		args []string
		want []string // substrings of stdout
	}{
		{[]string{"--config", "../../config.hcl", "--", "ls", "-l"}, []string{"no alerts"}},
		{[]string{"--config", "../../config.hcl", "--", "sh", "-c", "echo IyEvYmluL3NoCmlkCg== | base64 -d | sh"},
			[]string{"decoder_piped_to_interpreter [critical]", "base64_shebang_cmdline [critical]", "payload: base64"}},
		{[]string{"--config", "../../config.hcl", "--json", "--parent", "nginx: worker", "--", "base64 -d x"},
			[]string{`"data_encoder_exec"`}},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if err := cmdCheck(tt.args, &out, &errOut); err != nil {
			t.Fatalf("cmdCheck(%q) = %v, stderr %s", tt.args, err, errOut.String())
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("cmdCheck(%q) printed:\n%s\nwant it to contain %q", tt.args, out.String(), w)
			}
		}
	}
}
