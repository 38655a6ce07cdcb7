package audit

import (
	"bufio"
	"bytes"
	"os"
	"testing"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/aucoalesce"
	"github.com/elastic/go-libaudit/v2/auparse"
)

// benchEvent returns the records of the capture's base64 event (serial 6) as
// a 7-record execve event: SYSCALL, EXECVE, CWD, 2× PATH, PROCTITLE, EOE.
func benchEvent(tb testing.TB) []Record {
	tb.Helper()
	data, err := os.ReadFile("testdata/kernel-capture.log")
	if err != nil {
		tb.Fatal(err)
	}
	var recs []Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxLogLine)
	for sc.Scan() {
		if !bytes.Contains(sc.Bytes(), []byte("msg=audit(1795759259.157:6):")) {
			continue
		}
		r, err := parseLogLine(sc.Bytes())
		if err != nil {
			tb.Fatal(err)
		}
		if r.Type != RecBprmFcaps {
			recs = append(recs, r)
		}
	}
	if len(recs) != 7 {
		tb.Fatalf("benchEvent: got %d records, want 7", len(recs))
	}
	return recs
}

// BenchmarkAssemble parses and assembles the 7-record base64 event with the
// Assembler; one op is one event.
func BenchmarkAssemble(b *testing.B) {
	recs := benchEvent(b)
	a := NewAssembler(AssemblerConfig{})
	now := time.Unix(1795759259, 0)
	var got *Event
	emit := func(e *Event) { got = e }
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range recs {
			a.Push(r, now, emit)
		}
	}
	if got == nil || len(got.Argv) != 3 {
		b.Fatalf("got event %+v, want the base64 event", got)
	}
}

// libauditStream collects go-libaudit's reassembled events.
type libauditStream struct{ msgs [][]*auparse.AuditMessage }

func (s *libauditStream) ReassemblyComplete(msgs []*auparse.AuditMessage) {
	s.msgs = append(s.msgs, msgs)
}
func (s *libauditStream) EventsLost(int) {}

// BenchmarkGoLibaudit does the same work with go-libaudit on the same bytes:
// auparse.Parse for each record, libaudit.Reassembler, then
// aucoalesce.CoalesceMessages.
func BenchmarkGoLibaudit(b *testing.B) {
	recs := benchEvent(b)
	st := &libauditStream{}
	ra, err := libaudit.NewReassembler(4096, 2*time.Second, st)
	if err != nil {
		b.Fatal(err)
	}
	defer ra.Close()
	var got *aucoalesce.Event
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range recs {
			msg, err := auparse.Parse(auparse.AuditMessageType(r.Type), string(r.Data))
			if err != nil {
				b.Fatal(err)
			}
			ra.PushMessage(msg)
		}
		for _, msgs := range st.msgs {
			got, err = aucoalesce.CoalesceMessages(msgs)
			if err != nil {
				b.Fatal(err)
			}
		}
		st.msgs = st.msgs[:0]
	}
	if got == nil {
		b.Fatal("go-libaudit emitted no event")
	}
}
