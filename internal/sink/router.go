package sink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/encwatch/encwatch/detect"
)

// RouterOptions tune delivery. Zero values take the defaults.
type RouterOptions struct {
	// QueueSize bounds each sink's queue of alerts waiting for delivery
	// (default 1024). When it is full, new alerts for that sink are dropped
	// and counted.
	QueueSize int
	// BatchSize caps the alerts handed to one Send (default 64).
	BatchSize int
	// RetryMin and RetryMax bound the backoff between attempts to send a
	// failed batch (defaults 100ms and 30s): it doubles from RetryMin up to
	// RetryMax, each wait jittered to between half and all of it so that
	// sinks failing together do not retry in lockstep.
	RetryMin, RetryMax time.Duration
	// DrainTimeout bounds how long the workers keep delivering queued alerts
	// once the router is closed (default 3s). Alerts still queued then are
	// dropped and counted, and a Send in progress has its context cancelled.
	DrainTimeout time.Duration
	// Block makes Deliver wait for room in a full queue instead of dropping
	// the alert. It is for replay, whose input can wait and whose output
	// must be complete; the live kernel stream never blocks on a sink.
	Block bool
	// Accepted, when set, is called once per alert and sink (its index in
	// the sinks given to NewRouter) when that sink is done with the alert:
	// it took it (Send returned nil), refused it for good, filtered it out
	// by importance, or its spool stored it. A dropped alert is never
	// accepted. The collector acknowledges a JetStream message on it. It
	// is called from Deliver's goroutine or a sink's worker, and must not
	// block.
	Accepted func(sink int, a *detect.Alert)
}

func (o RouterOptions) withDefaults() RouterOptions {
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 64
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 3 * time.Second
	}
	return o
}

// Stats are one sink's delivery counters since the router was made.
type Stats struct {
	Sink     string
	Queued   uint64 // alerts accepted into the sink's queue or spool
	Sent     uint64 // alerts the sink accepted (Send returned nil)
	Failed   uint64 // Send attempts that returned an error
	Rejected uint64 // alerts the receiver refused for good (a permanent error): not retried
	Filtered uint64 // alerts below the sink's minimum importance: not for this sink
	Pending  int    // alerts in the queue or spool now
	// SpoolBytes is the size of the sink's spool on disk; 0 without one.
	SpoolBytes int64
	// SpoolMaxBytes is the bound on SpoolBytes (max_bytes); 0 without a
	// spool.
	SpoolMaxBytes int64
	// SpoolCorrupt counts the alerts lost to damaged spool records (see
	// Spool.Corrupt), apart from Dropped: they were queued, then their
	// bytes on disk were damaged.
	SpoolCorrupt uint64
	Dropped      Dropped
}

// Dropped counts a sink's alerts that were never delivered, by cause.
type Dropped struct {
	QueueFull  uint64 // the queue was full when the alert arrived
	Closed     uint64 // the alert arrived after Close
	Shutdown   uint64 // still queued or in a failing batch when the drain deadline passed
	SpoolFull  uint64 // the spool was full (when_full = drop_newest, or block timed out)
	SpoolError uint64 // the spool could not write the alert (its disk full, too), or decode it
}

// Total is the number of dropped alerts, whatever the cause. Rejected and
// filtered alerts are counted apart.
func (d Dropped) Total() uint64 {
	return d.QueueFull + d.Closed + d.Shutdown + d.SpoolFull + d.SpoolError
}

// ErrPermanent marks an error from Send that retrying cannot cure (an HTTP
// 400, a payload the receiver refuses): the router counts the batch as
// rejected and moves on. Test for it with errors.Is.
var ErrPermanent = errors.New("permanent")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// RejectedError is what Send returns when the receiver took the batch but
// refused Count of its alerts for good: the router counts those as rejected,
// the rest as sent, and does not retry.
type RejectedError struct {
	Count int
	Err   error
}

func (e *RejectedError) Error() string { return fmt.Sprintf("%d alerts rejected: %v", e.Count, e.Err) }
func (e *RejectedError) Unwrap() error { return e.Err }

// Delivery is a sink's own delivery policy, beyond the router's options.
type Delivery struct {
	// MinImportance: alerts below it are not sent to the sink (counted as
	// filtered).
	MinImportance detect.Importance
	// Spool, when set, replaces the sink's in-memory queue: Deliver appends
	// to it and the worker reads from it, acknowledging what the sink took.
	// The router closes it after the sink.
	Spool *Spool
}

// WithDelivery attaches a delivery policy to s; NewRouter applies it.
func WithDelivery(s Sink, d Delivery) Sink { return &delivered{Sink: s, d: d} }

// delivered is a Sink carrying its Delivery.
type delivered struct {
	Sink
	d Delivery
}

