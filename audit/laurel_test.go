package audit

import (
	"strings"
	"testing"
	"time"
)

// TestLaurelRecords: a laurel line gives the event's raw records, SYSCALL
// first and PROCTITLE last, enrichments left out, percent-encoding undone.
func TestLaurelRecords(t *testing.T) {
	line := `{"ID":"1626611363.720:348501","NODE":"web1","PROCTITLE":{"ARGV":["perl","-e","x"]},"SYSCALL":{"arch":"0xc000003e","syscall":59,"success":"yes","exit":0,"a0":"0x55c0","items":1,"pid":724395,"uid":0,"auid":1000,"tty":"pts3","comm":"perl","exe":"/usr/bin/perl","subj":"=unconfined","key":null,"ARCH":"x86_64","PPID":{"EVENT_ID":"1.000:1","comm":"bash"}},"EXECVE":{"argc":3,"ARGV":["perl","-e","print 1%2b1%0a"]},"CWD":{"cwd":"/root dir"},"PATH":[{"item":0,"name":"/usr/bin/perl","inode":401923,"dev":"fd:01","mode":"0o100755","ouid":0,"OUID":"root"}],"PARENT_INFO":{"x":1}}`
	recs, err := laurelRecords([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`node=web1 type=SYSCALL msg=audit(1626611363.720:348501): arch=c000003e syscall=59 success=yes exit=0 a0=55c0 items=1 pid=724395 auid=1000 uid=0 tty=pts3 comm="perl" exe="/usr/bin/perl" subj==unconfined key=(null)`,
		`node=web1 type=EXECVE msg=audit(1626611363.720:348501): argc=3 a0="perl" a1="-e" a2=7072696E7420312B310A`,
		`node=web1 type=CWD msg=audit(1626611363.720:348501): cwd=2F726F6F7420646972`,
		`node=web1 type=PATH msg=audit(1626611363.720:348501): item=0 name="/usr/bin/perl" inode=401923 dev=fd:01 mode=0100755 ouid=0`,
		`node=web1 type=PROCTITLE msg=audit(1626611363.720:348501): proctitle=7065726C002D650078`,
	}
	var got []string
	for _, r := range recs {
		got = append(got, string(r))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("laurelRecords:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, bad := range []string{`{}`, `{"ID":"x"}`, `{"ID":1}`, `{"ID":"1.000:1","SYSCALL":[1]}`, `{"ID":"1.000:1","SYSCALL":{"pid":{"a":1}}}`, `{not json`, `{"ID":"1.000:1): uid=0 x=(1","SYSCALL":{}}`, `{"ID":"1.000:1","NODE":"a type=EXECVE","SYSCALL":{}}`} {
		if _, err := laurelRecords([]byte(bad)); err == nil {
			t.Errorf("laurelRecords(%s) = nil error, want refused", bad)
		}
	}
}

// TestReadLaurelAndExecveOnly: LogReader reads laurel lines among plain
// ones, and in replay mode an EXECVE with no SYSCALL is an event marked
// NoSyscall with its ids unset; the live assembler still drops it.
func TestReadLaurelAndExecveOnly(t *testing.T) {
	in := `{"ID":"1.000:1","SYSCALL":{"arch":"0xc000003e","syscall":59,"success":"yes","exit":0,"pid":7,"uid":1000,"comm":"base64","exe":"/usr/bin/base64"},"EXECVE":{"argc":2,"ARGV":["base64","-d"]},"PROCTITLE":{"ARGV":["base64","-d"]}}
type=EXECVE msg=audit(2.000:2): argc=7 a0="openssl" a1="enc" a2="-aes-256-cbc" a3="-a" a4="-salt" a5="-in" a6="/var/www/FLAG.txt"
{"ID":"oops"}
`
	out := make(chan []Record, 16)
	l := &LogReader{}
	if err := l.Read(t.Context(), strings.NewReader(in), out); err != nil {
		t.Fatal(err)
	}
	close(out)
	if st := l.Stats(); st.Lines != 3 || st.Records != 4 || st.Malformed != 1 {
		t.Errorf("stats %+v, want 3 lines, 4 records, 1 malformed", st)
	}
	var recs []Record
	for b := range out {
		recs = append(recs, b...)
	}
	for _, mode := range []Mode{ModeReplay, ModeLive} {
		a := NewAssembler(AssemblerConfig{Mode: mode})
		var evs []*Event
		for _, r := range recs {
			a.Push(r, time.Time{}, func(e *Event) { evs = append(evs, e) })
		}
		a.Flush(func(e *Event) { evs = append(evs, e) })
		want := 2
		if mode == ModeLive {
			want = 1
		}
		if len(evs) != want {
			t.Fatalf("mode %v: %d events, want %d", mode, len(evs), want)
		}
		if evs[0].NoSyscall || evs[0].UID != 1000 || evs[0].PID != 7 {
			t.Errorf("laurel event: %+v", evs[0])
		}
		if mode == ModeReplay {
			e := evs[1]
			if !e.NoSyscall || !e.IsExec() || !e.Success || e.UID != Unset || e.AUID != Unset || e.Exe != "" || len(e.Argv) != 7 || e.Argv[1] != "enc" {
				t.Errorf("EXECVE-only event: %+v, want NoSyscall, an exec, ids unset, argv of 7", e)
			}
		}
	}
}

// FuzzLaurelRecords: any line read as laurel's gives raw records whose
// headers parse, or an error; never a panic.
func FuzzLaurelRecords(f *testing.F) {
	f.Add([]byte(`{"ID":"1.000:1","SYSCALL":{"arch":"0xc000003e","syscall":59,"comm":"a%20b"},"EXECVE":{"argc":1,"ARGV":["x"]},"PATH":[{"item":0,"mode":"0o100755"}],"PROCTITLE":{"ARGV":["x"]}}`))
	f.Add([]byte(`{"ID":"1.000:1","NODE":"h","BPRM_FCAPS":[{"fp":"0x0"}],"CWD":{"cwd":null}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		recs, err := laurelRecords(line)
		if err != nil {
			return
		}
		for _, r := range recs {
			if _, _, err := parseHeaderValue(r[strings.Index(string(r), "msg=")+4:]); err != nil {
				t.Errorf("laurelRecords(%q) gave %q whose header fails: %v", line, r, err)
			}
		}
	})
}
