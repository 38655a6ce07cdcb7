package audit

import (
	"fmt"
	"testing"
	"time"
)

// TestAssemblerKeysByNode pushes the records of the same serials from two
// hosts, interleaved record by record, and a third host whose serials lie
// far away: each host's events are whole and carry its node.
func TestAssemblerKeysByNode(t *testing.T) {
	event := func(node string, serial int, arg string) []Record {
		h := fmt.Sprintf("node=%s audit(1.000:%d): ", node, serial)
		return []Record{
			{RecSyscall, []byte(h + "arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 uid=0")},
			{RecExecve, []byte(h + `argc=2 a0="echo" a1="` + arg + `"`)},
			{RecCwd, []byte(h + `cwd="/"`)},
			{RecProctitle, []byte(h + "proctitle=6563686F")},
		}
	}
	for _, mode := range []Mode{ModeLive, ModeReplay} {
		a := NewAssembler(AssemblerConfig{Mode: mode})
		var got []*Event
		emit := func(e *Event) { got = append(got, e) }
		const n = 200
		for i := range n {
			x, y, z := event("a", 100+i, "a"), event("b", 100+i, "b"), event("c", 5_000_000+i, "c")
			for r := range x {
				a.Push(x[r], time.Time{}, emit)
				a.Push(y[r], time.Time{}, emit)
			}
			for _, r := range z {
				a.Push(r, time.Time{}, emit)
			}
		}
		a.Flush(emit)
		count := map[string]int{}
		for _, e := range got {
			if len(e.Argv) != 2 || e.Argv[1] != e.Node || e.Incomplete && mode == ModeReplay {
				t.Errorf("mode %d: event %+v, want whole, argv[1] = its node", mode, e)
				break
			}
			count[e.Node]++
		}
		if count["a"] != n || count["b"] != n || count["c"] != n {
			t.Errorf("mode %d: events by node = %v, want %d each", mode, count, n)
		}
		if st := a.Stats(); st.Lost != 0 || st.Malformed != 0 {
			t.Errorf("mode %d: Stats = %+v, want nothing lost or malformed", mode, st)
		}
	}
}

// TestAssemblerPrunesIdleNodes keeps the node windows bounded when a log
// names endless hosts.
func TestAssemblerPrunesIdleNodes(t *testing.T) {
	a := NewAssembler(AssemblerConfig{Mode: ModeReplay})
	for i := range 3 * maxNodes {
		h := fmt.Sprintf("node=h%d audit(1.000:%d): ", i, 7)
		a.Push(Record{RecSyscall, []byte(h + "syscall=59 pid=1 ppid=1")}, time.Time{}, func(*Event) {})
		a.Push(Record{RecProctitle, []byte(h + "proctitle=6563686F")}, time.Time{}, func(*Event) {})
	}
	if len(a.nodes) > maxNodes {
		t.Errorf("node windows = %d, want at most %d", len(a.nodes), maxNodes)
	}
}
