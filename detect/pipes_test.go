package detect

import (
	"strings"
	"testing"
	"time"

	"github.com/encwatch/encwatch/audit"
)

func pipe(ino uint64) Stream   { return Stream{Kind: StreamPipe, Ino: ino} }
func other(name string) Stream { return Stream{Kind: StreamOther, Name: name} }

func TestPipeCheck(t *testing.T) {
	tty := other("/dev/pts/0")
	tests := []struct {
		name           string
		prod, cons     Stdio
		parent         Stdio
		relays         []Stdio
		want           PipeVerdict
		wantWhy        string
		wantRelaysRead bool
		incomplete     bool
	}{
		{"shared pipe", Stdio{In: tty, Out: pipe(7)}, Stdio{In: pipe(7), Out: tty}, Stdio{In: tty, Out: tty}, nil, PipeShown, "pipe:[7]", false, false},
		{"shared named fifo", Stdio{Out: other("/tmp/p")}, Stdio{In: other("/tmp/p")}, Stdio{}, nil, PipeShown, `the file "/tmp/p"`, false, false},
		{"same terminal is no pipe", Stdio{Out: tty}, Stdio{In: tty}, Stdio{In: tty, Out: tty}, nil, PipeRefuted, `network's standard input is "/dev/pts/0", not a pipe`, false, false},
		{"consumer reads /dev/null, producer gone", Stdio{}, Stdio{In: other("/dev/null")}, Stdio{}, nil, PipeRefuted, `network's standard input is "/dev/null"`, false, false},
		{"consumer reads its parent's stdin", Stdio{}, Stdio{In: pipe(3)}, Stdio{In: pipe(3)}, nil, PipeRefuted, "its parent's, pipe:[3]", false, false},
		{"producer writes a file, consumer gone", Stdio{Out: other("/tmp/out")}, Stdio{}, Stdio{}, nil, PipeRefuted, `encoder's standard output is "/tmp/out", not a pipe`, false, false},
		{"producer writes its parent's stdout", Stdio{Out: pipe(4)}, Stdio{In: pipe(9)}, Stdio{Out: pipe(4)}, nil, PipeRefuted, "encoder's standard output is its parent's", false, false},
		{"producer gone", Stdio{}, Stdio{In: pipe(9)}, Stdio{In: tty}, nil, PipeUnshown, "encoder", false, false},
		{"consumer gone", Stdio{Out: pipe(9)}, Stdio{}, Stdio{}, nil, PipeUnshown, "network", false, false},
		{"through two filters", Stdio{Out: pipe(1)}, Stdio{In: pipe(3)}, Stdio{},
			[]Stdio{{In: pipe(2), Out: pipe(3)}, {In: tty, Out: tty}, {In: pipe(1), Out: pipe(2)}}, PipeShown, "pipe:[1] through 2 filter(s) to pipe:[3]", true, false},
		{"filters that join nothing", Stdio{Out: pipe(1)}, Stdio{In: pipe(3)}, Stdio{},
			[]Stdio{{In: pipe(1), Out: pipe(2)}, {In: pipe(2), Out: pipe(1)}}, PipeUnshown, "no live relative joins them", true, false},
		{"different pipes, no siblings", Stdio{Out: pipe(1)}, Stdio{In: pipe(3)}, Stdio{}, nil, PipeUnshown, "encoder writes pipe:[1] and network reads pipe:[3]", true, false},
		// More relatives than one check reads (an attacker's 40 sleeps
		// and more), or one gone while read: not evidence of no pipe.
		{"relatives not all read", Stdio{Out: pipe(1)}, Stdio{In: pipe(3)}, Stdio{},
			[]Stdio{{In: tty, Out: tty}}, PipeUnshown, "not every process that could join them was read", true, true},
		{"a relative gone while read", Stdio{Out: pipe(1)}, Stdio{In: pipe(3)}, Stdio{},
			[]Stdio{{In: pipe(1)}}, PipeUnshown, "not every process", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := false
			got, why := pipeCheck(tt.prod, tt.cons, tt.parent, func() ([]Stdio, bool) { read = true; return tt.relays, !tt.incomplete }, "encoder", "network")
			if got != tt.want || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("pipeCheck = %v, %q, want %v, containing %q", got, why, tt.want, tt.wantWhy)
			}
			if read != tt.wantRelaysRead {
				t.Errorf("relays read = %v, want %v", read, tt.wantRelaysRead)
			}
		})
	}
}

// fakeDescriptors answers Stdio from a table, and counts the reads.
type fakeDescriptors struct {
	stdio    map[int]Stdio
	children map[int][]int
	fds      map[[2]int]Stream
	held     map[int]uint64
	reads    []int
}

func (f *fakeDescriptors) Stdio(pid int, comm string) Stdio {
	f.reads = append(f.reads, pid)
	return f.stdio[pid]
}

func (f *fakeDescriptors) Children(pid, max int) ([]int, bool) {
	k := f.children[pid]
	if len(k) > max {
		return k[:max], false
	}
	return k, true
}

