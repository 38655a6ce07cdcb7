package daemon

import (
	"context"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/input"
)

// BenchmarkPipelineBatch parses, assembles and evaluates a recorded batch
// (audit/testdata/kernel-capture.log, records as the kernel sent them) with
// the default policy, as the detection stage does for the kernel stream:
// through input.Assemble, one Read per op of the whole batch. It reports allocs/event, which `make bench`
// holds to the figure in bench/allocs-per-event.
func BenchmarkPipelineBatch(b *testing.B) {
	cfg, err := config.Load("../../config.hcl", config.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	recs := recordedBatch(b)
	log := logrus.New()
	log.SetOutput(io.Discard)
	p := newPipeline(pipelineOptions{Config: cfg, Log: logrus.NewEntry(log), Router: newRouter(logrus.NewEntry(log), nil, false)})
	events, alerts := 0, 0
	emit := func(ev *audit.Event) {
		events++
		alerts += len(p.engine.Evaluate(ev))
	}
	o := p.stream
	o.Now = func() time.Time { return time.Unix(1795759259, 0) }
	st := input.Assemble(batchSource(recs), o, nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		if _, err := st.Read(emit); err != nil {
			b.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if events == 0 || alerts == 0 {
		b.Fatalf("got %d events and %d alerts, want some of each", events, alerts)
	}
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(events), "allocs/event")
	b.ReportMetric(float64(len(recs)*b.N)/float64(events), "records/event")
}

// recordedBatch reads the recorded kernel records.
func recordedBatch(tb testing.TB) []audit.Record {
	f, err := os.Open("../../audit/testdata/kernel-capture.log")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	out := make(chan []audit.Record, 1024)
	if err := audit.ReadLog(context.Background(), f, out, func(int, error) {}); err != nil {
		tb.Fatal(err)
	}
	close(out)
	var recs []audit.Record
	for batch := range out {
		recs = append(recs, batch...)
	}
	return recs
}

// batchSource hands out the same batch at every Read, as a kernel stream
// hands out a gathered batch.
type batchSource []audit.Record

func (s batchSource) Ready() <-chan struct{} { return nil }
func (s batchSource) Err() error             { return nil }
func (s batchSource) Close() error           { return nil }

func (s batchSource) Read(batch []audit.Record) ([]audit.Record, bool, error) {
	return append(batch, s...), false, nil
}
