package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/endpoint"
	"github.com/encwatch/encwatch/internal/fleet"
	"github.com/encwatch/encwatch/internal/input"
)

// defaultMaxProcs is GOMAXPROCS unless the GOMAXPROCS environment variable
// sets it: the work is one goroutine from the socket to detection, plus the
// sinks' and the supervisor's, which are mostly asleep. With more Ps than
// runnable goroutines the runtime wakes idle threads to look for work (the
// spinning Ms, the netpoller, sysmon), and on the exec storm that cost more
// CPU than the work did: docs/performance.md has the figures.
const defaultMaxProcs = 1

// sizeRuntime sets GOMAXPROCS to defaultMaxProcs unless the environment
// chose, and returns a function that restores it.
func sizeRuntime(log *logrus.Entry) func() {
	if v := os.Getenv("GOMAXPROCS"); v != "" {
		log.WithField("gomaxprocs", runtime.GOMAXPROCS(0)).Debug("gomaxprocs from the environment")
		return func() {}
	}
	old := runtime.GOMAXPROCS(defaultMaxProcs)
	return func() { runtime.GOMAXPROCS(old) }
}

// synthQueue bounds the alerts raised outside detection that wait for the
// detection stage.
const synthQueue = 64

// Options are how Run is started, beyond the policy.
type Options struct {
	// Mode overrides the policy's audit.mode (one of input.Modes); ""
	// keeps it. It holds across reloads.
	Mode string
	// Stdin is where audisp mode reads auditd's records; nil is os.Stdin.
	Stdin io.Reader
	// Version is the product version the sinks report (CEF and LEEF
	// headers, ECS and OCSF fields, the HTTP User-Agent); "" is "dev".
	Version string
	// Reload asks for a policy reload with every value received: cmd
	// passes the channel it gets SIGHUP on. nil asks for none; the daemon
	// still reloads when the policy files change.
	Reload <-chan os.Signal

	// Test hooks.
	input           input.Input   // instead of opening the input of the mode
	metricsListener net.Listener  // instead of listening on the policy's address
	probeSocket     string        // with metricsListener: the probe socket ("" none)
	debounce        time.Duration // reload debounce; 0 is reloadDebounce
	notify          *notifier     // instead of NOTIFY_SOCKET
	canaryTimeout   time.Duration // 0 is canaryWait
}

// daemon is one Run: the pipeline, the kernel side, the reload watcher, the
// metrics endpoint and the service manager notifications. Its fields are set
// before its goroutines start, apart from the atomics.
type daemon struct {
	log    *logrus.Entry
	opts   Options
	mode   string
	cfg    atomic.Pointer[config.Config]
	p      *pipeline
	in     input.Input
	kind   input.Kind
	m      *metrics
	notify *notifier

	// kernelCalls hands work to the kernel supervisor, the only goroutine
	// that talks to the kernel after start (see onKernel).
	kernelCalls chan kernelCall
	// configChanges tells the supervisor of CONFIG_CHANGE records, for an
	// immediate check (input.ConfigNotices; nil for an input without).
	configChanges <-chan string
	// kernelHealth is why the kernel side is unhealthy; "" when healthy.
	kernelHealth atomic.Pointer[string]
	running      atomic.Bool
	// stages watches every stage for work without progress (health.go).
	stages *stageMonitor
	// metricsEP is the metrics endpoint, bound before start-up goes on.
	metricsEP *endpoint.Endpoint
	// hb sends the agent's heartbeats and its clean stop.
	hb *fleet.Heartbeater
}

// Run reads the input of the policy's mode (or opts.Mode), one of
// input.Modes, until ctx ends or the input does: as the registered audit
// daemon ("owner"), installing the execve rules; beside auditd on the
// readlog multicast group ("multicast"); or as an audisp plugin reading
// stdin ("audisp"). It runs the pipeline into
// the configured sinks, reloads the policy on opts.Reload and on changes to
// its files, watches the kernel side for tampering, serves /metrics and
// /healthz, and on the way out removes its rules and restores the kernel
// state it found. While it runs, GOMAXPROCS is defaultMaxProcs unless the
// GOMAXPROCS environment variable says otherwise.
func Run(ctx context.Context, cfg *config.Config, log *logrus.Entry, opts Options) error {
	d := &daemon{
		log:         log,
		opts:        opts,
		mode:        cfg.Audit.Mode,
		kernelCalls: make(chan kernelCall),
		notify:      opts.notify,
	}
	if opts.Mode != "" {
		d.mode = opts.Mode
	}
	kind, ok := input.Lookup(d.mode)
	if !ok {
		return input.CheckMode(d.mode)
	}
	d.kind = kind
	if d.notify == nil {
		d.notify = notifierFromEnv()
	}
	defer sizeRuntime(log)()
	d.cfg.Store(cfg)
	// The metrics port is bound before anything starts: a port taken by
	// another user fails start-up rather than the running daemon.
	ep, err := d.listenMetrics(cfg.Metrics)
	if err != nil {
		return err
	}
	d.metricsEP = ep
	if err := d.open(cfg); err != nil {
		ep.Close()
		return err
	}
	return d.run(ctx, cfg)
}

