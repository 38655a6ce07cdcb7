package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// benchKey is the audit rule key of every rule the benchmark installs.
const benchKey = "encwatch-bench"

// drain is how long a run keeps measuring after the storm: the policy's
// event_timeout (2 s) plus its gather window, so every record of the storm
// has been read and every alert written.
const drain = 2500 * time.Millisecond

// policyEdits are what a measured run changes in the repo's config.hcl.
type policyEdits struct {
	key             string
	sinks           string  // HCL sink blocks replacing the policy's own
	extra           string  // appended HCL (a metrics block)
	backlogLimit    *uint32 // nil keeps the policy's value
	backlogWaitTime *uint32 // nil keeps the kernel's value, as the policy does
	keepThrottles   bool
}

var (
	sinkBlock     = regexp.MustCompile(`(?ms)^sink\s+"[^"]*"\s+"[^"]*"\s*\{.*?^\}\n?`)
	throttleBlock = regexp.MustCompile(`(?ms)^[ \t]*throttle\s*\{.*?^[ \t]*\}\n`)
	ruleKeyAttr   = regexp.MustCompile(`(?m)^(\s*rule_key\s*=\s*)"[^"]*"`)
	backlogAttr   = regexp.MustCompile(`(?m)^(\s*backlog_limit\s*=\s*)\d+`)
	waitAttr      = regexp.MustCompile(`(?m)^\s*#?\s*backlog_wait_time\s*=.*$`)
	alertCapAttr  = regexp.MustCompile(`(?m)^(\s*alert_cap_per_minute\s*=\s*)\d+`)
)

// benchPolicy rewrites the default policy for a run: its sinks replaced,
// its rule key set, and its throttles removed and its safety cap raised to
// the most the policy allows, so that every marked encoder run raises an
// alert (the benchmark measures the unthrottled, costlier path).
func benchPolicy(src string, e policyEdits) (string, error) {
	p := sinkBlock.ReplaceAllString(src, "")
	if !e.keepThrottles {
		p = throttleBlock.ReplaceAllString(p, "")
		p = alertCapAttr.ReplaceAllString(p, "${1}10000000")
	}
	if !ruleKeyAttr.MatchString(p) {
		return "", errors.New("policy has no rule_key to replace")
	}
	p = ruleKeyAttr.ReplaceAllString(p, `${1}"`+e.key+`"`)
	if e.backlogLimit != nil {
		p = backlogAttr.ReplaceAllString(p, fmt.Sprintf("${1}%d", *e.backlogLimit))
	}
	if e.backlogWaitTime != nil {
		if !waitAttr.MatchString(p) {
			return "", errors.New("policy has no backlog_wait_time line to replace")
		}
		p = waitAttr.ReplaceAllString(p, fmt.Sprintf("  backlog_wait_time = %d", *e.backlogWaitTime))
	}
	return p + "\n" + e.sinks + "\n" + e.extra, nil
}

// daemon is a running encwatch.
type daemon struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, after done
	ready  chan struct{} // closed at "encwatch running"
	mu     sync.Mutex
	final  map[string]any // fields of "encwatch stopping"
	warns  []string       // warning and error lines
	tail   []string       // last lines, for a start-up failure
	counts map[string]int // lines by msg
}

// startEncwatch starts bin with the policy at path and waits until it runs.
func startEncwatch(bin, path string, log *logrus.Entry) (*daemon, error) {
	d := &daemon{done: make(chan struct{}), ready: make(chan struct{}), counts: map[string]int{}}
	d.cmd = exec.Command(bin, "run", "--config", path)
	d.cmd.Stdout = io.Discard
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start encwatch: %w", err)
	}
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		d.read(stderr)
	}()
	go func() {
		<-logged
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	select {
	case <-d.ready:
		return d, nil
	case <-d.done:
		return nil, fmt.Errorf("encwatch exited at start (%v): %s", d.err, strings.Join(d.tail, "\n"))
	case <-time.After(20 * time.Second):
		d.stop()
		return nil, errors.New("encwatch did not start within 20 s")
	}
}

