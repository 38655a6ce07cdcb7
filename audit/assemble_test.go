package audit

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// t0 is the arrival time the tests start from; time is injected, never slept.
var t0 = time.Unix(1795759259, 0)

// rec makes a record of serial with the given fields.
func rec(typ uint16, serial uint64, body string) Record {
	return Record{Type: typ, Data: fmt.Appendf(nil, "audit(1795759259.157:%d): %s", serial, body)}
}

// hexArg encodes s as the kernel writes an argument that needs escaping.
func hexArg(s string) string { return fmt.Sprintf("%X", s) }

// execRecords are the records of a successful execve of argv, without EOE.
func execRecords(serial uint64, argv ...string) []Record {
	var ex strings.Builder
	fmt.Fprintf(&ex, "argc=%d", len(argv))
	for i, a := range argv {
		fmt.Fprintf(&ex, " a%d=%s", i, hexArg(a))
	}
	return []Record{
		rec(RecSyscall, serial, `arch=c000003e syscall=59 success=yes exit=0 a0=7fb0777840 items=1 ppid=1 pid=2 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="x" exe="/bin/x" key="k"`),
		rec(RecExecve, serial, ex.String()),
		rec(RecCwd, serial, `cwd="/"`),
		rec(RecPath, serial, `item=0 name="/bin/x" inode=1 dev=fe:00 mode=0100755 nametype=NORMAL cap_fp=0`),
		rec(RecProctitle, serial, `proctitle=`+hexArg(strings.Join(argv, "\x00"))),
	}
}

// collector gathers emitted events.
type collector struct{ events []*Event }

func (c *collector) emit(e *Event) { c.events = append(c.events, e) }

func (c *collector) argvs() [][]string {
	var out [][]string
	for _, e := range c.events {
		out = append(out, e.Argv)
	}
	return out
}

// pushAll pushes records, all at time now.
func pushAll(a *Assembler, c *collector, now time.Time, recs ...Record) {
	for _, r := range recs {
		a.Push(r, now, c.emit)
	}
}

// readCapture returns the records of testdata/kernel-capture.log; withEOE
// false drops the EOE lines, as auditd's log files do.
func readCapture(t *testing.T, withEOE bool) []Record {
	t.Helper()
	data, err := os.ReadFile("testdata/kernel-capture.log")
	if err != nil {
		t.Fatal(err)
	}
	if !withEOE {
		var kept [][]byte
		for _, l := range bytes.Split(data, []byte("\n")) {
			if !bytes.HasPrefix(l, []byte("type=EOE ")) {
				kept = append(kept, l)
			}
		}
		data = bytes.Join(kept, []byte("\n"))
	}
	recs, errs, _ := readAll(t, bytes.NewReader(data))
	if len(errs) != 0 {
		t.Fatalf("reading the capture: %v", errs)
	}
	return recs
}

// captureArgv is what the capture script ran, by serial.
func captureArgv() map[uint64][]string {
	many := []string{"/bin/true"}
	for i := range 3000 {
		many = append(many, fmt.Sprintf("arg%d", i))
	}
	return map[uint64][]string{
		6:  {"/usr/bin/base64", "--decode", "/etc/hostname"},
		7:  {"/bin/echo", "", "x", strings.Repeat("QUJD", 5000)},
		8:  {"/bin/echo", "", "a", "", ""},
		9:  many,
		10: {"/bin/echo", "caf\xe9 \x1b[31m\n\"quoted\"", "tab\there"},
		11: {"/bin/sh", "-c", "echo ZWNobyBoZWxsbwo= | base64 -d | sh"},
		12: {"base64", "-d"}, // the pipeline's base64, run by serial 11's sh
		13: {"sh"},           // and its sh
		14: {"/bin/sh", "-c", "nonexistent-encwatch-cmd; true"},
	}
}

