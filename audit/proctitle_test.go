package audit

import (
	"slices"
	"testing"
)

// TestProctitleArgv checks where an event's argv comes from: EXECVE when
// there is one, else PROCTITLE, and that the event says which.
func TestProctitleArgv(t *testing.T) {
	const (
		syscall   = `audit(1.000:6): arch=c000003e syscall=59 success=no exit=-2 pid=5 ppid=4 comm="sh"`
		execve    = `audit(1.000:6): argc=2 a0="ls" a1="-l"`
		proctitle = `audit(1.000:6): proctitle=2F62696E2F7368002D63006C73`
	)
	tests := []struct {
		name         string
		recs         []Record
		wantArgv     []string
		wantFromProc bool
	}{
		{"execve", []Record{{RecSyscall, []byte(syscall)}, {RecExecve, []byte(execve)}, {RecProctitle, []byte(proctitle)}}, []string{"ls", "-l"}, false},
		{"no execve", []Record{{RecSyscall, []byte(syscall)}, {RecProctitle, []byte(proctitle)}}, []string{"/bin/sh", "-c", "ls"}, true},
		{"neither", []Record{{RecSyscall, []byte(syscall)}, {RecEOE, []byte(`audit(1.000:6): `)}}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAssembler(AssemblerConfig{Mode: ModeReplay})
			var got []*Event
			for _, r := range tt.recs {
				a.Push(r, t0, func(e *Event) { got = append(got, e) })
			}
			a.Flush(func(e *Event) { got = append(got, e) })
			if len(got) != 1 {
				t.Fatalf("events = %d, want 1", len(got))
			}
			if e := got[0]; !slices.Equal(e.Argv, tt.wantArgv) || e.ArgvFromProctitle != tt.wantFromProc {
				t.Errorf("event argv = %q (from proctitle %v), want %q (%v)", e.Argv, e.ArgvFromProctitle, tt.wantArgv, tt.wantFromProc)
			}
		})
	}
}

// TestReplayReversedEvent pushes an event's records last first, as a tool
// listing them so would without separators: one complete event, its argv
// from PROCTITLE, not two halves.
func TestReplayReversedEvent(t *testing.T) {
	recs := []Record{
		{RecProctitle, []byte(`audit(1.000:6): proctitle=2F62696E2F7368002D63006C73`)},
		{RecPath, []byte(`audit(1.000:6): item=0 name="/bin/sh" inode=1 dev=fe:00 mode=0100755 nametype=NORMAL`)},
		{RecCwd, []byte(`audit(1.000:6): cwd="/"`)},
		{RecSyscall, []byte(`audit(1.000:6): arch=c000003e syscall=59 success=no exit=-2 pid=5 ppid=4 comm="sh"`)},
		{RecSyscall, []byte(`audit(1.000:7): arch=c000003e syscall=59 success=yes exit=0 pid=6 ppid=4 comm="ls"`)},
	}
	a := NewAssembler(AssemblerConfig{Mode: ModeReplay})
	var got []*Event
	for _, r := range recs {
		a.Push(r, t0, func(e *Event) { got = append(got, e) })
	}
	if len(got) != 1 {
		t.Fatalf("events before the end of input = %d, want 1 (closed by its SYSCALL)", len(got))
	}
	e := got[0]
	if e.Records != 4 || e.Incomplete || !e.ArgvFromProctitle || !slices.Equal(e.Argv, []string{"/bin/sh", "-c", "ls"}) || e.PID != 5 {
		t.Errorf("event = %d records, incomplete %v, argv %q (from proctitle %v), pid %d; want 4, complete, [/bin/sh -c ls] from proctitle, pid 5",
			e.Records, e.Incomplete, e.Argv, e.ArgvFromProctitle, e.PID)
	}
}
