package daemon

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/input"
	"github.com/encwatch/encwatch/internal/sink"
)

// fakeStream hands out its batches, one per Ready, as netlink.Stream does,
// reusing the caller's slice; it ends when the batches do.
type fakeStream struct {
	batches [][]audit.Record
	ready   chan struct{}
	reads   int
}

func newFakeStream(batches [][]audit.Record) *fakeStream {
	s := &fakeStream{batches: batches, ready: make(chan struct{}, len(batches))}
	for range batches {
		s.ready <- struct{}{}
	}
	close(s.ready)
	return s
}

func (s *fakeStream) Ready() <-chan struct{} { return s.ready }
func (s *fakeStream) Err() error             { return nil }
func (s *fakeStream) Close() error           { return nil }

func (s *fakeStream) Read(batch []audit.Record) ([]audit.Record, bool, error) {
	if s.reads < len(s.batches) {
		batch = append(batch, s.batches[s.reads]...)
	}
	s.reads++
	return batch, false, nil
}

// streamInput is an input whose records the detection goroutine reads and
// assembles itself (input.Assemble), as the kernel's are.
type streamInput struct{ st input.RecordSource }

func (s streamInput) Events(_ context.Context, o input.StreamOptions) (input.Stream, error) {
	return input.Assemble(s.st, o, nil), nil
}

func (s streamInput) Close() error { return nil }

// TestRunStreamAssemblesAndDetectsInOneGoroutine feeds the recorded kernel
// batch through an assembling stream and checks that its events are counted
// and its encoder runs alerted, as through the queued (Feed) pipeline.
func TestRunStreamAssemblesAndDetectsInOneGoroutine(t *testing.T) {
	cfg, err := config.Load("../../config.hcl", config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recs := recordedBatch(t)
	half := len(recs) / 2
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	log := logrus.NewEntry(lg)
	var out syncBuffer
	p := newPipeline(pipelineOptions{Config: cfg, Log: log,
		Router: newRouter(log, []sink.Sink{sink.NewStdout("test", &out, nil)}, true)})
	st := newFakeStream([][]audit.Record{recs[:half], recs[half:]})
	if err := p.run(context.Background(), streamInput{st}); err != nil {
		t.Fatalf("run: %v", err)
	}
	if got, want := p.Records.Load(), uint64(len(recs)); got != want {
		t.Errorf("records = %d, want %d", got, want)
	}
	if got := p.Events.Load(); got == 0 {
		t.Errorf("events = %d, want some", got)
	}
	alerts := strings.Count(out.String(), "\n")
	if got := p.alerts.Load(); got == 0 || int(got) != alerts {
		t.Errorf("alerts counted = %d, alert lines = %d, want the same and some", got, alerts)
	}
}