func TestAssembleKernelCapture(t *testing.T) {
	for _, mode := range []struct {
		name    string
		mode    Mode
		withEOE bool
	}{{"live", ModeLive, true}, {"replay auditd log", ModeReplay, false}, {"replay with EOE", ModeReplay, true}} {
		t.Run(mode.name, func(t *testing.T) {
			var other []*ParsedRecord
			a := NewAssembler(AssemblerConfig{Mode: mode.mode, Other: func(p *ParsedRecord) { other = append(other, p) }})
			c := &collector{}
			recs := readCapture(t, mode.withEOE)
			pushAll(a, c, t0, recs...)
			if n := inFlight(a); n != 0 {
				t.Errorf("InFlight() = %d after the last closing record, want 0", n)
			}
			a.Flush(c.emit)

			want := captureArgv()
			if len(c.events) != len(want) {
				t.Fatalf("got %d events, want %d", len(c.events), len(want))
			}
			for _, e := range c.events {
				w, ok := want[e.Serial]
				if !ok {
					t.Errorf("unexpected event serial %d", e.Serial)
					continue
				}
				if !reflect.DeepEqual(e.Argv, w) {
					t.Errorf("serial %d: Argv = %.200q, want %.200q", e.Serial, e.Argv, w)
				}
				if e.Argc != len(w) || e.Incomplete || !e.Success || !e.IsExec() || e.Key != "encwatch-capture" || e.Cwd != "/work/main" || len(e.Paths) != 2 {
					t.Errorf("serial %d: Argc %d Incomplete %v Success %v IsExec %v Key %q Cwd %q Paths %d, want %d false true true encwatch-capture /work/main 2",
						e.Serial, e.Argc, e.Incomplete, e.Success, e.IsExec(), e.Key, e.Cwd, len(e.Paths), len(w))
				}
			}

			// With BPRM_FCAPS and EOE; 3000 arguments take 7 EXECVE records,
			// the long one 6. In replay mode the event closes on PROCTITLE,
			// so an EOE after it is not part of it.
			wantRecords := 8
			if mode.mode == ModeReplay {
				wantRecords = 7
			}
			for _, e := range c.events {
				n := wantRecords
				switch e.Serial {
				case 7:
					n += 5
				case 9:
					n += 6
				}
				if e.Records != n {
					t.Errorf("serial %d: Records = %d, want %d", e.Serial, e.Records, n)
				}
			}

			var otherSerials []uint64
			for _, p := range other {
				if p.Type != RecConfigChange {
					t.Errorf("Other got a %s record, want CONFIG_CHANGE only", typeName(p.Type))
				}
				otherSerials = append(otherSerials, p.Serial)
			}
			if !reflect.DeepEqual(otherSerials, []uint64{3, 4, 5}) {
				t.Errorf("Other got serials %v, want [3 4 5]", otherSerials)
			}
			got := a.Stats()
			wantStats := AssemblerStats{Records: uint64(len(recs)), Events: 9, Other: 3}
			if got != wantStats {
				t.Errorf("Stats() = %+v, want %+v", got, wantStats)
			}
		})
	}
}

func TestAssembleKernelCaptureFields(t *testing.T) {
	a := NewAssembler(AssemblerConfig{})
	c := &collector{}
	pushAll(a, c, t0, readCapture(t, true)...)
	want := &Event{
		Time:   time.Unix(1795759259, 157e6),
		Serial: 6,
		Arch:   ArchX86_64, Syscall: 59, Success: true, Exit: 0,
		PID: 2817, PPID: 2810,
		AUID: Unset, Session: Unset,
		TTY: "(none)", Comm: "base64", Exe: "/usr/bin/base64", Key: "encwatch-capture",
		Argc: 3, Argv: []string{"/usr/bin/base64", "--decode", "/etc/hostname"},
		Cwd: "/work/main",
		Paths: []Path{
			{Item: 0, Name: "/usr/bin/base64", Inode: 246996, Dev: "fe:00", Mode: 0o100755, Nametype: "NORMAL"},
			{Item: 1, Name: "/lib64/ld-linux-x86-64.so.2", Inode: 325835, Dev: "fe:00", Mode: 0o100755, Nametype: "NORMAL"},
		},
		Proctitle: "/usr/bin/base64\x00--decode\x00/etc/hostname",
		Records:   8,
	}
	if len(c.events) == 0 {
		t.Fatal("no events")
	}
	got := c.events[0]
	if !got.Time.Equal(want.Time) {
		t.Errorf("Time = %v, want %v", got.Time, want.Time)
	}
	got.Time = want.Time
	if !reflect.DeepEqual(got, want) {
		t.Errorf("event =\n%+v\nwant\n%+v", got, want)
	}
	if p := c.events[1].Proctitle; !strings.HasPrefix(p, "/bin/echo\x00\x00x\x00QUJD") {
		t.Errorf("serial 7 Proctitle = %.40q, want it to start with /bin/echo NUL NUL x NUL QUJD", p)
	}
}

