// Package daemon wires encwatch's stages together and owns their goroutines:
// the record source, the assembler, the detection engine and the sink router.
package daemon

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/proc"
	"github.com/encwatch/encwatch/internal/sink"
)

// Channel bounds between stages. A batch of records is whatever one netlink
// drain returned, so recordBatches bounds memory by batches, not records.
const (
	recordBatches = 256
	eventQueue    = 4096
	expireEvery   = 250 * time.Millisecond
)

// source feeds record batches into out until it is done or ctx ends. It does
// not close out; the pipeline does.
type source func(ctx context.Context, out chan<- []audit.Record) error

// pipeline is one run of reader → assembler → detection → sinks. Each stage is
// a goroutine that owns its state; values pass through bounded channels.
type pipeline struct {
	log    *logrus.Entry
	asm    *audit.Assembler
	engine *detect.Engine
	procs  *proc.Cache
	router *sink.Router
	now    func() time.Time

	// lossy is true for the live kernel stream: a full stage drops and counts
	// rather than stall the kernel reader. Replay never drops.
	lossy bool
	// expire enables the wall-clock timeout for events whose EOE never came;
	// only live streams have one.
	expire bool

	droppedEvents atomic.Uint64
	events        atomic.Uint64
	alerts        atomic.Uint64
}

// run starts every stage and returns once all have stopped: the source has
// returned, the assembler has flushed, detection has handed its last alert to
// the router and the router has drained its queues.
func (p *pipeline) run(ctx context.Context, src source) error {
	records := make(chan []audit.Record, recordBatches)
	events := make(chan *audit.Event, eventQueue)

	g, gctx := errgroup.WithContext(ctx)
	// The router outlives ctx: it drains what detection queued after a
	// shutdown began, bounded by its own drain timeout.
	routerDone := make(chan error, 1)
	go func() { routerDone <- p.router.Run(context.WithoutCancel(ctx)) }()

	g.Go(func() error {
		defer close(records)
		return src(gctx, records)
	})
	g.Go(func() error {
		defer close(events)
		p.assemble(records, events)
		return nil
	})
	g.Go(func() error {
		defer p.router.Close()
		for ev := range events {
			// The cache learns of every exec before detection, so a
			// pipeline's shell is known when its children run.
			p.procs.Observe(ev)
			for _, a := range p.engine.Evaluate(ev) {
				p.alerts.Add(1)
				p.router.Deliver(a)
			}
		}
		return nil
	})
	err := g.Wait()
	if rerr := <-routerDone; err == nil {
		err = rerr
	}
	return err
}

// assemble owns the assembler: it pushes records in, expires stale events on a
// timer for live streams, and flushes what is left when the input ends.
func (p *pipeline) assemble(in <-chan []audit.Record, out chan<- *audit.Event) {
	emit := func(ev *audit.Event) {
		p.events.Add(1)
		if !p.lossy {
			out <- ev
			return
		}
		select {
		case out <- ev:
		default:
			p.droppedEvents.Add(1)
		}
	}
	var tick <-chan time.Time
	if p.expire {
		t := time.NewTicker(expireEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case batch, ok := <-in:
			if !ok {
				p.asm.Flush(emit)
				return
			}
			now := p.now()
			for _, r := range batch {
				p.asm.Push(r, now, emit)
			}
		case <-tick:
			p.asm.Expire(p.now(), emit)
		}
	}
}