func (f *fakeDescriptors) FD(pid int, comm string, fd int) Stream {
	f.reads = append(f.reads, pid)
	return f.fds[[2]int{pid, fd}]
}

func (f *fakeDescriptors) Holds(pid int, s Stream, max int) (bool, bool) {
	return f.held[pid] == s.Ino && s.Ino != 0, true
}

func pipedPolicy(t *testing.T) *Policy {
	return mustCompile(t, PolicySpec{Signatures: []SignatureSpec{{
		Name: "exfil", Importance: Critical,
		Sequence: &SequenceSpec{By: "parent", Within: 10 * time.Second, Steps: []StepSpec{
			{Name: "encoder", Conditions: Conditions{"executables": []string{"base64"}}},
			{Name: "network", Conditions: Conditions{"executables": []string{"curl"}}},
		}, Pipe: &PipeSpec{From: "encoder", To: "network", Unpiped: Medium}},
	}}})
}

func TestSequencePipeEvidence(t *testing.T) {
	ev := func(exe string, pid int, ms int) *audit.Event {
		e := execEvent("/usr/bin/"+exe, exe, "x")
		e.PID, e.PPID, e.Comm, e.Time = pid, 5, exe, evTime.Add(time.Duration(ms)*time.Millisecond)
		return e
	}
	tests := []struct {
		name      string
		stdio     map[int]Stdio
		curlFirst bool
		wantImp   Importance
		wantPipe  string
	}{
		{"shared pipe", map[int]Stdio{10: {Out: pipe(7)}, 11: {In: pipe(7)}}, false, Critical, "pipe:[7]"},
		{"shared pipe, curl first", map[int]Stdio{10: {Out: pipe(7)}, 11: {In: pipe(7)}}, true, Critical, "pipe:[7]"},
		{"curl reads a terminal", map[int]Stdio{10: {Out: pipe(7)}, 11: {In: other("/dev/pts/1")}}, false, Medium, "none"},
		{"both gone", map[int]Stdio{}, false, Critical, "unshown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEngine(pipedPolicy(t), "h", fixedNow)
			d := &fakeDescriptors{stdio: tt.stdio}
			e.SetDescriptors(d)
			evs := []*audit.Event{ev("base64", 10, 0), ev("curl", 11, 5)}
			if tt.curlFirst {
				evs[0], evs[1] = evs[1], evs[0]
			}
			if got := e.Evaluate(evs[0]); len(got) != 0 {
				t.Fatalf("first step raised %v", names(got))
			}
			if tt.curlFirst && len(d.reads) != 0 {
				t.Errorf("the consumer's descriptors were read before the sequence completed: %v", d.reads)
			}
			got := e.Evaluate(evs[1])
			if len(got) != 1 {
				t.Fatalf("second step raised %v, want one alert", names(got))
			}
			a := got[0]
			var pipeVal string
			for _, m := range a.Matches {
				if m.Field == "pipe" {
					pipeVal = m.Value
				}
			}
			if a.Signature.Importance != tt.wantImp || pipeVal != tt.wantPipe {
				t.Errorf("alert %s with pipe %q, want %s with %q (matches %+v)", a.Signature.Importance, pipeVal, tt.wantImp, tt.wantPipe, a.Matches)
			}
		})
	}

	// Without Descriptors (replay) the pipe is not checked: the signature's
	// importance, and no pipe match.
	e := NewEngine(pipedPolicy(t), "h", fixedNow)
	e.Evaluate(ev("base64", 10, 0))
	got := e.Evaluate(ev("curl", 11, 5))
	if len(got) != 1 || got[0].Signature.Importance != Critical {
		t.Fatalf("replayed sequence raised %v, want one critical alert", got)
	}
	for _, m := range got[0].Matches {
		if m.Field == "pipe" {
			t.Errorf("replayed sequence has a pipe match %+v", m)
		}
	}
}

func TestCompilePipeNames(t *testing.T) {
	spec := func(from, to string) PolicySpec {
		return PolicySpec{Signatures: []SignatureSpec{{Name: "s", Importance: High, Sequence: &SequenceSpec{By: "parent", Within: time.Second, Steps: []StepSpec{
			{Name: "a", Conditions: Conditions{"executables": []string{"x"}}},
			{Name: "b", Conditions: Conditions{"executables": []string{"y"}}},
		}, Pipe: &PipeSpec{From: from, To: to, Unpiped: Low}}}}}
	}
	for _, c := range [][2]string{{"a", "a"}, {"a", "c"}, {"", "b"}} {
		if _, err := Compile(spec(c[0], c[1])); err == nil || !strings.Contains(err.Error(), "want the two step names") {
			t.Errorf("pipe %q | %q: err = %v, want it refused", c[0], c[1], err)
		}
	}
	if _, err := Compile(spec("b", "a")); err != nil {
		t.Errorf("pipe b | a: %v", err)
	}
}
