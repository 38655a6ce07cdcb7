package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantType uint16
		wantData string
		wantErr  error
	}{
		{"syscall", "type=SYSCALL msg=audit(1.000:6): arch=c000003e syscall=59\n", RecSyscall, "audit(1.000:6): arch=c000003e syscall=59", nil},
		{"eoe", "type=EOE msg=audit(1.000:6): ", RecEOE, "audit(1.000:6): ", nil},
		{"crlf", "type=CWD msg=audit(1.000:6): cwd=\"/\"\r\n", RecCwd, "audit(1.000:6): cwd=\"/\"", nil},
		{"node", "node=web-1.example type=EXECVE msg=audit(1.000:6): argc=1 a0=\"x\"", RecExecve, "node=web-1.example audit(1.000:6): argc=1 a0=\"x\"", nil},
		{"unknown number", "type=UNKNOWN[1339] msg=audit(1.000:6): x=1", 1339, "audit(1.000:6): x=1", nil},
		{"enriched", "type=SYSCALL msg=audit(1.000:6): uid=0\x1dUID=\"root\"", RecSyscall, "audit(1.000:6): uid=0\x1dUID=\"root\"", nil},
		{"no type", "msg=audit(1.000:6): x=1", 0, "", errNoType},
		{"unknown name", "type=BOGUS msg=audit(1.000:6): x=1", 0, "", errUnknownType},
		{"no msg", "type=SYSCALL audit(1.000:6): x=1", 0, "", errNoMsg},
		{"bad time", "type=SYSCALL msg=audit(1.000): x=1", 0, "", errBadTime},
		{"bad serial", "type=SYSCALL msg=audit(1.000:x): x=1", 0, "", errBadSerial},
		{"bad node", "node=only", 0, "", errBadNode},
		{"ausearch -i", "type=SYSCALL msg=audit(11/27/26 06:00:59.157:6) : arch=x86_64 syscall=execve", 0, "", errInterpreted},
		{"empty", "", 0, "", errNoType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := []byte(tt.in)
			got, err := parseLogLine(line)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseLogLine(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got.Type != tt.wantType || string(got.Data) != tt.wantData {
				t.Errorf("parseLogLine(%q) = %d %q, want %d %q", tt.in, got.Type, got.Data, tt.wantType, tt.wantData)
			}
			for i := range line {
				line[i] = 'X'
			}
			if string(got.Data) != tt.wantData {
				t.Errorf("parseLogLine(%q) Data aliases its input", tt.in)
			}
		})
	}
}

