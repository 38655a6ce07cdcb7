package daemon

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/encwatch/encwatch/internal/doctest"
	"github.com/encwatch/encwatch/internal/input"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/sink"
)

// recordsInput is the worked example of docs/development.md ("Adding an
// input"): an input that feeds records it was given, one batch per event,
// through the assembler (input.Feed). It has the two methods every input
// has, plus one optional capability (input.Stats), which the daemon finds
// with a type assertion.
type recordsInput struct {
	batches [][]audit.Record
	sent    atomic.Uint64
}

// Run sends the batches until they are done or ctx ends; it does not close
// out.
func (r *recordsInput) Run(ctx context.Context, out chan<- []audit.Record) error {
	for _, b := range r.batches {
		select {
		case out <- b:
			r.sent.Add(uint64(len(b)))
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// Events hands Run's records to the assembler, in goroutines of their own.
func (r *recordsInput) Events(ctx context.Context, o input.StreamOptions) (input.Stream, error) {
	return input.Feed(ctx, r.Run, o, nil), nil
}

// Close has nothing to release.
func (r *recordsInput) Close() error { return nil }

// Stats makes the input an input.Stats: its counts reach /metrics and the
// loss checks.
func (r *recordsInput) Stats() input.ReaderStats {
	return input.ReaderStats{Records: r.sent.Load()}
}

var (
	_ input.Input = (*recordsInput)(nil)
	_ input.Stats = (*recordsInput)(nil)
)

// TestAddingAnInput runs the example input through the pipeline and checks
// that its records raise an alert and that it has exactly the capabilities
// it declares.
func TestAddingAnInput(t *testing.T) {
	in := &recordsInput{batches: [][]audit.Record{{
		{Type: audit.RecSyscall, Data: []byte(`audit(1795759259.157:6): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2817 auid=4294967295 uid=0 gid=0 euid=0 comm="base64" exe="/usr/bin/base64" key="encwatch"`)},
		{Type: audit.RecExecve, Data: []byte(`audit(1795759259.157:6): argc=2 a0="base64" a1="-d"`)},
		{Type: audit.RecPath, Data: []byte(`audit(1795759259.157:6): item=0 name="/usr/bin/base64" inode=246996 dev=fe:00 mode=0100755 nametype=NORMAL`)},
		{Type: audit.RecProctitle, Data: []byte(`audit(1795759259.157:6): proctitle=626173653634002D64`)},
		{Type: audit.RecEOE, Data: []byte(`audit(1795759259.157:6): `)},
	}}}

	cfg, err := config.Load("../../config.hcl", config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	log := logrus.NewEntry(l)
	var out bytes.Buffer
	p := newPipeline(pipelineOptions{Config: cfg, Log: log, Router: newRouter(log, []sink.Sink{sink.NewStdout("test", &out, nil)}, true)})
	if err := p.run(context.Background(), in); err != nil {
		t.Fatalf("pipeline run: %v", err)
	}
	if err := in.Close(); err != nil {
		t.Errorf("Close() = %v, want nil", err)
	}

	if got := out.String(); !strings.Contains(got, `"data_encoder_exec"`) {
		t.Errorf("alerts = %q, want a data_encoder_exec alert", got)
	}
	var i input.Input = in
	if rs, ok := i.(input.Stats); !ok || rs.Stats().Records != 5 {
		t.Errorf("input.Stats capability: ok %v, want the 5 records sent", ok)
	}
	if _, ok := i.(input.KernelWatcher); ok {
		t.Error("recordsInput is an input.KernelWatcher, want no tamper checks for it")
	}
}

// TestDevelopmentDocQuotesTheInputExample: the Go blocks of "Adding an
// input" in docs/development.md are verbatim from the input code and this
// example.
func TestDevelopmentDocQuotesTheInputExample(t *testing.T) {
	doctest.Quoted(t, "Adding an input", "../input/input.go", "input_example_test.go")
}