// open opens the sinks and the input and builds the pipeline between them.
func (d *daemon) open(cfg *config.Config) error {
	sinks, err := buildSinks(cfg, d.log, d.opts.Version)
	if err != nil {
		return err
	}
	d.in = d.opts.input
	if d.in == nil {
		d.in, err = d.kind.Open(input.Config{Settings: cfg.Audit.Settings, Stdin: d.opts.Stdin, Log: d.log})
		if err != nil {
			closeSinks(sinks, d.log)
			return err
		}
	}
	if cn, ok := d.in.(input.ConfigNotices); ok {
		d.configChanges = cn.ConfigChanges()
	}
	// The metrics read the pipeline only when scraped, after Run has
	// built it.
	d.m = newMetrics(d)
	d.hb = d.newHeartbeater()
	d.p = newPipeline(pipelineOptions{
		Config: cfg,
		Log:    d.log,
		Router: newRouter(d.log, sinks, false),
		// As the mode says: the kernel's inputs read this machine as it
		// runs and drop rather than stall their reader; auditd's
		// dispatcher queues for us.
		Live:    d.kind.Live,
		Lossy:   d.kind.Lossy,
		Wrap:    d.stopStream,
		Latency: d.m.latency,
	})
	d.stages = newStageMonitor(d.stageProbes)
	d.log.WithFields(logrus.Fields{
		"config":      cfg.Path,
		"mode":        d.mode,
		"environment": cfg.Settings.Environment,
		"signatures":  len(cfg.Policy.Signatures()),
		"sinks":       len(sinks),
		"rule_key":    cfg.Audit.RuleKey,
	}).Info("encwatch running")
	return nil
}

// run starts the daemon's goroutines and returns once all have stopped and
// the input is closed.
func (d *daemon) run(ctx context.Context, cfg *config.Config) error {
	// The watch is in place before anything reports the daemon up, so that
	// no change made after that is missed.
	w := d.newWatcher()
	pctx, stopPipeline := context.WithCancel(ctx)
	defer stopPipeline()
	g, gctx := errgroup.WithContext(pctx)
	reloaders := d.reloaders(gctx)
	g.Go(func() error {
		// The pipeline ending (stdin closed in audisp mode) ends the
		// daemon.
		defer stopPipeline()
		d.running.Store(true)
		defer d.running.Store(false)
		return d.p.run(pctx, d.in)
	})
	g.Go(func() error { return d.serveMetrics(gctx) })
	g.Go(func() error { return d.hb.Run(gctx) })
	g.Go(func() error { return d.watchConfig(gctx, w, reloaders) })
	g.Go(func() error {
		d.start(gctx)
		if kw, ok := d.in.(input.KernelWatcher); ok {
			return newSupervisor(d, kw, cfg.Audit.TamperInterval).run(gctx)
		}
		return nil
	})
	g.Go(func() error { return d.stages.run(gctx, d.p.now) })
	g.Go(func() error { return d.notify.watchdog(gctx, d.watchdogOK) })

	err := g.Wait()
	d.notify.send("STOPPING=1")
	d.logStopping()
	if cerr := d.in.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("restore kernel audit state: %w", cerr))
	}
	return err
}

// start proves the path from the kernel to the pipeline with a canary exec
// and tells the service manager the daemon is ready.
func (d *daemon) start(ctx context.Context) {
	if d.canaryApplies() {
		d.runCanary(ctx)
	}
	d.notify.send("READY=1\nSTATUS=watching execs")
}

// canaryApplies reports whether an exec is sure to be audited and read:
// always by an input that owns the kernel settings (its rules are in), by
// another kernel input only when some rule covers execve; never by an input
// that does not read the kernel (audisp, where auditd's rules decide).
func (d *daemon) canaryApplies() bool {
	if _, ok := d.in.(input.SettingsOwner); ok {
		return true
	}
	kw, ok := d.in.(input.KernelWatcher)
	if !ok {
		return false
	}
	rules, err := kw.Rules()
	if err != nil {
		return false
	}
	for _, r := range rules {
		if containsWord(r, "execve") {
			return true
		}
	}
	return false
}

func (d *daemon) logStopping() {
	fields := logrus.Fields{
		"records":          d.p.Records.Load(),
		"dropped_events":   d.p.DroppedEvents.Load(),
		"events":           d.p.Events.Load(),
		"alerts":           d.p.alerts.Load(),
		"serial_gaps_lost": d.p.SerialLost.Load(),
	}
	if rs, ok := d.in.(input.Stats); ok {
		ks := rs.Stats()
		fields["kernel_enobufs"] = ks.ENOBUFS
		fields["dropped_records"] = ks.DroppedRecords
	}
	d.log.WithFields(fields).Info("encwatch stopping")
}

// syntheticAlert is an alert about encwatch itself rather than an event:
// tampering, loss, a rejected reload.
func (d *daemon) syntheticAlert(name, description string, imp detect.Importance, matches []detect.Match, actions []string) detect.Alert {
	cfg := d.cfg.Load()
	now := time.Now()
	host := cfg.Settings.Host()
	return detect.Alert{
		ID:          fmt.Sprintf("%s-%s-%d", name, host, now.UnixNano()),
		Time:        now,
		Host:        host,
		Environment: cfg.Settings.Environment,
		Signature: detect.SignatureInfo{
			Name:        name,
			Description: description,
			Category:    "Defense Evasion",
			Method:      "Impair Defenses",
			Importance:  imp,
			MITRE:       []string{"T1562"},
		},
		Matches: matches,
		Actions: actions,
	}
}

// raise sends a synthetic alert through the router and logs it.
func (d *daemon) raise(a detect.Alert) {
	fields := logrus.Fields{"signature": a.Signature.Name, "importance": a.Signature.Importance.String()}
	for _, m := range a.Matches {
		fields[m.Field] = m.Value
	}
	d.log.WithFields(fields).Warn("raising alert about encwatch itself")
	if !d.p.raise(a) {
		d.log.WithField("signature", a.Signature.Name).Error("could not queue alert about encwatch itself")
	}
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w {
			before := i == 0 || !isWordByte(s[i-1])
			after := i+len(w) == len(s) || !isWordByte(s[i+len(w)])
			if before && after {
				return true
			}
		}
	}
	return false
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
