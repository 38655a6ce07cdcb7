package detect

import (
	"testing"
	"time"

	"github.com/encwatch/encwatch/audit"
)

func lineagePolicy(t *testing.T) *Policy {
	return mustCompile(t, PolicySpec{Signatures: []SignatureSpec{{
		Name: "decoded_command_executed", Importance: Critical,
		Sequence: &SequenceSpec{By: "lineage", Within: 3 * time.Second, Steps: []StepSpec{
			{Name: "decoder", Conditions: Conditions{"executables": []string{"base64"}, "mode": "decode"}},
			{Name: "interpreter", Conditions: Conditions{"executables": []string{"bash", "sh"}, "program_from": []string{"inline", "fd"}}},
		}, Pipe: &PipeSpec{From: "decoder", To: "interpreter", Unpiped: High}},
	}}})
}

// The shapes of "decoded into the shell": the shell (pid 10, under 1) runs
// a subshell (11, a fork of it) for a command or process substitution, in
// which base64 (20) decodes; then bash runs, as the shell itself (exec) or
// its child (30). make (40) is a child of the shell that is no subshell.
func TestLineageDecodedCommand(t *testing.T) {
	shell := []string{"sh", "-c", "script"}
	table := ProcessTable{
		1:  {PID: 1, Exe: "/sbin/init", Argv: []string{"init"}},
		10: {PID: 10, PPID: 1, Exe: "/usr/bin/dash", Argv: shell},
		11: {PID: 11, PPID: 10, Exe: "/usr/bin/dash", Argv: shell},
		40: {PID: 40, PPID: 10, Exe: "/usr/bin/make", Argv: []string{"make"}},
	}
	ev := func(pid, ppid int, ms int, argv ...string) *audit.Event {
		e := execEvent("/usr/bin/"+argv[0], argv...)
		e.PID, e.PPID, e.Comm, e.Time = pid, ppid, argv[0], evTime.Add(time.Duration(ms)*time.Millisecond)
		return e
	}
	decoder := ev(20, 11, 0, "base64", "-d")
	tests := []struct {
		name     string
		interp   *audit.Event
		desc     *fakeDescriptors
		wantImp  Importance
		wantPipe string // "" for no alert
	}{
		{"command substitution, shell execs bash", ev(10, 1, 5, "bash", "-c", "id"),
			&fakeDescriptors{stdio: map[int]Stdio{20: {Out: pipe(7)}}, held: map[int]uint64{10: 7}}, Critical, "captured"},
		{"command substitution, bash a child", ev(30, 10, 5, "bash", "-c", "id"),
			&fakeDescriptors{stdio: map[int]Stdio{20: {Out: pipe(7)}}, held: map[int]uint64{10: 7}}, Critical, "captured"},
		{"decoder gone", ev(30, 10, 5, "bash", "-c", "id"),
			&fakeDescriptors{}, Critical, "unshown"},
		{"decoder wrote a file", ev(30, 10, 5, "bash", "-c", "id"),
			&fakeDescriptors{stdio: map[int]Stdio{20: {Out: other("/tmp/key")}}}, 0, ""},
		{"decoder's pipe read by no shell", ev(30, 10, 5, "bash", "-c", "id"),
			&fakeDescriptors{stdio: map[int]Stdio{20: {Out: pipe(7)}}}, 0, ""},
		{"process substitution", ev(30, 10, 5, "bash", "/dev/fd/63"),
			&fakeDescriptors{stdio: map[int]Stdio{20: {Out: pipe(9)}}, fds: map[[2]int]Stream{{30, 63}: pipe(9)}}, Critical, "pipe:[9]"},
		{"inline code run before the decoder", ev(30, 10, -5, "bash", "-c", "id"),
			&fakeDescriptors{stdio: map[int]Stdio{20: {Out: pipe(7)}}, held: map[int]uint64{10: 7}}, 0, ""},
		{"a make recipe is no child of the shell", ev(31, 40, 5, "sh", "-c", "cc x.c"),
			&fakeDescriptors{}, 0, ""},
		{"a script is no inline code", ev(30, 10, 5, "bash", "build.sh"),
			&fakeDescriptors{}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEngine(lineagePolicy(t), "h", fixedNow)
			e.SetProcesses(table)
			e.SetDescriptors(tt.desc)
			if got := e.Evaluate(decoder); len(got) != 0 {
				t.Fatalf("decoder raised %v", names(got))
			}
			got := e.Evaluate(tt.interp)
			if tt.wantPipe == "" {
				if len(got) != 0 {
					t.Fatalf("raised %v, want nothing", names(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("raised %v, want one alert", names(got))
			}
			var pv string
			for _, m := range got[0].Matches {
				if m.Field == "pipe" {
					pv = m.Value
				}
			}
			if got[0].Signature.Importance != tt.wantImp || pv != tt.wantPipe {
				t.Errorf("alert %s with pipe %q, want %s with %q (%+v)", got[0].Signature.Importance, pv, tt.wantImp, tt.wantPipe, got[0].Matches)
			}
		})
	}
}

// More relatives than one check reads: the relay search stops at its cost
// bound and says the pipe is unshown, never that there is none.
func TestRelaySearchBoundedByCost(t *testing.T) {
	kids := make([]int, 0, maxRelayReads+100)
	stdio := map[int]Stdio{10: {Out: pipe(1)}, 11: {In: pipe(3)}}
	for pid := 100; len(kids) < maxRelayReads+99; pid++ {
		kids = append(kids, pid)
		stdio[pid] = Stdio{In: other("/dev/null"), Out: other("/dev/null")}
	}
	// The live filter comes last, past the bound.
	kids = append(kids, 99)
	stdio[99] = Stdio{In: pipe(1), Out: pipe(3)}
	d := &fakeDescriptors{stdio: stdio, children: map[int][]int{5: kids}}
	e := NewEngine(pipedPolicy(t), "h", fixedNow)
	e.SetDescriptors(d)
	b, c := execEvent("/usr/bin/base64", "base64"), execEvent("/usr/bin/curl", "curl")
	b.PID, b.PPID, b.Comm = 10, 5, "base64"
	c.PID, c.PPID, c.Comm = 11, 5, "curl"
	e.Evaluate(b)
	got := e.Evaluate(c)
	if len(got) != 1 || got[0].Signature.Importance != Critical {
		t.Fatalf("raised %v, want one critical alert", got)
	}
	if n := len(d.reads); n > maxRelayReads+8 {
		t.Errorf("read %d processes, want at most the bound %d and a few", n, maxRelayReads)
	}
}

// Without descriptors (a replay, a simulation) no capture can be seen, and
// inline code is paired with no decoder: a decoder and a "sh -c" under
// one shell are everyday work. A /dev/fd/N program still pairs.
func TestLineageWithoutDescriptors(t *testing.T) {
	table := ProcessTable{
		1:  {PID: 1, Exe: "/sbin/init", Argv: []string{"init"}},
		10: {PID: 10, PPID: 1, Exe: "/usr/bin/dash", Argv: []string{"sh", "-c", "script"}},
	}
	ev := func(pid, ppid int, ms int, argv ...string) *audit.Event {
		e := execEvent("/usr/bin/"+argv[0], argv...)
		e.PID, e.PPID, e.Comm, e.Time = pid, ppid, argv[0], evTime.Add(time.Duration(ms)*time.Millisecond)
		return e
	}
	for _, tt := range []struct {
		interp *audit.Event
		want   int
	}{
		{ev(30, 10, 5, "bash", "-c", "id"), 0},
		{ev(30, 10, 5, "bash", "/dev/fd/63"), 1},
	} {
		e := NewEngine(lineagePolicy(t), "h", fixedNow)
		e.SetProcesses(table)
		e.Evaluate(ev(20, 10, 0, "base64", "-d"))
		if got := e.Evaluate(tt.interp); len(got) != tt.want {
			t.Errorf("%q after a decoder raised %v, want %d alert(s)", tt.interp.Argv, names(got), tt.want)
		}
	}
}

// A waiting hit is reused for the next hit of its slot only when that slot
// alone holds it: one stored under several keys (by lineage) still pairs
// as itself after a later hit takes one of its slots, across a reload
// that turns the sequence to by parent and back.
func TestSequenceWaitingHitsKeepTheirSlots(t *testing.T) {
	spec := func(by string) *Policy {
		return mustCompile(t, PolicySpec{Signatures: []SignatureSpec{{
			Name: "seq", Importance: Critical,
			Sequence: &SequenceSpec{By: by, Within: 3 * time.Second, Steps: []StepSpec{
				{Name: "decoder", Conditions: Conditions{"executables": []string{"base64"}, "mode": "decode"}},
				{Name: "interpreter", Conditions: Conditions{"executables": []string{"sh"}}},
			}},
		}}})
	}
	ev := func(pid, ppid int, argv ...string) *audit.Event {
		e := execEvent("/usr/bin/"+argv[0], argv...)
		e.PID, e.PPID, e.Comm = pid, ppid, argv[0]
		return e
	}
	tests := []struct {
		name    string
		by      []string // the sequence's by at each event
		events  []*audit.Event
		wantPID int // the interpreter the decoder pairs with
	}{
		{"by parent, the later shell", []string{"parent", "parent", "parent"},
			[]*audit.Event{ev(10, 5, "sh"), ev(11, 5, "sh"), ev(12, 5, "base64", "-d")}, 11},
		{"by lineage, a slot of the first shell taken by its child", []string{"lineage", "lineage", "lineage"},
			[]*audit.Event{ev(10, 5, "sh"), ev(20, 10, "sh"), ev(30, 5, "base64", "-d")}, 10},
		{"lineage, then by parent", []string{"lineage", "parent", "lineage"},
			[]*audit.Event{ev(10, 5, "sh"), ev(11, 5, "sh"), ev(40, 10, "base64", "-d")}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEngine(spec(tt.by[0]), "h", fixedNow)
			var got []Alert
			for i, ev := range tt.events {
				e.Swap(spec(tt.by[i]))
				got = e.Evaluate(ev)
				if i < len(tt.events)-1 && len(got) != 0 {
					t.Fatalf("event %d raised %v", i, names(got))
				}
			}
			if len(got) != 1 || len(got[0].Related) != 1 {
				t.Fatalf("decoder raised %v, want one alert with its interpreter", names(got))
			}
			if pid := got[0].Related[0].PID; pid != tt.wantPID {
				t.Errorf("decoder paired with pid %d, want %d", pid, tt.wantPID)
			}
		})
	}
}

// appendingTable is a ProcessTable that also appends ancestries, as
// proc.Cache does, into the buffer the engine reuses.
type appendingTable struct{ ProcessTable }

func (t appendingTable) AppendAncestry(dst []Process, pid, max int) []Process {
	return AppendAncestry(dst, pid, max, func(pid int) (Process, bool) {
		p, ok := t.ProcessTable[pid]
		return p, ok
	})
}

// An alert keeps its own ancestry when the engine reuses its buffer for
// the next exec, and an exec with no known parent has none (nil).
func TestAlertAncestryOutlivesTheBuffer(t *testing.T) {
	e := NewEngine(mustCompile(t, PolicySpec{Signatures: []SignatureSpec{encoderSpec}}), "h", fixedNow)
	e.Uncap()
	e.SetProcesses(appendingTable{ProcessTable{
		10: {PID: 10, PPID: 1, Exe: "/usr/bin/bash", Argv: []string{"bash"}},
		20: {PID: 20, PPID: 1, Exe: "/usr/bin/make", Argv: []string{"make"}},
	}})
	ev := func(pid, ppid int) *audit.Event {
		e := execEvent("/usr/bin/base64", "base64", "-d")
		e.PID, e.PPID, e.Serial = pid, ppid, uint64(pid)
		return e
	}
	first := e.Evaluate(ev(11, 10))
	second := e.Evaluate(ev(21, 20))
	none := e.Evaluate(ev(31, 30))
	if len(first) != 1 || len(second) != 1 || len(none) != 1 {
		t.Fatalf("raised %v, %v and %v, want one alert each", names(first), names(second), names(none))
	}
	if anc := first[0].Ancestry; len(anc) != 1 || anc[0].Exe != "/usr/bin/bash" {
		t.Errorf("first alert's ancestry = %v, want bash", anc)
	}
	if anc := second[0].Ancestry; len(anc) != 1 || anc[0].Exe != "/usr/bin/make" {
		t.Errorf("second alert's ancestry = %v, want make", anc)
	}
	if anc := none[0].Ancestry; anc != nil {
		t.Errorf("ancestry of an exec with no known parent = %#v, want nil", anc)
	}
}