func (d *daemon) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		d.mu.Lock()
		d.tail = append(d.tail, line)
		if len(d.tail) > 20 {
			d.tail = d.tail[1:]
		}
		if json.Unmarshal([]byte(line), &m) == nil {
			msg, _ := m["msg"].(string)
			d.counts[msg]++
			switch msg {
			case "encwatch running":
				close(d.ready)
			case "encwatch stopping":
				d.final = m
			}
			if lv, _ := m["level"].(string); lv == "warning" || lv == "error" || lv == "fatal" {
				d.warns = append(d.warns, line)
			}
		}
		d.mu.Unlock()
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// stop sends SIGTERM and waits for the daemon to restore the kernel state
// and exit; after 30 s it is killed.
func (d *daemon) stop() error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		return errors.New("encwatch did not stop within 30 s; killed")
	}
	return d.err
}

// counter returns a field of the final log line as a number.
func (d *daemon) counter(name string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, _ := d.final[name].(float64)
	return uint64(f)
}

// measure is what one daemon did during one storm.
type measure struct {
	daemon       string
	gen          stormResult
	cpu          time.Duration
	hwmKiB       uint64
	events       uint64 // events (encwatch) or SYSCALL records with the key (auditd)
	ownEvents    int64  // auditd: SYSCALL records of the storm's own execs; -1 n/a
	kernelLost   uint32
	pipelineLost int64 // -1 n/a
	alerts       uint64
	matched      []time.Duration // fork→alert latencies of marked runs, sorted
	fromEvent    []time.Duration // kernel event time→alert, sorted
	warns        []string
	// kernel counts the daemon's system calls and context switches over
	// the window (perf stat); counted false when perf could not.
	kernel  kernelCounts
	counted bool
}

// perExec divides a kernel count by the storm's execs.
func (m measure) perExec(n uint64) string {
	if !m.counted || m.gen.execs == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(n)/float64(m.gen.execs))
}

func (m measure) cpuPerExec() float64 {
	if m.gen.execs == 0 {
		return 0
	}
	return float64(m.cpu.Microseconds()) / float64(m.gen.execs)
}

// cpuPerEvent divides the CPU by every exec the daemon handled.
func (m measure) cpuPerEvent() float64 {
	if m.events == 0 {
		return 0
	}
	return float64(m.cpu.Microseconds()) / float64(m.events)
}

// window runs the storm against pid: CPU, kernel loss and peak RSS are
// read around it, and the alert file (if any) is tailed for latencies.
func window(ctx context.Context, pid int, s *storm, alerts string) (measure, error) {
	var m measure
	st0, err := kernelStatus()
	if err != nil {
		return m, err
	}
	cpu0, err := cpuTime(pid)
	if err != nil {
		return m, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &alertWatch{path: alerts, storm: s}
	var wg sync.WaitGroup
	if alerts != "" {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx) }()
	}
	perf := startPerf(pid)
	m.gen, err = s.run(ctx)
	if err != nil {
		perf.stop()
		return m, err
	}
	select {
	case <-time.After(drain):
	case <-ctx.Done():
		perf.stop()
		return m, ctx.Err()
	}
	if m.kernel, err = perf.stop(); err == nil {
		m.counted = true
	} else {
		m.warns = append(m.warns, "kernel counters: "+err.Error())
	}
	cpu1, err := cpuTime(pid)
	if err != nil {
		return m, err
	}
	st1, err := kernelStatus()
	if err != nil {
		return m, err
	}
	m.hwmKiB, err = statusKiB(pid, "VmHWM")
	if err != nil {
		return m, err
	}
	m.cpu = cpu1 - cpu0
	m.kernelLost = st1.Lost - st0.Lost
	cancel()
	wg.Wait()
	m.matched, m.fromEvent = w.matched()
	if alerts != "" {
		if miss := w.missing(5); len(miss) > 0 {
			fmt.Fprintf(os.Stderr, "storm: no alert seen in %s for marked runs %v\n", alerts, miss)
		}
	}
	return m, nil
}