func TestAssembleLiveTimeout(t *testing.T) {
	a := NewAssembler(AssemblerConfig{Mode: ModeLive})
	c := &collector{}
	pushAll(a, c, t0, execRecords(1, "/bin/x", "y")...) // no EOE
	a.Expire(t0.Add(DefaultTimeout-time.Millisecond), c.emit)
	if len(c.events) != 0 {
		t.Fatalf("Expire before Timeout emitted %d events, want 0", len(c.events))
	}
	a.Expire(t0.Add(DefaultTimeout), c.emit)
	if len(c.events) != 1 {
		t.Fatalf("Expire at Timeout emitted %d events, want 1", len(c.events))
	}
	e := c.events[0]
	if !e.Incomplete || !reflect.DeepEqual(e.Argv, []string{"/bin/x", "y"}) {
		t.Errorf("timed-out event: Incomplete %v Argv %q, want true [/bin/x y]", e.Incomplete, e.Argv)
	}
	if got := a.Stats(); got.Incomplete != 1 || got.Events != 1 {
		t.Errorf("Stats() = %+v, want 1 event, 1 incomplete", got)
	}
}

func TestAssembleLiveEOE(t *testing.T) {
	a := NewAssembler(AssemblerConfig{Mode: ModeLive})
	c := &collector{}
	pushAll(a, c, t0, execRecords(1, "/bin/x")...)
	if len(c.events) != 0 {
		t.Fatalf("live mode emitted on PROCTITLE, want to wait for EOE")
	}
	pushAll(a, c, t0, rec(RecEOE, 1, ""), rec(RecEOE, 1, "")) // a duplicate EOE is ignored
	if len(c.events) != 1 || c.events[0].Incomplete {
		t.Fatalf("events after EOE = %+v, want one complete event", c.events)
	}
	if got := a.Stats(); got.Orphaned != 0 || got.Records != 7 {
		t.Errorf("Stats() = %+v, want 7 records, 0 orphaned", got)
	}
}

func TestAssembleReplay(t *testing.T) {
	a := NewAssembler(AssemblerConfig{Mode: ModeReplay})
	c := &collector{}
	pushAll(a, c, t0, execRecords(1, "/bin/a")...)
	if len(c.events) != 1 || c.events[0].Incomplete {
		t.Fatalf("replay: events after PROCTITLE = %d, want 1 complete", len(c.events))
	}
	// An event missing its PROCTITLE stays open whatever the wall clock says.
	pushAll(a, c, t0, execRecords(2, "/bin/b")[:4]...)
	a.Expire(t0.Add(time.Hour), c.emit)
	if len(c.events) != 1 {
		t.Fatalf("replay: Expire emitted an event, want none (no wall-clock timer in replay)")
	}
	a.Flush(c.emit)
	if len(c.events) != 2 || !c.events[1].Incomplete || c.events[1].Argv[0] != "/bin/b" {
		t.Fatalf("replay: Flush gave %+v, want the /bin/b event, Incomplete", c.events[1:])
	}
}

func TestAssembleHorizon(t *testing.T) {
	for _, mode := range []Mode{ModeLive, ModeReplay} {
		a := NewAssembler(AssemblerConfig{Mode: mode})
		c := &collector{}
		pushAll(a, c, t0, execRecords(100, "/bin/a")[:2]...)
		pushAll(a, c, t0, rec(RecConfigChange, 100+DefaultHorizon, "op=x"))
		if len(c.events) != 0 {
			t.Fatalf("mode %d: event emitted %d serials behind, want it kept open", mode, DefaultHorizon)
		}
		pushAll(a, c, t0, rec(RecConfigChange, 101+DefaultHorizon, "op=x"))
		if len(c.events) != 1 || !c.events[0].Incomplete {
			t.Fatalf("mode %d: %d events once the stream is past the horizon, want 1 incomplete", mode, len(c.events))
		}
	}
}

