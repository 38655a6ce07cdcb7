package daemon

import (
	"encoding/base64"
	"encoding/json"
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
		{"pyenv shim python3 -", "echo " + base64.StdEncoding.EncodeToString([]byte("print(1)\n")) + " | base64 -d | python3 -", "decoder_piped_to_interpreter", "python3"},
		{"env python3 -", "echo " + base64.StdEncoding.EncodeToString([]byte("print(2)\n")) + " | base64 -d | /usr/bin/env python3 -", "decoder_piped_to_interpreter", "python3"},
		{"busybox applet link", "ln -s /bin/busybox " + dir + "/base64 && " + dir + "/base64 -d " + b64, "data_encoder_exec", "/bin/busybox"},
		{"deleted file through /proc/self/fd", "cp /bin/true " + dir + "/gone && exec 3<" + dir + "/gone && rm " + dir + "/gone && /proc/self/fd/3", "fileless_exec", ""},
		{"/dev/fd/N", "exec 4</bin/true && /dev/fd/4", "fileless_exec", ""},
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
	raw := rawAlerts(t, d.alerts)
	for _, s := range done {
		for i, a := range got {
			if a.Signature.Name == s.sig && underPID(a, s.pid) {
				t.Logf("%s: %s on exe %q argv %q paths %+v; why %+v", s.name, s.sig, a.Process.Exe,
					strings.Join(a.Process.Args, " "), raw[i].Audit.Paths, raw[i].Matches)
				break
			}
		}
	}
}

// rawAlert is what the test logs of an alert beyond the shared alert type:
// the kernel's PATH records and the reasons.
type rawAlert struct {
	Matches []struct {
		Field, Value, Reason string
	} `json:"matches"`
	Audit struct {
		Paths []struct {
			Name  string `json:"name"`
			Inode uint64 `json:"inode"`
		} `json:"paths"`
	} `json:"audit"`
}

func rawAlerts(t *testing.T, path string) []rawAlert {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []rawAlert
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var a rawAlert
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("alert line is not JSON: %v", err)
		}
		out = append(out, a)
	}
	return out
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
