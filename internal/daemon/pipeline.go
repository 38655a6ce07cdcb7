// Package daemon wires encwatch's stages together and owns their goroutines:
// the record source, the assembler, the detection engine and the sink router.
package daemon

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	// beatEvery is how often the detection stage marks itself alive, idle
	// or not; the systemd watchdog is fed only while the mark is fresh.
	beatEvery = time.Second
)

// source feeds record batches into out until it is done or ctx ends. It does
// not close out; the pipeline does.
type source func(ctx context.Context, out chan<- []audit.Record) error

// recordStream is a record source the detection goroutine reads itself
// (netlink.Stream): read → parse → assemble → detect in one goroutine, with
// only alerts crossing to the router. Ready fires once per gathered batch
// and closes when the stream ends; Read drains it; a record's Data is valid
// until the next Read.
type recordStream interface {
	Ready() <-chan struct{}
	Read(batch []audit.Record) ([]audit.Record, bool, error)
	Err() error
	Close() error
}

// pipeline is one run of reader → assembler → detection → enrichment →
// sinks. Each stage is a goroutine that owns its state (enrichment runs in
// detection's); values pass through bounded channels. newPipeline builds it
// from pipelineOptions.
type pipeline struct {
	log    *logrus.Entry
	asm    *audit.Assembler
	engine *detect.Engine
	procs  *proc.Cache
	// enrichment completes each alert of detection before the router.
	enrichment enrichment
	// files identifies executed files off the detection path (identify.go).
	files *proc.Identifier
	// recordGate bounds the bytes waiting for the assembler (budget.go).
	recordGate recordGate
	now        func() time.Time
	// abandon drops the record batches still queued: an interrupted
	// replay ends at once rather than after them (replay_open.go).
	abandon atomic.Bool

	// router is where detection delivers. Only the detection stage changes
	// it (a reload hands it a new one through swaps); others only read it,
	// for metrics.
	router atomic.Pointer[sink.Router]
	// swaps carries a replacement router to the detection stage, which
	// starts it, switches to it and closes the old one, so that no alert is
	// delivered to a closed router.
	swaps chan *sink.Router
	// synth carries alerts raised outside detection (tamper, loss, a failed
	// reload) to the detection stage, the only caller of Deliver.
	synth chan detect.Alert
	// detectDone is closed when the detection stage has returned.
	detectDone chan struct{}
	routers    sync.WaitGroup
	routerMu   sync.Mutex
	routerErr  error

	// canary, while set, is told of the event whose argv carries its
	// marker.
	canary atomic.Pointer[canary]
	// latency observes, per alert, the time from the event's kernel
	// timestamp to its delivery to the router.
	latency prometheus.Observer

	// lossy is true for the live kernel stream: a full stage drops and counts
	// rather than stall the kernel reader. Replay never drops.
	lossy bool
	// expire enables the wall-clock timeout for events whose EOE never came;
	// only live streams have one.
	expire bool

	// beat is when the detection stage last went round its loop (unix
	// nanoseconds).
	beat atomic.Int64
	// asmMeter counts the assembler's batches in and out (health.go).
	asmMeter stageMeter

	// batch is the detection stage's buffer for a stream's records, and
	// streamErr why its stream failed; both only for runStream.
	batch     []audit.Record
	streamErr error
	// holding is set while readStream evaluates a batch: evaluate then keeps
	// its alerts in held, which readStream enriches and delivers once the
	// batch is done (see holdAlerts).
	holding bool
	held    []detect.Alert

	droppedEvents atomic.Uint64
	records       atomic.Uint64
	events        atomic.Uint64
	alerts        atomic.Uint64
	// serialLost mirrors the assembler's count of serials never seen, for
	// readers outside the assembler goroutine.
	serialLost atomic.Uint64
	// bySignature counts delivered alerts by alertKey.
	bySignature sync.Map // alertKey → *atomic.Uint64
}

// alive reports whether the detection stage has gone round its loop
// lately: an idle one still does, once per beatEvery.
func (p *pipeline) alive() bool {
	return p.now().Sub(time.Unix(0, p.beat.Load())) < 3*beatEvery
}

// alertKey labels the alert counters.
type alertKey struct{ signature, importance string }