func TestAssembleInterleaved(t *testing.T) {
	a := NewAssembler(AssemblerConfig{Mode: ModeLive})
	c := &collector{}
	x, y := execRecords(20, "/bin/x", "1"), execRecords(21, "/bin/y", "2")
	for i := range x {
		pushAll(a, c, t0, y[i], x[i])
	}
	pushAll(a, c, t0, rec(RecEOE, 21, ""), rec(RecEOE, 20, ""))
	want := [][]string{{"/bin/y", "2"}, {"/bin/x", "1"}}
	if got := c.argvs(); !reflect.DeepEqual(got, want) {
		t.Errorf("interleaved events Argv = %q, want %q", got, want)
	}
	if got := a.Stats(); got.Lost != 0 || got.Incomplete != 0 {
		t.Errorf("Stats() = %+v, want nothing lost or incomplete", got)
	}
}

func TestAssembleLoss(t *testing.T) {
	const max32 = math.MaxUint32
	tests := []struct {
		name    string
		serials []uint64
		want    uint64
	}{
		{"consecutive", []uint64{1, 2, 3, 4, 5}, 0},
		{"gap", []uint64{10, 11, 15}, 3},
		{"reordered", []uint64{10, 12, 11, 14, 13}, 0},
		{"late within window", []uint64{10, 70, 11, 12}, 57},
		{"late beyond window", []uint64{100, 300, 150}, 199},
		{"earlier than the first", []uint64{10, 9, 8}, 0},
		{"wrap 2^32, kernel skips 0", []uint64{max32 - 1, max32, 1, 2}, 0},
		{"wrap 2^32 with gap", []uint64{max32, 3}, 2},
		{"wrap 2^32 with wide gap", []uint64{max32, 100}, 99},
		{"wrap 2^64", []uint64{math.MaxUint64 - 1, math.MaxUint64, 0, 1}, 0},
		{"restart backwards", []uint64{5000000, 5000001, 3, 4}, 0},
		{"restart forwards", []uint64{3, 4, 5000000, 5000001}, 0},
		{"duplicates", []uint64{7, 7, 7, 8}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAssembler(AssemblerConfig{})
			c := &collector{}
			for _, s := range tt.serials {
				pushAll(a, c, t0, rec(RecConfigChange, s, "op=x"))
			}
			a.Flush(c.emit)
			if got := a.Stats().Lost; got != tt.want {
				t.Errorf("serials %v: Lost = %d, want %d", tt.serials, got, tt.want)
			}
		})
	}
}

func TestAssembleDaemonSerialsIgnored(t *testing.T) {
	a := NewAssembler(AssemblerConfig{})
	c := &collector{}
	pushAll(a, c, t0, rec(RecConfigChange, 10, "op=x"), rec(1200, 9000, "op=start"), rec(RecConfigChange, 11, "op=x"))
	a.Flush(c.emit)
	if got := a.Stats(); got.Lost != 0 || got.Other != 3 {
		t.Errorf("Stats() = %+v, want 0 lost, 3 other (DAEMON_START has its own serials)", got)
	}
}

func TestAssembleEviction(t *testing.T) {
	a := NewAssembler(AssemblerConfig{MaxInFlight: 2})
	c := &collector{}
	for s := uint64(1); s <= 3; s++ {
		pushAll(a, c, t0, execRecords(s, fmt.Sprint("/bin/", s))...)
	}
	if len(c.events) != 1 || c.events[0].Serial != 1 || !c.events[0].Incomplete {
		t.Fatalf("events at the bound = %+v, want serial 1 evicted, Incomplete", c.events)
	}
	if got := a.Stats(); got.Evicted != 1 || inFlight(a) != 2 {
		t.Errorf("Stats() = %+v, InFlight %d, want 1 evicted, 2 in flight", got, inFlight(a))
	}
}