func TestParseLogLineNodeReachesEvent(t *testing.T) {
	lines := []string{
		`node=web-1 type=SYSCALL msg=audit(1.000:6): arch=c000003e syscall=59 success=yes exit=0 pid=5 comm="x"`,
		`node=web-1 type=PROCTITLE msg=audit(1.000:6): proctitle="x"`,
	}
	a := NewAssembler(AssemblerConfig{Mode: ModeReplay})
	var got []*Event
	for _, l := range lines {
		r, err := parseLogLine([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		a.Push(r, t0, func(e *Event) { got = append(got, e) })
	}
	if len(got) != 1 || got[0].Node != "web-1" {
		t.Fatalf("events = %+v, want one with Node web-1", got)
	}
}

type lineErr struct {
	line int
	err  error
}

// readAll runs ReadLog over in and returns the records and reported errors.
func readAll(t *testing.T, in io.Reader) ([]Record, []lineErr, int) {
	t.Helper()
	out := make(chan []Record, 1024)
	var errs []lineErr
	err := ReadLog(context.Background(), in, out, func(line int, err error) { errs = append(errs, lineErr{line, err}) })
	if err != nil {
		t.Fatalf("ReadLog() = %v, want nil", err)
	}
	close(out)
	var recs []Record
	batches := 0
	for b := range out {
		batches++
		if len(b) == 0 || len(b) > logBatch {
			t.Errorf("ReadLog sent a batch of %d records, want 1..%d", len(b), logBatch)
		}
		recs = append(recs, b...)
	}
	return recs, errs, batches
}

func TestReadLog(t *testing.T) {
	long := strings.Repeat("61", 300<<10) // a 600 KB value: longer than the reader's buffer
	tooLong := strings.Repeat("62", 600<<10)
	in := strings.Join([]string{
		`type=SYSCALL msg=audit(1.000:1): syscall=59`, // 1
		``,        // 2: blank, skipped silently
		`garbage`, // 3
		`type=EXECVE msg=audit(1.000:1): argc=1 a0=` + long,       // 4
		`type=NOPE msg=audit(1.000:1): x=1`,                       // 5
		`type=PROCTITLE msg=audit(1.000:1): proctitle=` + tooLong, // 6
		`node=n type=EOE msg=audit(1.000:1): `,                    // 7
		`type=CWD msg=audit(1.000:2): cwd="/"`,                    // 8, no final newline
	}, "\n")
	recs, errs, _ := readAll(t, strings.NewReader(in))

	wantTypes := []uint16{RecSyscall, RecExecve, RecEOE, RecCwd}
	if len(recs) != len(wantTypes) {
		t.Fatalf("ReadLog gave %d records, want %d", len(recs), len(wantTypes))
	}
	for i, r := range recs {
		if r.Type != wantTypes[i] {
			t.Errorf("record %d type = %d, want %d", i, r.Type, wantTypes[i])
		}
	}
	if got, want := string(recs[1].Data), `audit(1.000:1): argc=1 a0=`+long; got != want {
		t.Errorf("long record Data has %d bytes, want %d", len(got), len(want))
	}
	if got, want := string(recs[2].Data), `node=n audit(1.000:1): `; got != want {
		t.Errorf("node record Data = %q, want %q", got, want)
	}
	if got, want := string(recs[3].Data), `audit(1.000:2): cwd="/"`; got != want {
		t.Errorf("last record Data = %q, want %q", got, want)
	}
	wantErrs := []struct {
		line int
		err  error
	}{{3, errNoType}, {5, errUnknownType}, {6, errLongLine}}
	if len(errs) != len(wantErrs) {
		t.Fatalf("onErr calls = %v, want %v", errs, wantErrs)
	}
	for i, w := range wantErrs {
		if errs[i].line != w.line || !errors.Is(errs[i].err, w.err) {
			t.Errorf("onErr call %d = line %d %v, want line %d %v", i, errs[i].line, errs[i].err, w.line, w.err)
		}
	}
}

func TestReadLogBatches(t *testing.T) {
	var b strings.Builder
	const n = 1000
	for i := range n {
		fmt.Fprintf(&b, "type=SYSCALL msg=audit(1.000:%d): syscall=59\n", i+1)
	}
	recs, errs, batches := readAll(t, strings.NewReader(b.String()))
	if len(recs) != n || len(errs) != 0 {
		t.Fatalf("ReadLog gave %d records and %d errors, want %d and 0", len(recs), len(errs), n)
	}
	for i, r := range recs {
		h, _, err := parseHeaderValue(r.Data)
		if err != nil || h.Serial != uint64(i+1) {
			t.Fatalf("record %d = %q, want serial %d", i, r.Data, i+1)
		}
	}
	if batches < n/logBatch {
		t.Errorf("ReadLog sent %d batches, want at least %d", batches, n/logBatch)
	}
}

// trickle returns one line per Read, like a pipe fed slowly.
type trickle struct{ lines []string }

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.lines) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.lines[0])
	r.lines = r.lines[1:]
	return n, nil
}

func TestReadLogSendsWhenInputPauses(t *testing.T) {
	in := &trickle{lines: []string{
		"type=SYSCALL msg=audit(1.000:1): syscall=59\n",
		"type=EOE msg=audit(1.000:1): \n",
	}}
	_, _, batches := readAll(t, in)
	if batches != 2 {
		t.Errorf("ReadLog sent %d batches for 2 lines arriving apart, want 2", batches)
	}
}

func TestReadLogCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := make(chan []Record) // nobody receives
	err := ReadLog(ctx, strings.NewReader("type=EOE msg=audit(1.000:1): \n"), out, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ReadLog(canceled) = %v, want %v", err, context.Canceled)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestReadLogReadError(t *testing.T) {
	err := ReadLog(context.Background(), failingReader{}, make(chan []Record, 1), nil)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("ReadLog(failing reader) = %v, want the read error", err)
	}
}

