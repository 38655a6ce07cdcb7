package proc

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseStat feeds /proc/PID/stat lines whose comm, chosen by whoever
// names the process, may hold spaces, parentheses and digits: the parent
// pid must still be the field after the state, never something the name
// smuggled in.
func FuzzParseStat(f *testing.F) {
	f.Add("bash", 4200)
	f.Add("evil) S 1 1", 77)
	f.Add(") 0 0 (", 1)
	f.Add("a\nb", 9)
	f.Fuzz(func(t *testing.T, comm string, ppid int) {
		line := "4242 (" + comm + ") S " + strconv.Itoa(ppid) + " 4242 4242 0 -1 4194560 107 0 0 0\n"
		got, err := ParseStatPPID([]byte(line))
		if err != nil {
			t.Fatalf("ParseStatPPID(%q): %v", line, err)
		}
		if got != ppid {
			t.Fatalf("ParseStatPPID(%q) = %d, want %d", line, got, ppid)
		}
	})
}

// FuzzParseCmdline checks that any bytes split and join back to themselves.
func FuzzParseCmdline(f *testing.F) {
	f.Add([]byte("/bin/sh\x00-c\x00echo hi\x00"))
	f.Add([]byte("\x00\x00"))
	f.Add([]byte("no-trailing-nul"))
	f.Fuzz(func(t *testing.T, b []byte) {
		args := ParseCmdline(b)
		if len(b) == 0 {
			if args != nil {
				t.Fatalf("ParseCmdline(empty) = %q, want nil", args)
			}
			return
		}
		joined := []byte(strings.Join(args, "\x00"))
		if !bytes.Equal(joined, bytes.TrimSuffix(b, []byte{0})) {
			t.Fatalf("ParseCmdline(%q) = %q, which joins to %q", b, args, joined)
		}
	})
}
