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
		// Issue 25: decoders by behaviour, nested calls, a web shell.
		{[]string{"--config", "../../config.hcl", "--", "python3", "-m", "base64", "-d"}, []string{"data_encoder_exec [high]", "decodes (-m base64 -d)"}},
		{[]string{"--config", "../../config.hcl", "--", "pwsh", "-enc", "ZQBjAGgAbwAgAGgAaQA="}, []string{"interpreter_inline_decode [high]", "payload: base64, 7 bytes, shell: echo hi"}},
		{[]string{"--config", "../../config.hcl", "--", "gpg", "--enarmor"}, []string{"data_encoder_exec [high]", "base64 armour"}},
		{[]string{"--config", "../../config.hcl", "--", "python3", "-c", `import codecs;print(codecs.decode(open("q").read(),"base64"))`}, []string{"interpreter_inline_decode [high]"}},
		{[]string{"--config", "../../config.hcl", "--", "node", "-e", `console.log(Buffer.from(require("fs").readFileSync("q","utf8"),"base64").toString())`}, []string{"interpreter_inline_decode [high]"}},
		{[]string{"--config", "../../config.hcl", "--parent", "php-fpm: pool www", "--", "base64", "-d"}, []string{"decoder_under_server [critical]", `ancestor "php-fpm"`}},
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