func FuzzParseLogLine(f *testing.F) {
	f.Add([]byte("type=SYSCALL msg=audit(1795759259.157:6): arch=c000003e syscall=59 success=yes exit=0"))
	f.Add([]byte("node=h1 type=UNKNOWN[1400] msg=audit(1.000:2): x=1\x1dX=2"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := parseLogLine(line)
		if err != nil {
			return
		}
		if _, _, err := parseHeaderValue(r.Data); err != nil {
			t.Errorf("parseLogLine(%q) gave Data %q whose header fails: %v", line, r.Data, err)
		}
		_, _ = ParseRecord(r)
	})
}

func TestReadLogAusearch(t *testing.T) {
	// ausearch 3.0.9's order: an event's records last first, between
	// "----" and "time->" lines; one event arriving line by line, as
	// through a pipe, and one of many records, more than a batch.
	lines := []string{
		"----\n",
		"time->Fri Nov 27 06:00:59 2026\n",
		"type=PROCTITLE msg=audit(1.000:6): proctitle=78\n",
		"type=CWD msg=audit(1.000:6): cwd=\"/\"\n",
		"type=SYSCALL msg=audit(1.000:6): syscall=59\n",
		"----\n",
		"time->Fri Nov 27 06:00:59 2026\n",
		"type=CONFIG_CHANGE msg=audit(1.000:7): op=x\n",
		"----\n",
		"time->Fri Nov 27 06:00:59 2026\n",
		"type=PROCTITLE msg=audit(1.000:8): proctitle=78\n",
	}
	for range logBatch {
		lines = append(lines, "type=PATH msg=audit(1.000:8): item=0\n")
	}
	lines = append(lines, "type=SYSCALL msg=audit(1.000:8): syscall=59\n")
	var all strings.Builder
	for _, l := range lines {
		all.WriteString(l)
	}
	for _, in := range []struct {
		name string
		r    io.Reader
	}{{"file", strings.NewReader(all.String())}, {"pipe", &trickle{lines: lines}}} {
		t.Run(in.name, func(t *testing.T) {
			l := LogReader{OnMalformed: func(line int, err error) { t.Errorf("line %d malformed: %v", line, err) }}
			out := make(chan []Record, 1024)
			if err := l.Read(context.Background(), in.r, out); err != nil {
				t.Fatal(err)
			}
			close(out)
			var got []uint16
			for b := range out {
				for _, r := range b {
					got = append(got, r.Type)
				}
			}
			want := []uint16{RecSyscall, RecCwd, RecProctitle, RecConfigChange}
			if len(got) != len(want)+logBatch+2 || !slices.Equal(got[:len(want)], want) {
				t.Fatalf("record types = %v..., want %v then the long event", got[:min(len(got), 8)], want)
			}
			// The long event is sent as it came: no reordering across a
			// batch.
			if got[len(want)] != RecProctitle || got[len(got)-1] != RecSyscall {
				t.Errorf("long event = %d..%d, want PROCTITLE..SYSCALL as read", got[len(want)], got[len(got)-1])
			}
			if st := l.Stats(); st.Separators != 6 || st.Malformed != 0 || st.Lines != uint64(len(lines)) {
				t.Errorf("Stats() = %+v, want 6 separators, 0 malformed, %d lines", st, len(lines))
			}
		})
	}
}

func TestReadLogSpan(t *testing.T) {
	in := "type=EOE msg=audit(5.500:1): \ntype=EOE msg=audit(3.250:2): \ntype=EOE msg=audit(9.000:3): \ntype=EOE msg=audit(7.125:4): \n"
	l := &LogReader{}
	readRecords(t, l, strings.NewReader(in))
	st := l.Stats()
	if want := time.Unix(3, 250e6); !st.First.Equal(want) {
		t.Errorf("Stats().First = %v, want %v", st.First, want)
	}
	if want := time.Unix(9, 0); !st.Last.Equal(want) {
		t.Errorf("Stats().Last = %v, want %v", st.Last, want)
	}
	if st := (&LogReader{}).Stats(); !st.First.IsZero() || !st.Last.IsZero() {
		t.Errorf("Stats() of a reader that read nothing = %v..%v, want zero times", st.First, st.Last)
	}
}
