package daemon

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestKernelEncoderReachedIndirectly needs root and the kernel audit
// subsystem: it runs real commands that reach an encoder or an interpreter
// indirectly (the dynamic loader, env, a busybox copy, exec -a, a renamed
// copy with a byte appended, a memfd) or decode through a filter, under the
// default policy, and expects each to raise its alert through the real
// pipeline. It logs the exe and argv the kernel reported for each.
func TestKernelEncoderReachedIndirectly(t *testing.T) {
	dir := t.TempDir()
	b64 := filepath.Join(dir, "b64.txt")
	if err := os.WriteFile(b64, []byte(base64.StdEncoding.EncodeToString([]byte("encwatch indirect test\n"))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile("/usr/bin/base64")
	if err != nil {
		t.Fatalf("kernel test needs /usr/bin/base64: %v", err)
	}
	notes := filepath.Join(dir, "notes")
	if err := os.WriteFile(notes, append(orig, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	script := base64.StdEncoding.EncodeToString([]byte("echo encwatch-indirect\n"))
	type run struct {
		name, line, sig string
		needs           string // a program the run needs, skipped when missing
	}
	runs := []run{
		// First: the lines below raise interpreter_inline_decode on their
		// bash -c, and its per-ancestry throttle (issue 9 part 2) would hold
		// this one back.
		{"perl MIME::Base64", "perl -MMIME::Base64 -e 'eval decode_base64(\"" + base64.StdEncoding.EncodeToString([]byte("1;")) + "\")'", "interpreter_inline_decode", "/usr/bin/perl"},
		{"ld.so", "/lib64/ld-linux-x86-64.so.2 /usr/bin/base64 -d " + b64, "data_encoder_exec", ""},
		{"env", "env base64 -d " + b64, "data_encoder_exec", ""},
		{"exec -a", "bash -c 'exec -a innocent /usr/bin/base64 -d " + b64 + "'", "data_encoder_exec", ""},
		{"renamed copy, byte appended", notes + " -d " + b64, "renamed_encoder", ""},
		{"busybox copy", "cp /bin/busybox " + dir + "/busybox-x && " + dir + "/busybox-x base64 -d " + b64, "data_encoder_exec", "/bin/busybox"},
		{"sh -s", "echo " + script + " | base64 -d | sh -s", "decoder_piped_to_interpreter", ""},
		{"filter between", "echo " + script + " | base64 -d | cat | /usr/bin/env bash", "decoder_piped_to_interpreter", ""},
		{"perl -", "echo " + base64.StdEncoding.EncodeToString([]byte("print qq(x\\n);\n")) + " | base64 -d | perl -", "decoder_piped_to_interpreter", "/usr/bin/perl"},
		{"tr rot13", "echo 'rpub rapjngpu' | tr 'A-Za-z' 'N-ZA-Mn-za-m' | sh", "rot13_piped_to_interpreter", ""},
		{"memfd", "python3 -c 'import os;fd=os.memfd_create(\"stage2\");os.write(fd,open(\"/bin/true\",\"rb\").read());os.execve(fd,[\"x\"],{})'", "fileless_exec", "python3"},
	}
	d := startDaemon(t, defaultPolicy(t))
	type started struct {
		run
		pid int
	}
	var done []started
	for _, r := range runs {
		if r.needs != "" {
			if _, err := exec.LookPath(r.needs); err != nil {
				t.Errorf("%s: needs %s: %v", r.name, r.needs, err)
				continue
			}
		}
		cmd := exec.Command("/bin/bash", "-c", r.line)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %s: %v: %s", r.name, r.line, err, out)
			continue
		}
		done = append(done, started{r, cmd.Process.Pid})
	}
	var missing []string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("runs without their alert: %q", missing)
		}
	})
	got := d.waitAlerts(t, "an alert for each indirect run", func(as []alert) bool {
		missing = missing[:0]
		for _, s := range done {
			if !raisedUnder(as, s.pid, s.sig) {
				missing = append(missing, s.name+": "+s.sig)
			}
		}
		return len(missing) == 0
	})
	for _, s := range done {
		for _, a := range got {
			if a.Signature.Name == s.sig && underPID(a, s.pid) {
				t.Logf("%s: %s on exe %q argv %q", s.name, s.sig, a.Process.Exe, strings.Join(a.Process.Args, " "))
				break
			}
		}
	}
}

func underPID(a alert, pid int) bool {
	if a.Process.PID == pid || a.Process.PPID == pid {
		return true
	}
	for _, p := range a.Ancestry {
		if p.PID == pid {
			return true
		}
	}
	return false
}

func raisedUnder(as []alert, pid int, sig string) bool {
	for _, a := range as {
		if a.Signature.Name == sig && underPID(a, pid) {
			return true
		}
	}
	return false
}
