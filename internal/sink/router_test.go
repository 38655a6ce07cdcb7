package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
)

func discardLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// fakeSink records the IDs of the alerts it accepts. The first failFirst
// Sends fail; while block is open, Send waits on it (or on ctx); done is
// closed once it holds want alerts.
type fakeSink struct {
	name      string
	failFirst int
	block     chan struct{}
	want      int
	done      chan struct{}

	mu     sync.Mutex
	calls  int
	got    []string
	closed bool
}

func newFake(name string) *fakeSink { return &fakeSink{name: name, done: make(chan struct{})} }

func (s *fakeSink) Name() string { return s.name }

func (s *fakeSink) Send(ctx context.Context, alerts []detect.Alert) error {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.failFirst {
		return errors.New("receiver down")
	}
	for _, a := range alerts {
		s.got = append(s.got, a.ID)
	}
	if s.want > 0 && len(s.got) == s.want {
		close(s.done)
	}
	return nil
}

func (s *fakeSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *fakeSink) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func ids(n int) []string {
	var s []string
	for i := range n {
		s = append(s, strconv.Itoa(i))
	}
	return s
}

func alertN(i int) detect.Alert { return detect.Alert{ID: strconv.Itoa(i)} }

// start runs r in a goroutine and returns the channel Run's result arrives on.
func start(r *Router, ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return done
}

func TestRouterSlowSinkDoesNotStallOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fast, slow := newFake("fast"), newFake("slow")
		slow.block = make(chan struct{})
		r := NewRouter(discardLog(), []Sink{fast, slow}, RouterOptions{QueueSize: 4, BatchSize: 1})
		done := start(r, t.Context())

		const n = 100
		for i := range n {
			r.Deliver(alertN(i))
			synctest.Wait() // let the workers take what they can
		}
		if got, want := fast.received(), ids(n); !slices.Equal(got, want) {
			t.Errorf("fast sink got %v while slow sink blocked, want %v", got, want)
		}
		st := r.Stats()
		// The slow worker holds alert 0 in Send; 4 more fill its queue.
		if got, want := st[1], (Stats{Sink: "slow", Queued: 5, Pending: 4, Dropped: Dropped{QueueFull: n - 5}}); got != want {
			t.Errorf("slow stats = %+v, want %+v", got, want)
		}
		if got, want := st[0], (Stats{Sink: "fast", Queued: n, Sent: n}); got != want {
			t.Errorf("fast stats = %+v, want %+v", got, want)
		}

		close(slow.block)
		r.Close()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if got, want := slow.received(), ids(5); !slices.Equal(got, want) {
			t.Errorf("slow sink got %v after unblocking, want %v", got, want)
		}
		if got := r.Stats()[1].Sent; got != 5 {
			t.Errorf("slow Sent = %d, want 5", got)
		}
	})
}

func TestRouterRetriesUntilRecoveredInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 50
		s := newFake("flaky")
		s.failFirst = 6
		s.want = n
		r := NewRouter(discardLog(), []Sink{s}, RouterOptions{
			QueueSize: 64, BatchSize: 8, RetryMin: 100 * time.Millisecond, RetryMax: time.Second,
		})
		done := start(r, t.Context())

		for i := range 10 {
			r.Deliver(alertN(i))
		}
		synctest.Wait() // the worker is now backing off after a failure
		for i := 10; i < n; i++ {
			r.Deliver(alertN(i)) // queued while the sink is failing
		}
		<-s.done

		r.Close()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if got, want := s.received(), ids(n); !slices.Equal(got, want) {
			t.Errorf("sink got %v, want every alert once in order %v", got, want)
		}
		if got, want := r.Stats()[0], (Stats{Sink: "flaky", Queued: n, Sent: n, Failed: 6}); got != want {
			t.Errorf("stats = %+v, want %+v", got, want)
		}
	})
}

func TestRouterDrainOnClose(t *testing.T) {
	a, b := newFake("a"), newFake("b")
	r := NewRouter(discardLog(), []Sink{a, b}, RouterOptions{QueueSize: 32, BatchSize: 3})
	for i := range 20 {
		r.Deliver(alertN(i))
	}
	r.Close() // before Run: everything queued must still go out
	if err := r.Run(t.Context()); err != nil {
		t.Fatalf("Run = %v", err)
	}
	for _, s := range []*fakeSink{a, b} {
		if got, want := s.received(), ids(20); !slices.Equal(got, want) {
			t.Errorf("sink %s got %v, want %v", s.name, got, want)
		}
		if !s.closed {
			t.Errorf("sink %s not closed after Run returned", s.name)
		}
	}
	r.Deliver(alertN(20))
	if got, want := r.Stats()[0], (Stats{Sink: "a", Queued: 20, Sent: 20, Dropped: Dropped{Closed: 1}}); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
}

func TestRouterDrainDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stuck, ok := newFake("stuck"), newFake("ok")
		stuck.block = make(chan struct{}) // never released: only the deadline ends Send
		r := NewRouter(discardLog(), []Sink{stuck, ok}, RouterOptions{BatchSize: 4, DrainTimeout: 2 * time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		done := start(r, ctx)
		for i := range 10 {
			r.Deliver(alertN(i))
		}
		began := time.Now()
		cancel() // same as Close
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if got, want := time.Since(began), 2*time.Second; got != want {
			t.Errorf("Run returned %v after cancel, want the drain timeout %v", got, want)
		}
		if got, want := r.Stats()[0], (Stats{Sink: "stuck", Queued: 10, Failed: 1, Dropped: Dropped{Shutdown: 10}}); got != want {
			t.Errorf("stuck stats = %+v, want %+v", got, want)
		}
		if got, want := ok.received(), ids(10); !slices.Equal(got, want) {
			t.Errorf("healthy sink got %v, want %v", got, want)
		}
		if !stuck.closed || !ok.closed {
			t.Errorf("sinks closed = %v, %v; want both closed", stuck.closed, ok.closed)
		}
	})
}

func TestRouterDeliverConcurrentWithClose(t *testing.T) {
	s := newFake("s")
	r := NewRouter(discardLog(), []Sink{s}, RouterOptions{QueueSize: 1 << 16})
	done := start(r, t.Context())
	var wg sync.WaitGroup
	const senders, each = 4, 1000
	for range senders {
		wg.Go(func() {
			for i := range each {
				r.Deliver(alertN(i))
			}
		})
	}
	r.Close()
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	st := r.Stats()[0]
	if got, want := st.Queued+st.Dropped.Total(), uint64(senders*each); got != want {
		t.Errorf("queued+dropped = %d, want %d (stats %+v)", got, want, st)
	}
	if got, want := uint64(len(s.received())), st.Queued; got != want {
		t.Errorf("sink got %d alerts, want all %d queued", got, want)
	}
}

func TestBackoff(t *testing.T) {
	const min, max = 100 * time.Millisecond, 5 * time.Second
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{0, 0, 50 * time.Millisecond},
		{0, 0.999999, 99999950 * time.Nanosecond},
		{1, 0, 100 * time.Millisecond},
		{3, 0.5, 600 * time.Millisecond}, // 800ms: 400 + 200
		{6, 0, 2500 * time.Millisecond},  // 6.4s capped at 5s
		{1000, 0.5, 3750 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.attempt, tt.r), func(t *testing.T) {
			if got := backoff(tt.attempt, min, max, tt.r); got != tt.want {
				t.Errorf("backoff(%d, %v, %v, %v) = %v, want %v", tt.attempt, min, max, tt.r, got, tt.want)
			}
		})
	}
}

func TestRouterBlockLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := newFake("slow")
		slow.block = make(chan struct{})
		r := NewRouter(discardLog(), []Sink{slow}, RouterOptions{QueueSize: 2, BatchSize: 1, Block: true})
		done := start(r, t.Context())

		const n = 20
		delivered := make(chan struct{})
		go func() {
			for i := range n {
				r.Deliver(alertN(i))
			}
			close(delivered)
		}()
		synctest.Wait()
		select {
		case <-delivered:
			t.Fatal("Deliver returned for every alert while the sink was blocked and its queue full")
		default:
		}
		close(slow.block)
		<-delivered
		r.Close()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if got, want := slow.received(), ids(n); !slices.Equal(got, want) {
			t.Errorf("sink got %v, want %v", got, want)
		}
		if d := r.Stats()[0].Dropped.Total(); d != 0 {
			t.Errorf("dropped %d alerts, want 0", d)
		}
	})
}

// TestRouterCloseUnblocksBlockedDeliver: with Block, a Deliver waiting on a
// full queue whose sink never recovers returns once Close is called, and
// the alert it held is counted as dropped (closed), not lost silently.
func TestRouterCloseUnblocksBlockedDeliver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stuck := newFake("stuck")
		stuck.block = make(chan struct{}) // never opened: Send waits for the drain deadline
		r := NewRouter(discardLog(), []Sink{stuck}, RouterOptions{QueueSize: 1, BatchSize: 1, Block: true, DrainTimeout: time.Second})
		done := start(r, t.Context())
		delivered := make(chan struct{})
		go func() {
			for i := range 3 { // one in Send, one queued, one waiting
				r.Deliver(alertN(i))
			}
			close(delivered)
		}()
		synctest.Wait()
		r.Close()
		<-delivered
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		st := r.Stats()[0]
		if got, want := st.Queued+st.Dropped.Closed, uint64(3); got != want {
			t.Errorf("queued+dropped(closed) = %d, want %d (stats %+v)", got, want, st)
		}
		if st.Dropped.Closed != 1 {
			t.Errorf("dropped(closed) = %d, want 1", st.Dropped.Closed)
		}
	})
}
