package daemon

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/encwatch/encwatch/internal/input"
)

// Bounds after which a stage that has work and makes no progress is
// stuck. An idle stage, waiting for input, is never stuck.
const (
	// stageStuckAfter bounds one batch in the assembler and the reader
	// leaving records queued in the kernel unread: both take microseconds
	// per record.
	stageStuckAfter = 10 * time.Second
	// sinkStuckAfter bounds a sink worker that holds alerts and neither
	// sends, fails nor drops one: every attempt ends by the sink's timeout
	// (seconds) and the wait between attempts is at most the router's
	// RetryMax (30 s by default), so two minutes without any of them is a
	// worker stuck beyond its timeout.
	sinkStuckAfter = 2 * time.Minute
	// healthEvery is how often the stage monitor samples the stages.
	healthEvery = time.Second
)

// stageMeter counts a stage's entries into and exits from its work: begin
// before a unit of work, end after it. The stage is busy while they
// differ. Each is one atomic add, cheap enough for the per-batch path.
type stageMeter struct {
	begun, ended atomic.Uint64
}

func (m *stageMeter) Begin() { m.begun.Add(1) }
func (m *stageMeter) End()   { m.ended.Add(1) }

// probe reads one stage for the monitor: progress is a counter that rises
// whenever the stage gets work done; busy whether it has work now (inside
// it, or waiting for it).
type probe struct {
	name     string
	progress func() uint64
	busy     func() bool
	bound    time.Duration
}

// meterProbe is the probe of a stage counted by m.
func meterProbe(name string, m *stageMeter, bound time.Duration) probe {
	return probe{
		name:     name,
		progress: m.ended.Load,
		busy:     func() bool { return m.begun.Load() != m.ended.Load() },
		bound:    bound,
	}
}

// stageMonitor samples probes and remembers, for each, since when it has
// been busy without progress. Its clock is the caller's (check's now), so
// tests drive it without sleeping.
type stageMonitor struct {
	mu     sync.Mutex
	probes func() []probe // read at each check: sinks change on reload
	seen   map[string]stageSeen
	reason atomic.Pointer[string]
}

// stageSeen is what the monitor last saw of a probe.
type stageSeen struct {
	progress uint64
	since    time.Time // when progress last rose, or the stage became busy
	busy     bool
}

func newStageMonitor(probes func() []probe) *stageMonitor {
	return &stageMonitor{probes: probes, seen: make(map[string]stageSeen)}
}

// check samples every probe at now and returns why a stage is stuck, or "".
// The result is also what stuck returns until the next check.
func (sm *stageMonitor) check(now time.Time) string {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	reason := ""
	seen := make(map[string]stageSeen, len(sm.seen))
	for _, p := range sm.probes() {
		cur := stageSeen{progress: p.progress(), busy: p.busy(), since: now}
		if last, ok := sm.seen[p.name]; ok && last.busy && cur.busy && last.progress == cur.progress {
			cur.since = last.since
		}
		seen[p.name] = cur
		if cur.busy && now.Sub(cur.since) > p.bound && reason == "" {
			reason = fmt.Sprintf("%s stage stuck: no progress for %s with work pending", p.name, now.Sub(cur.since).Truncate(time.Second))
		}
	}
	sm.seen = seen
	sm.reason.Store(&reason)
	return reason
}

// stuck is why a stage was stuck at the last check, or "".
func (sm *stageMonitor) stuck() string {
	if r := sm.reason.Load(); r != nil {
		return *r
	}
	return ""
}

// run checks the stages every healthEvery until ctx ends.
func (sm *stageMonitor) run(ctx context.Context, now func() time.Time) error {
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			sm.check(now())
		}
	}
}

// stageProbes are the daemon's stages as the monitor sees them: the kernel
// reader of an owner input (busy while the kernel reports a backlog for
// it, which is auditd's in the other modes), the assembler,
// and every sink worker of the current router (busy while alerts wait).
// Detection has its own beat (pipeline.alive), checked in health.
func (d *daemon) stageProbes() []probe {
	ps := []probe{meterProbe("assembler", &d.p.asmMeter, stageStuckAfter)}
	_, owner := d.in.(input.SettingsOwner)
	if rs, ok := d.in.(input.Stats); ok && owner {
		ps = append(ps, probe{
			name: "reader",
			progress: func() uint64 {
				s := rs.Stats()
				return s.Records + s.ENOBUFS
			},
			// Busy while the kernel's last status showed records
			// queued for us and the reader has read none since.
			busy: func() bool {
				b := d.m.backlog0.Load()
				return b != nil && b.backlog > 0 && rs.Stats().Records == b.records
			},
			bound: stageStuckAfter,
		})
	}
	if r := d.p.router.Load(); r != nil {
		for _, s := range r.Stats() {
			ps = append(ps, d.sinkProbe(s.Sink))
		}
	}
	return ps
}

// sinkProbe is the probe of the named sink of the current router.
func (d *daemon) sinkProbe(name string) probe {
	read := func() (uint64, bool) {
		r := d.p.router.Load()
		if r == nil {
			return 0, false
		}
		for _, s := range r.Stats() {
			if s.Sink == name {
				return s.Sent + s.Failed + s.Rejected + s.Filtered + s.Dropped.Total(), s.Pending > 0
			}
		}
		return 0, false
	}
	return probe{
		name:     "sink " + name,
		progress: func() uint64 { n, _ := read(); return n },
		busy:     func() bool { _, b := read(); return b },
		bound:    sinkStuckAfter,
	}
}
