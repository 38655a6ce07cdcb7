package input

import (
	"context"
	"sync"
	"time"

	"github.com/encwatch/encwatch/audit"
)

// RecordSource is a source of audit records that the consumer reads in its
// own goroutine (netlink.Stream): Ready fires once per gathered batch and
// closes when the source ends; Read drains it; a record's Data is valid
// until the next Read.
type RecordSource interface {
	Ready() <-chan struct{}
	Read(batch []audit.Record) ([]audit.Record, bool, error)
	Err() error
	Close() error
}

// Assemble wraps src with the assembler, in the reading goroutine: read →
// parse → assemble → detect happen in one goroutine, with no hand-off per
// record or per event (the kernel stream's path: see docs/architecture.md,
// the pipeline without wake-ups). notices, if set, hears of CONFIG_CHANGE
// records (ConfigNotices).
func Assemble(src RecordSource, o StreamOptions, notices chan<- string) Stream {
	acfg := o.Assembler
	acfg.Other = otherRecord(acfg.Other, notices)
	return &assembled{src: src, asm: audit.NewAssembler(acfg), c: counters(o.Counters), now: clock(o.Now)}
}

// assembled is Assemble's stream.
type assembled struct {
	src   RecordSource
	asm   *audit.Assembler
	batch []audit.Record
	c     *Counters
	now   func() time.Time
}

func (a *assembled) Ready() <-chan struct{} { return a.src.Ready() }
func (a *assembled) Err() error             { return a.src.Err() }
func (a *assembled) Close() error           { return a.src.Close() }

// Read reads one batch and assembles it, emitting each event as it
// completes.
func (a *assembled) Read(emit func(*audit.Event)) (bool, error) {
	var more bool
	var err error
	a.batch, more, err = a.src.Read(a.batch[:0])
	now := a.now()
	for _, r := range a.batch {
		a.asm.Push(r, now, emit)
	}
	a.count()
	return more, err
}

func (a *assembled) Expire(now time.Time, emit func(*audit.Event)) {
	a.asm.Expire(now, emit)
	a.count()
}

func (a *assembled) Flush(emit func(*audit.Event)) {
	a.asm.Flush(emit)
	a.count()
}

// count publishes the assembler's counts.
func (a *assembled) count() {
	st := a.asm.Stats()
	a.c.Records.Store(st.Records)
	a.c.Events.Store(st.Events)
	a.c.SerialLost.Store(st.Lost)
}

// RunFunc sends record batches to out until its input ends or ctx does; it
// does not close out. Inputs that read a file or a pipe are one.
type RunFunc func(ctx context.Context, out chan<- []audit.Record) error

// Channel bounds of Feed: a batch of records is whatever one read returned,
// so recordBatches bounds memory by batches, not records.
const (
	recordBatches = 256
	eventBatches  = 256
	expireEvery   = 250 * time.Millisecond
)

// Feed wraps run with the assembler in goroutines of their own: run sends
// record batches, the assembler turns each into the events it completed,
// and the stream hands those to its reader. A lossy stream drops and
// counts (a record batch past the memory budget, events detection has no
// room for) rather than wait; otherwise run waits for the pipeline. A live
// stream completes overdue events on a timer. Close returns run's error.
func Feed(ctx context.Context, run RunFunc, o StreamOptions, notices chan<- string) Stream {
	return feed(ctx, run, o, notices, nil)
}

// feed is Feed that, if done is set, hands each record batch back on done
// once the assembler has pushed all its records: the Assembler copies what
// it keeps of a record, so the batch and its records' Data are then free
// for run to reuse (audit.LogReader.Done). A batch done has no room for is
// not handed back.
func feed(ctx context.Context, run RunFunc, o StreamOptions, notices chan<- string, done chan<- []audit.Record) Stream {
	ctx, cancel := context.WithCancel(ctx)
	acfg := o.Assembler
	acfg.Other = otherRecord(acfg.Other, notices)
	f := &fed{
		cancel: cancel,
		events: make(chan []*audit.Event, eventBatches),
		free:   make(chan []*audit.Event, eventBatches),
		ready:  make(chan struct{}, 1),
		done:   done,
		c:      counters(o.Counters),
	}
	records := make(chan []audit.Record, recordBatches)
	if o.Lossy {
		g := &recordGate{max: maxQueuedRecordBytes, c: f.c}
		run = g.gate(run)
	}
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		defer close(records)
		f.err = run(ctx, records)
	}()
	go func() {
		defer f.wg.Done()
		f.assemble(ctx, audit.NewAssembler(acfg), records, o, clock(o.Now))
	}()
	return f
}