// run starts every stage and returns once all have stopped: the source has
// returned, the assembler has flushed, detection has handed its last alert to
// the router and every router has drained its queues.
func (p *pipeline) run(ctx context.Context, src source) error {
	records := make(chan []audit.Record, recordBatches)
	events := make(chan *audit.Event, eventQueue)

	g, gctx := errgroup.WithContext(ctx)
	// Routers outlive ctx: they drain what detection queued after a
	// shutdown began, bounded by their own drain timeout.
	p.startRouter(context.WithoutCancel(ctx), p.router.Load())

	if p.lossy {
		src = p.recordGate.gate(src) // budget.go
	}
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
		p.detect(context.WithoutCancel(ctx), events, nil)
		return nil
	})
	g.Go(func() error { return p.runFiles(gctx) })
	err := g.Wait()
	p.routers.Wait()
	p.routerMu.Lock()
	defer p.routerMu.Unlock()
	if err == nil {
		err = p.routerErr
	}
	return err
}

// runStream is run for a source the detection stage reads itself: one
// goroutine from the socket to the router. It returns once detection has
// flushed the assembler and every router has drained.
func (p *pipeline) runStream(ctx context.Context, open func(context.Context) (recordStream, error)) error {
	st, err := open(ctx)
	if err != nil {
		// No detection stage will run: close the router it would have.
		close(p.detectDone)
		r := p.router.Load()
		r.Close()
		return errors.Join(err, r.Run(context.WithoutCancel(ctx)))
	}
	p.startRouter(context.WithoutCancel(ctx), p.router.Load())
	// The file identifier's workers read executables off the detection
	// path; they stop once detection has.
	files := make(chan error, 1)
	go func() { files <- p.runFiles(ctx) }()
	p.detect(context.WithoutCancel(ctx), nil, st)
	err = errors.Join(p.streamErr, st.Close(), <-files)
	p.routers.Wait()
	p.routerMu.Lock()
	defer p.routerMu.Unlock()
	return errors.Join(err, p.routerErr)
}

// startRouter runs r until it has drained and closed its sinks.
func (p *pipeline) startRouter(ctx context.Context, r *sink.Router) {
	p.routers.Add(1)
	go func() {
		defer p.routers.Done()
		if err := r.Run(ctx); err != nil {
			p.routerMu.Lock()
			p.routerErr = errors.Join(p.routerErr, err)
			p.routerMu.Unlock()
		}
	}()
}

// detect is the detection stage: the only goroutine that evaluates events
// and delivers alerts. Its events come from the assembler's goroutine, or,
// with st, from the records it reads and assembles itself.
func (p *pipeline) detect(ctx context.Context, events <-chan *audit.Event, st recordStream) {
	defer close(p.detectDone)
	defer func() { p.router.Load().Close() }()
	tick := time.NewTicker(beatEvery)
	defer tick.Stop()
	var ready <-chan struct{}
	var expire <-chan time.Time
	emit := p.emitted
	if st != nil {
		ready = st.Ready()
		if p.expire {
			t := time.NewTicker(expireEvery)
			defer t.Stop()
			expire = t.C
		}
	}
	p.beat.Store(p.now().UnixNano())
	for {
		select {
		case now := <-tick.C:
			p.beat.Store(now.UnixNano())
			if p.expire {
				// Throttle windows that ended report what they held
				// back. Only live streams: a replay's event times are
				// not the clock's, so it reports at its end.
				p.deliverAll(p.engine.Flush(p.now()))
			}
		case ev, ok := <-events:
			if !ok {
				p.finish()
				return
			}
			p.evaluate(ev)
		case _, ok := <-ready:
			if !ok || !p.readStream(st, emit) {
				if !ok && st.Err() == nil {
					p.readStream(st, emit) // shutting down: what arrived still counts
				}
				p.asm.Flush(emit)
				p.finish()
				return
			}
		case <-expire:
			p.asm.Expire(p.now(), emit)
		case a := <-p.synth:
			p.deliver(a)
		case j := <-p.files.Done():
			p.reidentify(j)
		case r := <-p.swaps:
			old := p.router.Load()
			p.startRouter(ctx, r)
			p.router.Store(r)
			// The old router drains what it holds, then closes its sinks.
			old.Close()
		}
	}
}