// Close closes the sink, then its spool.
func (s *delivered) Close() error {
	err := s.Sink.Close()
	if s.d.Spool != nil {
		err = errors.Join(err, s.d.Spool.Close())
	}
	return err
}

// Router fans alerts out to sinks. Each sink has its own bounded queue and
// delivery worker, so a slow or failing sink delays only itself: Deliver
// never blocks, and what a full queue cannot take is dropped and counted.
//
// Lifecycle: NewRouter, then Run once in its own goroutine; Deliver from the
// detection stage at any time; Close when the detection stage has stopped.
// Run then drains the queues within DrainTimeout, closes every sink and
// returns. Cancelling Run's context is the same as calling Close.
type Router struct {
	log    *logrus.Entry
	opts   RouterOptions
	queues []*queue

	// mu orders Deliver before Close: Deliver holds it shared while it
	// sends on the queues (uncontended, that is one atomic add, so the
	// detection path never waits but at shutdown), and Close holds it
	// exclusively to set closed and close the queues, so no Deliver ever
	// sends on a closed channel.
	mu       sync.RWMutex
	closed   bool          // under mu
	stopping chan struct{} // closed when Close starts: unblocks a Deliver waiting on a full queue (Block)
	closing  chan struct{} // closed by Close once the queues are closed
	once     sync.Once
}

// queue is one sink's channel, worker state and counters.
type queue struct {
	sink   Sink
	log    *logrus.Entry
	ch     chan detect.Alert // nil when spooled
	min    detect.Importance
	spool  *Spool
	notify chan struct{}            // spooled: a wake-up for the worker, capacity 1
	index  int                      // among the router's sinks, for accepted
	accept func(int, *detect.Alert) // RouterOptions.Accepted, or nil

	queued, sent, failed, rejected, filtered    atomic.Uint64
	droppedFull, droppedClosed, droppedShutdown atomic.Uint64
	droppedSpoolFull, droppedSpoolError         atomic.Uint64
}

// NewRouter returns a router delivering to sinks. It starts nothing: see Run.
func NewRouter(log *logrus.Entry, sinks []Sink, opts RouterOptions) *Router {
	opts = opts.withDefaults()
	r := &Router{log: log, opts: opts, stopping: make(chan struct{}), closing: make(chan struct{})}
	for _, s := range sinks {
		q := &queue{sink: s, log: log.WithField("sink", s.Name()), index: len(r.queues), accept: opts.Accepted}
		if d, ok := s.(*delivered); ok {
			q.min, q.spool = d.d.MinImportance, d.d.Spool
		}
		if q.spool != nil {
			q.notify = make(chan struct{}, 1)
			if n := q.spool.Pending(); n > 0 {
				q.notify <- struct{}{}
				q.log.WithField("alerts", n).Info("resuming spooled alerts")
			}
		} else {
			q.ch = make(chan detect.Alert, opts.QueueSize)
		}
		r.queues = append(r.queues, q)
	}
	return r
}

// Deliver queues a for every sink without blocking, unless the router was
// made with Block. A sink whose queue is full, or a router already closed,
// drops it and counts the drop. Deliver may be called from any goroutine.
func (r *Router) Deliver(a detect.Alert) { r.DeliverTo(a, nil) }

// DeliverTo is Deliver to the sinks only names; nil names every sink.
// Sinks it leaves out do not count the alert at all.
func (r *Router) DeliverTo(a detect.Alert, only []string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		for _, q := range r.queues {
			q.droppedClosed.Add(1)
		}
		return
	}
	for _, q := range r.queues {
		if only != nil && !slices.Contains(only, q.sink.Name()) {
			continue
		}
		if a.Signature.Importance < q.min {
			q.filtered.Add(1)
			q.accepted(&a)
			continue
		}
		if q.spool != nil {
			// A copy, so that only the spooled path moves an alert to the
			// heap.
			spooled := a
			q.appendSpool(&spooled)
			continue
		}
		if r.opts.Block {
			select {
			case q.ch <- a:
				q.queued.Add(1)
			case <-r.stopping:
				q.droppedClosed.Add(1)
			}
			continue
		}
		select {
		case q.ch <- a:
			q.queued.Add(1)
		default:
			q.droppedFull.Add(1)
		}
	}
}

// appendSpool writes a to the queue's spool and wakes the worker.
func (q *queue) appendSpool(a *detect.Alert) {
	switch err := q.spool.Append(a); {
	case err == nil:
		q.queued.Add(1)
		q.accepted(a)
		select {
		case q.notify <- struct{}{}:
		default: // a wake-up is already pending
		}
	case errors.Is(err, ErrSpoolFull):
		q.droppedSpoolFull.Add(1)
	case errors.Is(err, ErrSpoolClosed):
		q.droppedClosed.Add(1)
	case errors.Is(err, ErrSpoolDiskFull):
		// Counted here, logged by the spool once per disk-full episode
		// with its total, not once per alert.
		q.droppedSpoolError.Add(1)
	default:
		q.droppedSpoolError.Add(1)
		q.log.WithError(err).Error("spool append failed; alert dropped")
	}
}