// fed is Feed's stream.
type fed struct {
	cancel context.CancelFunc
	events chan []*audit.Event
	// free takes the event slices Read is done with back to the
	// assembler's goroutine, so that a batch costs no allocation.
	free  chan []*audit.Event
	ready chan struct{}
	// done, if set, takes the record batches the assembler is done with
	// back to run.
	done chan<- []audit.Record
	c    *Counters
	wg   sync.WaitGroup
	err  error // run's, read after wg
}

// assemble owns the assembler: it pushes records in, expires overdue events
// on a timer for live streams, and flushes what is left when run ends.
func (f *fed) assemble(ctx context.Context, asm *audit.Assembler, in <-chan []audit.Record, o StreamOptions, now func() time.Time) {
	defer close(f.ready)
	defer close(f.events)
	var evs []*audit.Event
	emit := func(ev *audit.Event) {
		f.c.Events.Add(1)
		evs = append(evs, ev)
	}
	// hand passes the events of a batch to the reader and takes a slice
	// the reader is done with for the next batch.
	hand := func() {
		if len(evs) == 0 {
			return
		}
		sent := true
		if o.Lossy {
			select {
			case f.events <- evs:
			default:
				f.c.DroppedEvents.Add(uint64(len(evs)))
				sent = false
			}
		} else {
			f.events <- evs
		}
		if sent {
			select {
			case evs = <-f.free:
			default:
				evs = nil
			}
		} else {
			clear(evs)
			evs = evs[:0]
		}
		select {
		case f.ready <- struct{}{}:
		default: // a read is due already
		}
	}
	var tick <-chan time.Time
	if o.Live {
		t := time.NewTicker(expireEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case batch, ok := <-in:
			if !ok {
				asm.Flush(emit)
				hand()
				return
			}
			if o.DropOnCancel && ctx.Err() != nil {
				f.handBack(batch)
				continue
			}
			if o.Meter != nil {
				o.Meter.Begin()
			}
			t := now()
			f.c.Records.Add(uint64(len(batch)))
			for _, r := range batch {
				asm.Push(r, t, emit)
			}
			f.handBack(batch)
			if o.Meter != nil {
				o.Meter.End()
			}
			f.c.SerialLost.Store(asm.Stats().Lost)
			hand()
		case <-tick:
			asm.Expire(now(), emit)
			hand()
		}
	}
}

// handBack hands batch back to run, if it asked, without waiting.
func (f *fed) handBack(batch []audit.Record) {
	if f.done == nil {
		return
	}
	select {
	case f.done <- batch:
	default:
	}
}

func (f *fed) Ready() <-chan struct{} { return f.ready }

// Err is nil: run's error is Close's, after every event it sent was read.
func (f *fed) Err() error { return nil }

// Read hands the events of one assembled batch.
func (f *fed) Read(emit func(*audit.Event)) (bool, error) {
	select {
	case evs, ok := <-f.events:
		if !ok {
			return false, nil
		}
		for _, ev := range evs {
			emit(ev)
		}
		clear(evs)
		select {
		case f.free <- evs[:0]:
		default:
		}
		return len(f.events) > 0, nil
	default:
		return false, nil
	}
}

// Expire does nothing: the assembler's goroutine expires events itself.
func (f *fed) Expire(time.Time, func(*audit.Event)) {}

// Flush does nothing: the assembler's goroutine flushes when run ends.
func (f *fed) Flush(func(*audit.Event)) {}

// Close stops run and the assembler and returns run's error.
func (f *fed) Close() error {
	f.cancel()
	for range f.events {
	}
	f.wg.Wait()
	return f.err
}

// otherRecord returns the assembler's hook for non-syscall records: next,
// and the CONFIG_CHANGE records that touch what encwatch relies on told to
// notices (without waiting: a check is then due already).
func otherRecord(next func(*audit.ParsedRecord), notices chan<- string) func(*audit.ParsedRecord) {
	if notices == nil {
		return next
	}
	return func(r *audit.ParsedRecord) {
		if next != nil {
			next(r)
		}
		what, ok := configChange(r)
		if !ok {
			return
		}
		select {
		case notices <- what:
		default:
		}
	}
}

// configChange reports what a CONFIG_CHANGE record changed of what encwatch
// relies on: a rule removed, audit switched, the audit pid set.
func configChange(r *audit.ParsedRecord) (string, bool) {
	if r.Type != audit.RecConfigChange {
		return "", false
	}
	op, _ := r.Get("op")
	_, enabled := r.Get("audit_enabled")
	_, pid := r.Get("audit_pid")
	if op != "remove_rule" && !enabled && !pid && op != "set" {
		return "", false
	}
	switch {
	case enabled:
		return "audit_enabled", true
	case pid:
		return "audit_pid", true
	}
	return op, true
}

func counters(c *Counters) *Counters {
	if c == nil {
		return new(Counters)
	}
	return c
}

func clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}