// point is one measured storm setting.
type point struct {
	label           string
	workload        string // static, true or mix (spawner.c)
	rate            float64
	duration        time.Duration
	backlogLimit    *uint32
	backlogWaitTime *uint32
}

func (p point) workers() int {
	if p.rate == 0 {
		return flatOutSpawners
	}
	if p.workload == "mix" {
		// A pipeline spawn waits for three forks of its shell.
		return 8
	}
	// Enough spawners that one slow fork does not miss the schedule.
	return 4
}

// runEncwatch measures encwatch, default policy and a file sink, on one storm.
func runEncwatch(ctx context.Context, o options, p point, log *logrus.Entry) (measure, error) {
	release, err := takeKernel(log)
	if err != nil {
		return measure{}, err
	}
	m, err := encwatchPoint(ctx, o, p, log)
	if rerr := release(); rerr != nil {
		log.WithError(rerr).Warn("kernel audit state repaired after encwatch")
	}
	return m, err
}

func encwatchPoint(ctx context.Context, o options, p point, log *logrus.Entry) (measure, error) {
	dir, err := os.MkdirTemp("", "encwatch-bench-")
	if err != nil {
		return measure{}, err
	}
	defer os.RemoveAll(dir)
	src, err := os.ReadFile(o.config)
	if err != nil {
		return measure{}, err
	}
	alerts := filepath.Join(dir, "alerts.jsonl")
	pol, err := benchPolicy(string(src), policyEdits{
		key:             benchKey,
		sinks:           fmt.Sprintf("sink \"file\" \"bench\" {\n  path = %q\n}\n", alerts),
		backlogLimit:    p.backlogLimit,
		backlogWaitTime: p.backlogWaitTime,
	})
	if err != nil {
		return measure{}, err
	}
	// The policy sits in a directory of its own: the daemon watches the
	// policy's directory for reloads, and an alert file beside it would wake
	// that watcher on every alert.
	cfg := filepath.Join(dir, "policy", "config.hcl")
	if err := os.Mkdir(filepath.Dir(cfg), 0o700); err != nil {
		return measure{}, err
	}
	if err := os.WriteFile(cfg, []byte(pol), 0o600); err != nil {
		return measure{}, err
	}
	d, err := startEncwatch(o.bin, cfg, log)
	if err != nil {
		return measure{}, err
	}
	time.Sleep(300 * time.Millisecond) // let start-up work (hashing encoders) settle
	s := newStorm(p, o, dir)
	m, err := window(ctx, d.pid(), s, alerts)
	if serr := d.stop(); serr != nil {
		err = errors.Join(err, fmt.Errorf("encwatch stop: %w", serr))
	}
	m.daemon = "encwatch"
	m.events = d.counter("events")
	m.alerts = d.counter("alerts")
	m.ownEvents = -1
	m.pipelineLost = int64(d.counter("kernel_enobufs") + d.counter("dropped_records") +
		d.counter("dropped_events") + d.counter("serial_gaps_lost"))
	m.warns = d.warns
	if d.final == nil {
		err = errors.Join(err, errors.New("encwatch logged no final counters"))
	}
	return m, err
}

// newStorm sets up one storm of p. Its run id, from the process id and the
// clock, keeps its markers apart from any earlier run's.
func newStorm(p point, o options, dir string) *storm {
	workload := p.workload
	if workload == "" {
		workload = "static"
	}
	return &storm{
		spawner:  o.spawner,
		workload: workload,
		rate:     p.rate,
		workers:  p.workers(),
		duration: p.duration,
		every:    o.every,
		runID:    fmt.Sprintf("%d%09d", os.Getpid()%100000, time.Now().UnixNano()%1e9),
		dir:      dir,
	}
}