// accepted reports a as done with by this sink (RouterOptions.Accepted).
func (q *queue) accepted(a *detect.Alert) {
	if q.accept != nil {
		q.accept(q.index, a)
	}
}

// acceptedBatch reports a batch the sink is done with; a spooled sink
// reported each alert when its spool stored it.
func (q *queue) acceptedBatch(batch []detect.Alert) {
	if q.accept == nil || q.spool != nil {
		return
	}
	for i := range batch {
		q.accept(q.index, &batch[i])
	}
}

// Close stops accepting alerts and closes the queues, so that Run drains them
// and returns. It does not wait for Run; it is safe to call more than once.
func (r *Router) Close() {
	r.once.Do(func() {
		close(r.stopping)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.closed = true
		for _, q := range r.queues {
			if q.ch != nil {
				close(q.ch)
			} else {
				close(q.notify)
			}
		}
		close(r.closing)
	})
}

// Run starts one delivery worker per sink and returns after all have stopped
// and every sink is closed: after Close (or ctx cancellation), once the queues
// are drained or DrainTimeout has passed. It returns the sinks' Close errors.
func (r *Router) Run(ctx context.Context) error {
	// Sends outlive ctx until the drain deadline, so that queued alerts
	// still go out on shutdown.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()

	var g errgroup.Group
	for _, q := range r.queues {
		g.Go(func() error {
			if q.spool != nil {
				q.runSpool(sendCtx, r.opts)
			} else {
				q.run(sendCtx, r.opts)
			}
			return nil
		})
	}
	done := make(chan struct{})
	go func() {
		_ = g.Wait()
		close(done)
	}()

	select {
	case <-ctx.Done():
		r.Close()
	case <-r.closing:
	}
	drain := time.NewTimer(r.opts.DrainTimeout)
	defer drain.Stop()
	select {
	case <-done:
	case <-drain.C:
		r.log.WithField("timeout", r.opts.DrainTimeout.Seconds()).
			Warn("drain deadline passed: alerts still in a queue are dropped and counted; spooled ones wait on disk for the next start")
		cancelSends()
		<-done
	}

	var errs []error
	for _, q := range r.queues {
		if err := q.sink.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stats returns the counters of every sink, in the order the sinks were given.
func (r *Router) Stats() []Stats {
	st := make([]Stats, len(r.queues))
	for i, q := range r.queues {
		pending, spoolBytes, spoolMax, corrupt := len(q.ch), int64(0), int64(0), uint64(0)
		if q.spool != nil {
			pending, spoolBytes, spoolMax, corrupt = q.spool.Pending(), q.spool.Bytes(), q.spool.MaxBytes(), q.spool.Corrupt()
		}
		st[i] = Stats{
			Sink:          q.sink.Name(),
			Queued:        q.queued.Load(),
			Sent:          q.sent.Load(),
			Failed:        q.failed.Load(),
			Rejected:      q.rejected.Load(),
			Filtered:      q.filtered.Load(),
			Pending:       pending,
			SpoolBytes:    spoolBytes,
			SpoolMaxBytes: spoolMax,
			SpoolCorrupt:  corrupt,
			Dropped: Dropped{
				QueueFull:  q.droppedFull.Load(),
				Closed:     q.droppedClosed.Load(),
				Shutdown:   q.droppedShutdown.Load(),
				SpoolFull:  q.droppedSpoolFull.Load(),
				SpoolError: q.droppedSpoolError.Load(),
			},
		}
	}
	return st
}

// run delivers the queue in batches until it is closed and empty, or until
// ctx is cancelled at the drain deadline, when it counts what is left as
// dropped.
func (q *queue) run(ctx context.Context, opts RouterOptions) {
	batch := make([]detect.Alert, 0, opts.BatchSize)
	for {
		a, ok := <-q.ch
		if !ok {
			return
		}
		batch = append(batch[:0], a)
	fill:
		for len(batch) < opts.BatchSize {
			select {
			case a, ok := <-q.ch:
				if !ok {
					break fill
				}
				batch = append(batch, a)
			default:
				break fill
			}
		}
		if ctx.Err() != nil || !q.send(ctx, batch, opts) {
			n := uint64(len(batch))
			for range q.ch { // closed by now: the deadline follows Close
				n++
			}
			q.droppedShutdown.Add(n)
			clear(batch) // let the events go
			return
		}
		clear(batch)
	}
}

// runSpool delivers the spool in batches until the router is closed and the
// spool is empty, or until ctx is cancelled at the drain deadline. What it
// has not delivered then stays in the spool, for the next start: it is not
// dropped.
func (q *queue) runSpool(ctx context.Context, opts RouterOptions) {
	batch := make([]detect.Alert, 0, opts.BatchSize)
	closed, ackFailing, readFailures := false, false, 0
	idle := time.NewTimer(time.Hour)
	idle.Stop() // armed while idle with unsynced writes, or to back off
	defer idle.Stop()
	for ctx.Err() == nil {
		from := q.spool.cursor()
		batch, next, skipped, err := q.spool.Read(batch[:0], opts.BatchSize)
		if skipped > 0 {
			q.droppedSpoolError.Add(uint64(skipped))
			q.log.WithField("records", skipped).Error("undecodable spool records skipped")
		}
		if len(batch) == 0 && skipped == 0 && next == from {
			if err == nil {
				readFailures = 0
			}
			if closed {
				return // closed and empty (or unreadable): what is left stays on disk
			}
			wait := time.Duration(0)
			if err != nil {
				// Unreadable now (an I/O error): try again after a capped,
				// jittered backoff, never in a tight loop.
				wait = backoff(readFailures, opts.RetryMin, opts.RetryMax, rand.Float64())
				readFailures++
				q.log.WithError(err).WithField("retry_in", wait.Seconds()).Error("spool read failed")
			}
			closed = q.idle(idle, wait)
			continue
		}
		readFailures = 0
		if len(batch) > 0 && !q.send(ctx, batch, opts) {
			clear(batch)
			return // the drain deadline: the batch stays spooled
		}
		clear(batch)
		// Ack moves the cursor even when the ack file cannot be written
		// (a full disk), so nothing delivered is sent again; say so once
		// per episode, not per batch.
		switch err := q.spool.Ack(next, len(batch)+skipped); {
		case err != nil && !ackFailing:
			q.log.WithError(err).Error("spool ack failed; delivery goes on, a restart before it is written would resend")
			ackFailing = true
		case err == nil && ackFailing:
			q.log.Info("spool ack written again")
			ackFailing = false
		}
	}
}

// idle waits for a wake-up (or, when wait > 0, for wait to pass: a
// backoff), meanwhile making what the last appends left in the page cache
// durable. It reports whether the queue was closed.
func (q *queue) idle(timer *time.Timer, wait time.Duration) (closed bool) {
	sync := wait == 0 && q.spool.Unsynced()
	switch {
	case wait > 0:
		timer.Reset(wait)
	case sync:
		timer.Reset(q.spool.opts.FsyncInterval)
	}
	select {
	case _, ok := <-q.notify:
		if wait > 0 || sync {
			timer.Stop()
		}
		return !ok
	case <-timer.C:
		if sync {
			if err := q.spool.Sync(); err != nil {
				q.log.WithError(err).Error("spool fsync failed")
			}
		}
	}
	return false
}

// send retries batch with backoff until the sink takes it, or refuses it for
// good, or until ctx is cancelled; it reports whether the batch is done with.
func (q *queue) send(ctx context.Context, batch []detect.Alert, opts RouterOptions) bool {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for attempt := 0; ; attempt++ {
		err := q.sink.Send(ctx, batch)
		if err == nil {
			q.sent.Add(uint64(len(batch)))
			q.acceptedBatch(batch)
			if attempt > 0 {
				q.log.WithField("attempts", attempt+1).Info("sink recovered")
			}
			return true
		}
		var rej *RejectedError
		if errors.As(err, &rej) {
			n := min(max(rej.Count, 0), len(batch))
			q.rejected.Add(uint64(n))
			q.sent.Add(uint64(len(batch) - n))
			q.log.WithError(err).WithField("alerts", n).Error("alerts rejected by the receiver")
			q.acceptedBatch(batch)
			return true
		}
		if errors.Is(err, ErrPermanent) {
			q.rejected.Add(uint64(len(batch)))
			q.log.WithError(err).WithField("alerts", len(batch)).Error("alerts rejected by the receiver")
			q.acceptedBatch(batch)
			return true
		}
		q.failed.Add(1)
		if ctx.Err() != nil {
			return false
		}
		wait := backoff(attempt, opts.RetryMin, opts.RetryMax, rand.Float64())
		q.log.WithError(err).WithFields(logrus.Fields{
			"attempt":  attempt + 1,
			"alerts":   len(batch),
			"retry_in": wait.Seconds(),
		}).Warn("send failed")
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return false
		}
	}
}

// backoff is the wait before retry number attempt+1: RetryMin doubled per
// attempt, capped at max, then scaled by a jitter factor in [0.5, 1) drawn
// from r in [0, 1).
func backoff(attempt int, min, max time.Duration, r float64) time.Duration {
	d := min
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d/2 + time.Duration(r*float64(d/2))
}
