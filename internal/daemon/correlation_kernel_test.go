package daemon

import (
	"encoding/base64"
	"os"
	"os/exec"
	"sort"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// defaultPolicy returns the repo's config.hcl without its audit and sink
// blocks, which the kernel test harness supplies.
func defaultPolicy(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../../config.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, "config.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("config.hcl: %v", diags)
	}
	var cut []hcl.Range
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		if b.Type == "audit" || b.Type == "sink" {
			cut = append(cut, b.Range())
		}
	}
	sort.Slice(cut, func(i, j int) bool { return cut[i].Start.Byte > cut[j].Start.Byte })
	for _, r := range cut {
		src = append(src[:r.Start.Byte:r.Start.Byte], src[r.End.Byte:]...)
	}
	return string(src)
}

// TestKernelDecodePipedToShell needs root and the kernel audit subsystem: it
// runs `sh -c 'echo <base64 of a script> | base64 -d | sh'` for real under the
// default policy and expects the critical correlated alert, with the ancestry
// chain leading back to the sh -c process and this test.
func TestKernelDecodePipedToShell(t *testing.T) {
	d := startDaemon(t, defaultPolicy(t))

	script := "#!/bin/sh\necho encwatch-correlation-test\n"
	line := "echo " + base64.StdEncoding.EncodeToString([]byte(script)) + " | base64 -d | sh"
	cmd := exec.Command("/bin/sh", "-c", line)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run pipeline: %v: %s", err, out)
	}
	shPID := cmd.Process.Pid

	got := d.waitAlerts(t, "the decoder_piped_to_interpreter alert", func(as []alert) bool {
		for _, a := range as {
			if a.Signature.Name == "decoder_piped_to_interpreter" && a.Process.PPID == shPID {
				return true
			}
		}
		return false
	})
	var corr *alert
	names := map[string]bool{}
	for i, a := range got {
		if a.Process.PPID == shPID || a.Process.PID == shPID {
			names[a.Signature.Name] = true
		}
		if a.Signature.Name == "decoder_piped_to_interpreter" && a.Process.PPID == shPID {
			corr = &got[i]
		}
	}
	if corr.Signature.Importance != "critical" {
		t.Errorf("decoder_piped_to_interpreter importance = %q, want critical", corr.Signature.Importance)
	}
	if len(corr.Ancestry) < 2 {
		t.Fatalf("ancestry = %+v, want at least the sh -c process and the test", corr.Ancestry)
	}
	if a0 := corr.Ancestry[0]; a0.PID != shPID || len(a0.Args) != 3 || a0.Args[2] != line {
		t.Errorf("ancestry[0] = %+v, want pid %d with argv [/bin/sh -c %q]", a0, shPID, line)
	}
	if a1 := corr.Ancestry[1]; a1.PID != os.Getpid() {
		t.Errorf("ancestry[1].pid = %d, want the test process %d", a1.PID, os.Getpid())
	}
	for _, want := range []string{"data_encoder_exec", "interpreter_inline_decode"} {
		if !names[want] {
			t.Errorf("no %s alert for the pipeline; got %v", want, names)
		}
	}
}
