package input

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/encwatch/encwatch/audit"
)

// execRecords are the records of one exec of base64 with the given serial,
// as the kernel sends them.
func execRecords(serial int) []audit.Record {
	h := fmt.Sprintf("audit(1795759259.157:%d): ", serial)
	return []audit.Record{
		{Type: audit.RecSyscall, Data: []byte(h + `arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2817 auid=4294967295 uid=0 gid=0 euid=0 comm="base64" exe="/usr/bin/base64" key="encwatch"`)},
		{Type: audit.RecExecve, Data: []byte(h + `argc=2 a0="base64" a1="-d"`)},
		{Type: audit.RecEOE, Data: []byte(h)},
	}
}

// readAll reads st as the pipeline's detection loop does, until it ends.
func readAll(t *testing.T, st Stream) []*audit.Event {
	t.Helper()
	var evs []*audit.Event
	emit := func(ev *audit.Event) { evs = append(evs, ev) }
	for {
		if _, ok := <-st.Ready(); !ok {
			break
		}
		for {
			more, err := st.Read(emit)
			if err != nil {
				t.Fatal(err)
			}
			if !more {
				break
			}
		}
	}
	if st.Err() == nil {
		if _, err := st.Read(emit); err != nil {
			t.Fatal(err)
		}
	}
	st.Flush(emit)
	return evs
}

// TestFeedDeliversEveryEvent: a stream that is not lossy waits for its
// reader, so every exec comes out once, in order, counted; Close returns
// the input's error.
func TestFeedDeliversEveryEvent(t *testing.T) {
	const n = 2000
	stop := errors.New("input ended badly")
	run := func(ctx context.Context, out chan<- []audit.Record) error {
		for i := 1; i <= n; i++ {
			out <- execRecords(i)
		}
		return stop
	}
	var c Counters
	st := Feed(context.Background(), run, StreamOptions{Assembler: audit.AssemblerConfig{Mode: audit.ModeReplay}, Counters: &c}, nil)
	evs := readAll(t, st)
	if err := st.Close(); !errors.Is(err, stop) {
		t.Errorf("Close() = %v, want the input's error", err)
	}
	if len(evs) != n {
		t.Fatalf("got %d events, want %d", len(evs), n)
	}
	for i, ev := range evs {
		if ev.Serial != uint64(i+1) {
			t.Fatalf("event %d has serial %d, want %d", i, ev.Serial, i+1)
		}
	}
	if got, want := c.Records.Load(), uint64(3*n); got != want {
		t.Errorf("records counted = %d, want %d", got, want)
	}
	if got := c.Events.Load(); got != n {
		t.Errorf("events counted = %d, want %d", got, n)
	}
	if got := c.DroppedEvents.Load(); got != 0 {
		t.Errorf("dropped events = %d, want 0", got)
	}
}

// sliceSource hands out one batch per Read, as a kernel stream does.
type sliceSource struct {
	batches [][]audit.Record
	ready   chan struct{}
}

func newSliceSource(batches ...[]audit.Record) *sliceSource {
	s := &sliceSource{batches: batches, ready: make(chan struct{}, len(batches))}
	for range batches {
		s.ready <- struct{}{}
	}
	close(s.ready)
	return s
}

func (s *sliceSource) Ready() <-chan struct{} { return s.ready }
func (s *sliceSource) Err() error             { return nil }
func (s *sliceSource) Close() error           { return nil }

func (s *sliceSource) Read(batch []audit.Record) ([]audit.Record, bool, error) {
	if len(s.batches) > 0 {
		batch = append(batch, s.batches[0]...)
		s.batches = s.batches[1:]
	}
	return batch, false, nil
}

// TestAssembleNotices: an assembling stream yields its execs and tells of
// the CONFIG_CHANGE records that touch what encwatch relies on, and of no
// other.
func TestAssembleNotices(t *testing.T) {
	cc := func(serial int, fields string) audit.Record {
		return audit.Record{Type: audit.RecConfigChange, Data: fmt.Appendf(nil, "audit(1795759259.200:%d): %s", serial, fields)}
	}
	notices := make(chan string, 8)
	var c Counters
	st := Assemble(newSliceSource(
		execRecords(1),
		[]audit.Record{cc(2, `auid=0 ses=1 op=remove_rule key="encwatch" list=4 res=1`), cc(3, `op=add_rule key="x" list=4 res=1`)},
		[]audit.Record{cc(4, `audit_enabled=0 old=1 auid=0 ses=1 res=1`), cc(5, `audit_pid=0 old=812 auid=0 ses=1 res=1`)},
		execRecords(6),
	), StreamOptions{Assembler: audit.AssemblerConfig{Mode: audit.ModeReplay}, Counters: &c}, notices)
	evs := readAll(t, st)
	if len(evs) != 2 || evs[0].Serial != 1 || evs[1].Serial != 6 {
		t.Errorf("events = %d, want the execs 1 and 6", len(evs))
	}
	close(notices)
	var got []string
	for n := range notices {
		got = append(got, n)
	}
	if want := []string{"remove_rule", "audit_enabled", "audit_pid"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("notices = %q, want %q", got, want)
	}
	if got := c.Events.Load(); got != 2 {
		t.Errorf("events counted = %d, want 2", got)
	}
}

// TestFeedLossyDropsAndCounts: a lossy stream whose reader is away never
// makes its input wait: what has no room is dropped and counted, and every
// exec is either read or counted.
func TestFeedLossyDropsAndCounts(t *testing.T) {
	const n = 3000
	run := func(ctx context.Context, out chan<- []audit.Record) error {
		for i := 1; i <= n; i++ {
			out <- execRecords(i)
		}
		return nil
	}
	var c Counters
	st := Feed(context.Background(), run, StreamOptions{Assembler: audit.AssemblerConfig{Mode: audit.ModeReplay}, Counters: &c, Lossy: true}, nil)
	for range st.Ready() { // the reader is away until the input has ended
	}
	var read uint64
	for {
		more, err := st.Read(func(*audit.Event) { read++ })
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	dropped := c.DroppedEvents.Load() + c.DroppedBatches.Load() // a batch is one exec here
	if dropped == 0 || read+dropped != n {
		t.Errorf("read %d, dropped %d events and %d batches; want some dropped and all %d accounted for", read, c.DroppedEvents.Load(), c.DroppedBatches.Load(), n)
	}
}
