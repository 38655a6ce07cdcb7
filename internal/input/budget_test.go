package input

import (
	"context"
	"testing"

	"github.com/encwatch/encwatch/audit"
)

// TestRecordGate: batches queue for the assembler up to the byte budget;
// past it they are dropped and counted, and they flow again once the
// assembler has taken what waited.
func TestRecordGate(t *testing.T) {
	batch := func(n int) []audit.Record { return []audit.Record{{Type: 1309, Data: make([]byte, n)}} }
	g := &recordGate{max: 10_000, c: new(Counters)}
	out := make(chan []audit.Record, 8)
	src := func(ctx context.Context, in chan<- []audit.Record) error {
		for _, n := range []int{4000, 4000, 4000, 100} {
			in <- batch(n)
		}
		return nil
	}
	if err := g.gate(src)(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	if got, want := len(out), 3; got != want {
		t.Errorf("batches queued = %d, want %d (the third 4000-byte one is over budget)", got, want)
	}
	if got := g.c.DroppedBatches.Load(); got != 1 {
		t.Errorf("dropped batches = %d, want 1", got)
	}
	for len(out) > 0 {
		<-out
	}
	src2 := func(ctx context.Context, in chan<- []audit.Record) error { in <- batch(9000); return nil }
	if err := g.gate(src2)(context.Background(), out); err != nil || len(out) != 1 {
		t.Errorf("after the queue drained: %d queued, err %v; want the batch queued", len(out), err)
	}
}
