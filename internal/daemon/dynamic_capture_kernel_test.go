package daemon

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/elastic/go-libaudit/v2/auparse"

	"github.com/encwatch/encwatch/audit"
)

// dynamicExecs is the recorded batch of TestDynamicExecsOpenNoFile.
const dynamicExecs = "../../testdata/dynamic-execs.log"

// dynamicWorkload is what TestKernelCaptureDynamicExecs runs: the
// dynamically linked programs a host runs, from several parents. Each
// command is run by this process; want is how many execs it makes.
var dynamicWorkload = []struct {
	argv []string
	want int
}{
	{[]string{"/bin/true"}, 1},
	{[]string{"/usr/bin/env", "true"}, 2},
	{[]string{"/bin/sh", "-c", "date >/dev/null; id -u >/dev/null"}, 3},
	{[]string{"/bin/sh", "-c", "seq 1 20 | tr 1 2 | wc -l >/dev/null"}, 4},
	// which is a shell script (#! /bin/sh, debianutils).
	{[]string{"/usr/bin/which", "sh"}, 1},
	{[]string{"/bin/bash", "-c", "/bin/true; env true; ls / >/dev/null"}, 5},
	{[]string{"/bin/true"}, 1},
}

// TestKernelCaptureDynamicExecs needs root and the kernel audit subsystem,
// and runs only with -capture: it records the execs of dynamicWorkload,
// twice, as the kernel sent them (EOE included), into dynamicExecs.
func TestKernelCaptureDynamicExecs(t *testing.T) {
	if !*capture {
		t.Skip("generates testdata/dynamic-execs.log; run with -capture as root")
	}
	out := captureRecords(t)
	want := 0
	for range 2 {
		for _, c := range dynamicWorkload {
			cmd := exec.Command(c.argv[0], c.argv[1:]...)
			cmd.Dir = "/"
			// Debian's default PATH: env and the shells search it, and
			// the execs that miss are recorded too (failed, no EXECVE).
			cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("run %v: %v: %s", c.argv, err, b)
			}
			want += c.want
		}
	}
	lines := collectKernelLines(t, out, want)
	if err := os.WriteFile(dynamicExecs, lines, 0o644); err != nil {
		t.Fatal(err)
	}
}

// collectKernelLines gathers, as the kernel sent them (EOE included), the
// records of the execs of this process and its descendants until want
// successful ones have been seen. Events of several CPUs interleave: the
// records are kept by serial until its EOE.
func collectKernelLines(t *testing.T, out <-chan []audit.Record, want int) []byte {
	t.Helper()
	ours := map[string]bool{strconv.Itoa(os.Getpid()): true}
	var b bytes.Buffer
	got := 0
	deadline := time.After(10 * time.Second)
	pending := map[string][]audit.Record{} // by "audit(TIME:SERIAL)"
	for got < want {
		select {
		case batch := <-out:
			for _, r := range batch {
				id, _, ok := bytes.Cut(r.Data, []byte("):"))
				if !ok {
					continue
				}
				k := string(id)
				if r.Type == audit.RecSyscall || pending[k] != nil {
					pending[k] = append(pending[k], audit.Record{Type: r.Type, Data: bytes.Clone(r.Data)})
				}
				recs := pending[k]
				if r.Type != audit.RecEOE || recs == nil {
					continue
				}
				delete(pending, k)
				p, err := audit.ParseRecord(recs[0])
				pid, _ := p.Get("pid")
				ppid, _ := p.Get("ppid")
				success, _ := p.Get("success")
				if err != nil || !ours[ppid] {
					continue
				}
				ours[pid] = true
				if success == "yes" {
					got++
				}
				for _, r := range recs {
					fmt.Fprintf(&b, "type=%s msg=%s\n", auparse.AuditMessageType(r.Type), bytes.TrimRight(r.Data, "\x00\n"))
				}
			}
		case <-deadline:
			t.Fatalf("saw %d of our %d execs within 10s", got, want)
		}
	}
	return b.Bytes()
}