func TestAssembleFailedExec(t *testing.T) {
	a := NewAssembler(AssemblerConfig{Mode: ModeLive})
	c := &collector{}
	pushAll(a, c, t0,
		rec(RecSyscall, 30, `arch=c000003e syscall=59 success=no exit=-2 a0=55 items=1 ppid=1 pid=9 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="sh" exe="/usr/bin/dash" key="encwatch"`),
		rec(RecCwd, 30, `cwd="/root"`),
		rec(RecPath, 30, `item=0 name="/usr/local/bin/nonexistent" nametype=UNKNOWN cap_fp=0`),
		rec(RecProctitle, 30, `proctitle=`+hexArg("/bin/sh\x00-c\x00nonexistent; true")),
		rec(RecEOE, 30, ""),
	)
	if len(c.events) != 1 {
		t.Fatalf("got %d events for a failed exec, want 1", len(c.events))
	}
	e := c.events[0]
	if e.Success || e.Exit != -2 || !e.IsExec() || e.Incomplete {
		t.Errorf("failed exec: Success %v Exit %d IsExec %v Incomplete %v, want false -2 true false", e.Success, e.Exit, e.IsExec(), e.Incomplete)
	}
	if e.Argc != 0 || !reflect.DeepEqual(e.Argv, []string{"/bin/sh", "-c", "nonexistent; true"}) {
		t.Errorf("failed exec: Argc %d Argv %q, want 0 and argv from proctitle", e.Argc, e.Argv)
	}
	if len(e.Paths) != 1 || e.Paths[0].Name != "/usr/local/bin/nonexistent" || e.Paths[0].Inode != 0 {
		t.Errorf("failed exec: Paths = %+v, want the attempted path", e.Paths)
	}
}

func TestAssembleArgv(t *testing.T) {
	tests := []struct {
		name           string
		execve         []string // EXECVE record bodies
		want           []string
		wantIncomplete bool
	}{
		{"plain", []string{`argc=2 a0="a" a1="b"`}, []string{"a", "b"}, false},
		{"empty args kept", []string{`argc=4 a0="" a1="x" a2="" a3=""`}, []string{"", "x", "", ""}, false},
		{"split hex", []string{`argc=2 a0="a" a1_len=8 a1[0]=6162`, ` a1[1]=6364`}, []string{"a", "abcd"}, false},
		{"split quoted", []string{`argc=1 a0_len=4 a0[0]="ab" a0[1]="cd"`}, []string{"abcd"}, false},
		{"split pieces not contiguous", []string{`argc=3 a0="a" a1[0]=6162 a2="z" a1[1]=6364`}, []string{"a", "abcd", "z"}, true},
		{"split starting late", []string{`argc=1 a0[1]=6364`}, []string{"cd"}, true},
		{"several records", []string{`argc=3 a0="a"`, ` a1="b"`, ` a2="c"`}, []string{"a", "b", "c"}, false},
		{"argc larger than argv", []string{`argc=3 a0="a"`}, []string{"a"}, true},
		{"missing middle argument", []string{`argc=3 a0="a" a2="c"`}, []string{"a", "", "c"}, true},
		{"implausible index", []string{`argc=1 a0="a" a999999999="b"`}, []string{"a"}, true},
		{"bad hex", []string{`argc=2 a0="a" a1=6`}, []string{"a"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAssembler(AssemblerConfig{Mode: ModeReplay})
			c := &collector{}
			pushAll(a, c, t0, rec(RecSyscall, 5, `arch=c000003e syscall=59 success=yes exit=0`))
			for _, b := range tt.execve {
				pushAll(a, c, t0, rec(RecExecve, 5, b))
			}
			pushAll(a, c, t0, rec(RecProctitle, 5, `proctitle="a"`))
			if len(c.events) != 1 {
				t.Fatalf("got %d events, want 1", len(c.events))
			}
			if got := c.events[0]; !reflect.DeepEqual(got.Argv, tt.want) || got.Incomplete != tt.wantIncomplete {
				t.Errorf("EXECVE %q: Argv %q Incomplete %v, want %q %v", tt.execve, got.Argv, got.Incomplete, tt.want, tt.wantIncomplete)
			}
		})
	}
}

func TestAssembleMalformed(t *testing.T) {
	a := NewAssembler(AssemblerConfig{Mode: ModeLive})
	c := &collector{}
	pushAll(a, c, t0,
		Record{Type: RecSyscall, Data: []byte("audit(garbage")},
		rec(RecSyscall, 40, `arch=c000003e syscall=59 success=yes exit=0 pid=1 comm="unterminated`),
		rec(RecSyscall, 41, `arch=zz syscall=59 pid=99999999999999999999`),
		rec(RecEOE, 40, ""),
		rec(RecEOE, 41, ""),
	)
	if got := a.Stats(); got.Malformed != 3 || got.Events != 2 || got.Incomplete != 2 {
		t.Errorf("Stats() = %+v, want 3 malformed, 2 events, 2 incomplete", got)
	}
	if len(c.events) == 2 && c.events[0].PID != 1 {
		t.Errorf("fields before the fault: PID = %d, want 1", c.events[0].PID)
	}
}

