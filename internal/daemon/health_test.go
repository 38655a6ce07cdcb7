package daemon

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/encwatch/encwatch/internal/config"
)

// stuckDaemon is a daemon whose pipeline is running on the clock *now,
// with detection beating, and no input or sinks.
func stuckDaemon(now *time.Time) *daemon {
	d := &daemon{p: &pipeline{now: func() time.Time { return *now }}}
	d.stages = newStageMonitor(d.stageProbes)
	d.running.Store(true)
	return d
}

// TestStageHealth drives the assembler's meter and the monitor's clock:
// an idle stage is healthy however long it waits; one inside its work past
// stageStuckAfter turns /healthz to 503 with the reason and withholds the
// watchdog ping; progress makes it healthy again.
func TestStageHealth(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	now := start
	d := stuckDaemon(&now)
	steps := []struct {
		name    string
		at      time.Duration
		act     func()
		wantBad string // "" healthy, else a substring of the reason
	}{
		{"idle at start", 0, nil, ""},
		{"idle an hour", time.Hour, nil, ""},
		{"enters a batch", time.Hour + time.Second, d.p.asmMeter.Begin, ""},
		{"inside within the bound", time.Hour + stageStuckAfter, nil, ""},
		{"inside past the bound", time.Hour + 2*stageStuckAfter, nil, "assembler stage stuck"},
		{"finishes", time.Hour + 2*stageStuckAfter + time.Second, d.p.asmMeter.End, ""},
		{"idle again long after", 3 * time.Hour, nil, ""},
	}
	for _, s := range steps {
		now = start.Add(s.at)
		d.p.beat.Store(now.UnixNano()) // detection turns throughout
		if s.act != nil {
			s.act()
		}
		d.stages.check(now)
		rec := httptest.NewRecorder()
		d.serveHealthz(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		body := rec.Body.String()
		if s.wantBad == "" {
			if rec.Code != http.StatusOK || !d.watchdogOK() {
				t.Errorf("%s: /healthz = %d %q, watchdog ok %v; want 200, true", s.name, rec.Code, body, d.watchdogOK())
			}
			continue
		}
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, s.wantBad) {
			t.Errorf("%s: /healthz = %d %q, want 503 with %q", s.name, rec.Code, body, s.wantBad)
		}
		if d.watchdogOK() {
			t.Errorf("%s: watchdog ok = true, want the ping withheld", s.name)
		}
	}
}

// TestStageMonitorProbes checks the monitor on probes of every kind: busy
// with progress is healthy, busy without progress past its bound is not,
// idle never is.
func TestStageMonitorProbes(t *testing.T) {
	var progress uint64
	busy := false
	sm := newStageMonitor(func() []probe {
		return []probe{{name: "sink x", progress: func() uint64 { return progress }, busy: func() bool { return busy }, bound: sinkStuckAfter}}
	})
	t0 := time.Unix(0, 0)
	steps := []struct {
		at       time.Duration
		busy     bool
		progress uint64
		want     string
	}{
		{0, false, 0, ""},
		{time.Minute, true, 0, ""},
		{2 * time.Minute, true, 5, ""},             // progress resets the clock
		{3*time.Minute + time.Second, true, 5, ""}, // 61 s without
		{4*time.Minute + time.Second, true, 5, "sink x stage stuck"},
		{5 * time.Minute, false, 5, ""}, // drained
		{9 * time.Minute, true, 5, ""},  // busy again: the clock starts anew
	}
	for _, s := range steps {
		busy, progress = s.busy, s.progress
		got := sm.check(t0.Add(s.at))
		if (s.want == "") != (got == "") || !strings.Contains(got, s.want) {
			t.Errorf("at %v busy=%v progress=%d: check = %q, want %q", s.at, s.busy, s.progress, got, s.want)
		}
	}
}

// TestDetectionStuckWithholdsWatchdog: detection missing its beats fails
// /healthz and the watchdog.
func TestDetectionStuckWithholdsWatchdog(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	d := stuckDaemon(&now)
	d.p.beat.Store(now.Add(-time.Minute).UnixNano())
	if got := d.health(); !strings.Contains(got, "detection stage stuck") {
		t.Errorf("health() = %q, want detection stage stuck", got)
	}
	if d.watchdogOK() {
		t.Errorf("watchdogOK() = true, want false")
	}
}

// TestListenMetricsTaken: a taken port fails with the address in the
// error.
func TestListenMetricsTaken(t *testing.T) {
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	d := &daemon{}
	ep, err := d.listenMetrics(config.Metrics{Address: holder.Addr().String()})
	if err == nil {
		ep.Close()
		t.Fatalf("listenMetrics(%s) = nil error, want in use", holder.Addr())
	}
	if !strings.Contains(err.Error(), holder.Addr().String()) || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("error = %q, want the address and \"already in use\"", err)
	}
	t.Logf("%v", err)
}
