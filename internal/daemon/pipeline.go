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
	"golang.org/x/sys/cpu"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/input"
	"github.com/encwatch/encwatch/internal/proc"
	"github.com/encwatch/encwatch/internal/sink"
)

// Timers of the detection stage.
const (
	expireEvery = 250 * time.Millisecond
	// beatEvery is how often the detection stage marks itself alive, idle
	// or not; the systemd watchdog is fed only while the mark is fresh.
	beatEvery = time.Second
)

// pipeline is one run of input → detection → enrichment → sinks, over the
// input's event stream (input.Stream): the detection goroutine reads the
// stream, whose record-based inputs assemble in it (the kernel's) or in
// goroutines of their own (files, stdin); enrichment runs in detection's
// goroutine and the router in its own. newPipeline builds it from
// pipelineOptions.
type pipeline struct {
	log    *logrus.Entry
	engine *detect.Engine
	procs  *proc.Cache
	// enrichment completes each alert of detection before the router.
	enrichment enrichment
	// files identifies executed files off the detection path (identify.go).
	files *proc.Identifier
	// stream is how the input is asked for its events: the assembler's
	// configuration, Live and Lossy.
	stream input.StreamOptions
	now    func() time.Time

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

	// expire enables the wall-clock timeout for events whose EOE never came;
	// only live streams have one.
	expire bool

	// beat is when the detection stage last went round its loop (unix
	// nanoseconds).
	beat atomic.Int64

	// streamErr is why the input's stream failed.
	streamErr error
	// wrap, if set, wraps the input's stream (pipelineOptions.Wrap).
	wrap func(input.Stream) input.Stream
	// holding is set while readStream evaluates a batch: evaluate then keeps
	// its alerts in held, which readStream enriches and delivers once the
	// batch is done (see holdAlerts).
	holding bool
	held    []detect.Alert

	alerts atomic.Uint64
	// bySignature counts delivered alerts by alertKey.
	bySignature sync.Map // alertKey → *atomic.Uint64

	// The assembler's goroutine writes what follows on every batch: the
	// pad keeps it off the cache line of the fields detection reads on
	// every event (holding, held), which it made a cache miss per event.
	_ cpu.CacheLinePad
	// Counters are the stream's records, events and losses.
	input.Counters
	// asmMeter counts the assembler's batches in and out (health.go).
	asmMeter stageMeter
}

// alive reports whether the detection stage has gone round its loop
// lately: an idle one still does, once per beatEvery.
func (p *pipeline) alive() bool {
	return p.now().Sub(time.Unix(0, p.beat.Load())) < 3*beatEvery
}

// alertKey labels the alert counters.
type alertKey struct{ signature, importance string }

// run reads in's events until the stream ends and returns once detection
// has flushed them and every router has drained: one goroutine from the
// input's stream to the router, beside the router's and the file
// identifier's.
func (p *pipeline) run(ctx context.Context, in input.Input) error {
	o := p.stream
	o.Counters, o.Meter = &p.Counters, &p.asmMeter
	st, err := in.Events(ctx, o)
	if err != nil {
		// No detection stage will run: close the router it would have.
		close(p.detectDone)
		r := p.router.Load()
		r.Close()
		return errors.Join(err, r.Run(context.WithoutCancel(ctx)))
	}
	if p.wrap != nil {
		st = p.wrap(st)
	}
	p.startRouter(context.WithoutCancel(ctx), p.router.Load())
	// The file identifier's workers read executables off the detection
	// path; they stop once detection has.
	files := make(chan error, 1)
	go func() { files <- p.runFiles(ctx) }()
	p.detect(context.WithoutCancel(ctx), st)
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
// and delivers alerts, read from st.
func (p *pipeline) detect(ctx context.Context, st input.Stream) {
	defer close(p.detectDone)
	defer func() { p.router.Load().Close() }()
	tick := time.NewTicker(beatEvery)
	defer tick.Stop()
	var expire <-chan time.Time
	emit := p.evaluate
	ready := st.Ready()
	if p.expire {
		t := time.NewTicker(expireEvery)
		defer t.Stop()
		expire = t.C
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
		case _, ok := <-ready:
			if !ok || !p.readStream(st) {
				if !ok && st.Err() == nil {
					p.readStream(st) // shutting down: what arrived still counts
				}
				p.hold(func() { st.Flush(emit) })
				p.finish()
				return
			}
		case <-expire:
			p.hold(func() { st.Expire(p.now(), emit) })
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

// readStream reads what st has ready, evaluating each event as it
// completes. It reports false when st failed (streamErr).
func (p *pipeline) readStream(st input.Stream) bool {
	for {
		var more bool
		var err error
		p.holding = true
		more, err = st.Read(p.evaluate)
		p.holdAlerts()
		if err != nil {
			p.streamErr = err
			return false
		}
		if !more {
			return true
		}
	}
}

// hold runs fn, which evaluates events, holding their alerts until it is
// done (holdAlerts).
func (p *pipeline) hold(fn func()) {
	p.holding = true
	fn()
	p.holdAlerts()
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