func TestAssembleOrphan(t *testing.T) {
	a := NewAssembler(AssemblerConfig{Mode: ModeLive})
	c := &collector{}
	pushAll(a, c, t0, rec(RecExecve, 50, `argc=1 a0="x"`), rec(RecEOE, 50, ""))
	if got := a.Stats(); len(c.events) != 0 || got.Orphaned != 1 {
		t.Errorf("EXECVE without SYSCALL: %d events, Stats %+v, want 0 events, 1 orphaned", len(c.events), got)
	}
}

func TestAssembleNodeAndEnriched(t *testing.T) {
	a := NewAssembler(AssemblerConfig{Mode: ModeReplay})
	c := &collector{}
	lines := []string{
		"node=db-2 type=SYSCALL msg=audit(1795759259.157:60): arch=c000003e syscall=59 success=yes exit=0 uid=1000 auid=1000 ses=2 comm=\"ls\" key=\"k\"\x1dARCH=x86_64 SYSCALL=execve AUID=\"alice\" UID=\"alice\" uid=5",
		"node=db-2 type=EXECVE msg=audit(1795759259.157:60): argc=1 a0=\"ls\"",
		"node=db-2 type=PROCTITLE msg=audit(1795759259.157:60): proctitle=\"ls\"",
	}
	for _, l := range lines {
		r, err := parseLogLine([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		a.Push(r, t0, c.emit)
	}
	if len(c.events) != 1 {
		t.Fatalf("got %d events, want 1", len(c.events))
	}
	e := c.events[0]
	if e.Node != "db-2" || e.UID != 1000 || e.AUID != 1000 || e.Session != 2 || e.Key != "k" || e.Comm != "ls" {
		t.Errorf("event = Node %q UID %d AUID %d ses %d Key %q Comm %q, want db-2 1000 1000 2 k ls", e.Node, e.UID, e.AUID, e.Session, e.Key, e.Comm)
	}
}

func TestAssembleMaxEventBytes(t *testing.T) {
	// The SYSCALL record's strings take 12 bytes, the first argument 10.
	a := NewAssembler(AssemblerConfig{Mode: ModeLive, MaxEventBytes: 30})
	c := &collector{}
	pushAll(a, c, t0, execRecords(1, "0123456789", "0123456789")...)
	pushAll(a, c, t0, rec(RecEOE, 1, ""))
	if len(c.events) != 1 || !c.events[0].Incomplete || !reflect.DeepEqual(c.events[0].Argv, []string{"0123456789", ""}) {
		t.Fatalf("events = %+v, want one Incomplete event keeping what fit", c.events)
	}
}

// TestAssembleEventsStayValid checks that an emitted Event's strings are not
// overwritten when the Assembler reuses its buffers for later events.
func TestAssembleEventsStayValid(t *testing.T) {
	a := NewAssembler(AssemblerConfig{Mode: ModeLive})
	c := &collector{}
	for s := uint64(1); s <= 50; s++ {
		pushAll(a, c, t0, execRecords(s, fmt.Sprintf("/bin/p%d", s), strings.Repeat("z", int(s)))...)
		pushAll(a, c, t0, rec(RecEOE, s, ""))
	}
	for i, e := range c.events {
		s := i + 1
		want := []string{fmt.Sprintf("/bin/p%d", s), strings.Repeat("z", s)}
		if !reflect.DeepEqual(e.Argv, want) || e.Cwd != "/" || e.Exe != "/bin/x" || e.Paths[0].Name != "/bin/x" {
			t.Fatalf("event %d after later events: Argv %q Cwd %q Exe %q, want %q / /bin/x", s, e.Argv, e.Cwd, e.Exe, want)
		}
	}
}

func TestReadLogIntoAssembler(t *testing.T) {
	f, err := os.Open("testdata/kernel-capture.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := make(chan []Record, 4)
	errc := make(chan error, 1)
	go func() {
		errc <- ReadLog(context.Background(), f, out, nil)
		close(out)
	}()
	a := NewAssembler(AssemblerConfig{Mode: ModeReplay})
	c := &collector{}
	for b := range out {
		pushAll(a, c, t0, b...)
	}
	a.Flush(c.emit)
	if err := <-errc; err != nil {
		t.Fatalf("ReadLog() = %v", err)
	}
	if len(c.events) != 9 {
		t.Errorf("got %d events, want 9", len(c.events))
	}
}

func FuzzAssembler(f *testing.F) {
	f.Add([]byte("type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=59 success=yes exit=0\ntype=EXECVE msg=audit(1.000:1): argc=2 a0=\"x\" a1_len=4 a1[0]=6162 a1[1]=6364\ntype=PROCTITLE msg=audit(1.000:1): proctitle=78\ntype=EOE msg=audit(1.000:1): "))
	f.Add([]byte("type=SYSCALL msg=audit(1.000:4294967295): syscall=59\ntype=SYSCALL msg=audit(1.000:1): syscall=59\ntype=CONFIG_CHANGE msg=audit(1.000:2): op=x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mode := range []Mode{ModeLive, ModeReplay} {
			a := NewAssembler(AssemblerConfig{Mode: mode, MaxInFlight: 4, Horizon: 8, MaxEventBytes: 4096, Other: func(*ParsedRecord) {}})
			var emitted uint64
			emit := func(e *Event) {
				emitted++
				if e.Records < 1 {
					t.Errorf("event %d has %d records", e.Serial, e.Records)
				}
				if e.Argc > 0 && len(e.Argv) < e.Argc && !e.Incomplete {
					t.Errorf("event %d: argv %d < argc %d but not Incomplete", e.Serial, len(e.Argv), e.Argc)
				}
				for _, s := range e.Argv {
					_ = strings.Clone(s) // touch every byte
				}
			}
			now := t0
			for _, line := range bytes.Split(data, []byte("\n")) {
				r, err := parseLogLine(line)
				if err != nil {
					r = Record{Type: RecSyscall, Data: line} // raw payloads too
				}
				a.Push(r, now, emit)
				now = now.Add(500 * time.Millisecond)
				a.Expire(now, emit)
			}
			a.Flush(emit)
			st := a.Stats()
			if st.Events != emitted || st.Events > st.Records || inFlight(a) != 0 || st.Incomplete > st.Events {
				t.Errorf("mode %d: Stats %+v, emitted %d, in flight %d", mode, st, emitted, inFlight(a))
			}
		}
	})
}

// TestAssemblePathOwner: a PATH record's ouid is the file's owner, which
// identity needs to tell a user's copy from a system binary; a record
// without one, or with a value that is no uid, leaves root.
func TestAssemblePathOwner(t *testing.T) {
	const hdr = "msg=audit(1795759259.157:6):"
	log := "type=SYSCALL " + hdr + ` arch=c000003e syscall=59 success=yes exit=0 items=3 ppid=1 pid=2 uid=65534 comm="kitty" exe="/tmp/kitty" key="k"
type=PATH ` + hdr + ` item=0 name="./kitty" inode=5 dev=00:2a mode=0100755 ouid=65534 ogid=65534 rdev=00:00 nametype=NORMAL cap_fp=0
type=PATH ` + hdr + ` item=1 name="/lib64/ld-linux-x86-64.so.2" inode=7 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL
type=PATH ` + hdr + ` item=2 name="/x" inode=8 dev=fe:00 mode=0100755 ouid=-1 nametype=NORMAL
type=EOE ` + hdr + "\n"
	recs, errs, _ := readAll(t, strings.NewReader(log))
	if len(errs) != 0 {
		t.Fatalf("read errors: %v", errs)
	}
	a := NewAssembler(AssemblerConfig{})
	c := &collector{}
	pushAll(a, c, t0, recs...)
	if len(c.events) != 1 || len(c.events[0].Paths) != 3 {
		t.Fatalf("events = %+v, want one with 3 paths", c.events)
	}
	for i, want := range []uint32{65534, 0, 0} {
		if got := c.events[0].Paths[i].OUID; got != want {
			t.Errorf("Paths[%d].OUID = %d, want %d", i, got, want)
		}
	}
}