// evaluate runs detection on one event and delivers its alerts.
func (p *pipeline) evaluate(ev *audit.Event) {
	// The cache learns of every exec before detection, so a pipeline's
	// shell is known when its children run.
	p.procs.Observe(ev)
	if c := p.canary.Load(); c != nil {
		c.check(ev, p.now())
	}
	as := p.engine.Evaluate(ev)
	if p.holding {
		p.held = append(p.held, as...)
		return
	}
	p.deliverAll(as)
}

// emitted is the assembler's emit when detection assembles itself.
func (p *pipeline) emitted(ev *audit.Event) {
	p.events.Add(1)
	p.evaluate(ev)
}

// finish reports whatever throttles still hold and delivers the alerts
// raised while the input ended.
func (p *pipeline) finish() {
	defer p.enrichment.close()
	p.deliverAll(p.engine.FlushAll())
	for {
		select {
		case a := <-p.synth:
			p.deliver(a)
		default:
			return
		}
	}
}

// readStream reads what st has gathered and assembles it, evaluating each
// event as it completes. It reports false when st failed (streamErr).
func (p *pipeline) readStream(st recordStream, emit func(*audit.Event)) bool {
	for {
		var more bool
		var err error
		p.batch, more, err = st.Read(p.batch[:0])
		now := p.now()
		p.records.Add(uint64(len(p.batch)))
		p.holding = true
		for _, r := range p.batch {
			p.asm.Push(r, now, emit)
		}
		p.holdAlerts()
		p.serialLost.Store(p.asm.Stats().Lost)
		if err != nil {
			p.streamErr = err
			return false
		}
		if !more {
			return true
		}
	}
}

// holdAlerts ends holding: it enriches and delivers the alerts of the batch
// just evaluated. Enrichment reads /proc and the router's sinks write, and
// a system call the runtime is told of wakes its monitor thread (sysmon)
// from its idle sleep into a millisecond of polling every 20 µs for as long
// as the process stays busy. Made in the middle of a batch, those calls kept
// it polling for the rest of the batch; made at its end, the process goes
// idle right after them and the monitor back to sleep. A batch is one
// gather window of records, evaluated in well under a millisecond, so
// holding delays no alert beyond that.
func (p *pipeline) holdAlerts() {
	p.holding = false
	p.deliverAll(p.held)
	clear(p.held) // the alerts' events go back to the collector
	p.held = p.held[:0]
}

// deliverAll enriches and delivers alerts.
func (p *pipeline) deliverAll(as []detect.Alert) {
	for i := range as {
		p.enrichment.enrich(&as[i])
		p.deliver(as[i])
	}
}

// deliver hands a to the router and counts it.
func (p *pipeline) deliver(a detect.Alert) {
	p.alerts.Add(1)
	k := alertKey{a.Signature.Name, a.Signature.Importance.String()}
	c, ok := p.bySignature.Load(k)
	if !ok {
		c, _ = p.bySignature.LoadOrStore(k, new(atomic.Uint64))
	}
	c.(*atomic.Uint64).Add(1)
	if a.Event != nil && !a.Event.Time.IsZero() {
		p.latency.Observe(p.now().Sub(a.Event.Time).Seconds())
	}
	p.router.Load().Deliver(a)
}

// raise queues an alert raised outside detection. It reports false when the
// detection stage has stopped or the queue is full.
func (p *pipeline) raise(a detect.Alert) bool {
	select {
	case p.synth <- a:
		return true
	case <-p.detectDone:
		return false
	default:
		return false
	}
}

// swapRouter hands r to the detection stage, which switches to it and closes
// the old router. If detection has stopped, r is closed at once.
func (p *pipeline) swapRouter(ctx context.Context, r *sink.Router) {
	select {
	case p.swaps <- r:
	case <-p.detectDone:
		r.Close()
		if err := r.Run(ctx); err != nil {
			p.log.WithError(err).Warn("close sinks of a reload that came too late")
		}
	}
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
			if p.abandon.Load() {
				continue
			}
			p.asmMeter.begin()
			now := p.now()
			p.records.Add(uint64(len(batch)))
			for _, r := range batch {
				p.asm.Push(r, now, emit)
			}
			p.asmMeter.end()
			p.serialLost.Store(p.asm.Stats().Lost)
		case <-tick:
			p.asm.Expire(p.now(), emit)
		}
	}
}
