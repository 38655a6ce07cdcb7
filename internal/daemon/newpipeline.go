package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/input"
	"github.com/encwatch/encwatch/internal/proc"
	"github.com/encwatch/encwatch/internal/sink"
)

// pipelineOptions are everything a pipeline is built from; newPipeline sets
// every field of the pipeline from them and nobody changes one afterwards.
type pipelineOptions struct {
	// Config supplies the policy, the host name and the assembler's
	// limits.
	Config *config.Config
	Log    *logrus.Entry
	// Router is where alerts go; a reload may swap it (swapRouter).
	Router *sink.Router

	// Live says the events are this machine's, as they happen: ancestry
	// comes from /proc, executed files are hashed, alerts are enriched with
	// users and containers, and an event whose closing record never comes
	// completes on a wall-clock timer. Otherwise (replayed logs, from
	// another time or host) nothing is looked up on this machine and
	// events complete on the stream alone.
	Live bool
	// Lossy says a full stage drops and counts rather than waits: the
	// kernel's reader must never wait on a later stage. Inputs that queue
	// for us (audisp, replay) are not lossy.
	Lossy bool

	// DropOnCancel drops the record batches queued for the assembler once
	// the context ends (an interrupted replay).
	DropOnCancel bool
	// Wrap, if set, wraps the input's stream (the heartbeat's
	// agent_stopped at its end).
	Wrap func(input.Stream) input.Stream
	// Latency observes, per alert, the time from the event's kernel
	// timestamp to its delivery to the router; nil observes nothing.
	Latency prometheus.Observer
	// ProcRoot is the proc filesystem a live pipeline reads processes and
	// executed files through: "/proc" unless a test says otherwise.
	ProcRoot string
}

// newPipeline builds reader → assembler → detection → enrichment → router
// from o.
func newPipeline(o pipelineOptions) *pipeline {
	cfg := o.Config
	root := o.ProcRoot
	if root == "" {
		root = "/proc"
	}
	procs := proc.New(proc.Options{Root: root, Offline: !o.Live})
	engine := detect.NewEngine(cfg.Policy, cfg.Settings.Hostname, time.Now)
	engine.SetProcesses(procs)
	files := proc.NewIdentifier(proc.IdentifierOptions{Root: root, Offline: !o.Live,
		Ancestors: func(pid int) []int { return procs.KnownAncestors(pid, 8) }})
	engine.SetFiles(files)
	if o.Live {
		// Pipe evidence for sequences: the live processes' descriptors.
		engine.SetDescriptors(proc.NewDescriptors(root))
	}
	if !o.Live {
		// A replay reports every new command: no real-time flood to cap.
		engine.Uncap()
	}
	logEncoderProblems(cfg, o.Log)
	acfg := assemblerConfig(cfg, o.Live)
	latency := o.Latency
	if latency == nil {
		latency = prometheus.ObserverFunc(func(float64) {})
	}
	p := &pipeline{
		log:        o.Log,
		stream:     input.StreamOptions{Assembler: acfg, Live: o.Live, Lossy: o.Lossy, DropOnCancel: o.DropOnCancel, Now: time.Now},
		wrap:       o.Wrap,
		engine:     engine,
		procs:      procs,
		enrichment: newEnrichment(o.Live),
		files:      files,
		now:        time.Now,
		swaps:      make(chan *sink.Router),
		synth:      make(chan detect.Alert, synthQueue),
		detectDone: make(chan struct{}),
		latency:    latency,
		expire:     o.Live,
	}
	p.router.Store(o.Router)
	return p
}

// logEncoderProblems warns of the listed encoder binaries the policy could
// not identify on this machine.
func logEncoderProblems(cfg *config.Config, log *logrus.Entry) {
	for _, problem := range cfg.EncoderProblems {
		log.WithField("problem", problem).Warn("encoder binary not identified")
	}
}

// newRouter returns the router for sinks. The daemon's never waits on a sink
// (block false): a dead one must not stall detection. Replay's does, so
// that its output is complete.
func newRouter(log *logrus.Entry, sinks []sink.Sink, block bool) *sink.Router {
	opts := sink.RouterOptions{}
	if block {
		opts = sink.RouterOptions{Block: true, DrainTimeout: time.Minute}
	}
	return sink.NewRouter(log.WithField("stage", "sink"), sinks, opts)
}

func assemblerConfig(cfg *config.Config, live bool) audit.AssemblerConfig {
	mode := audit.ModeReplay
	if live {
		mode = audit.ModeLive
	}
	return audit.AssemblerConfig{
		Mode:        mode,
		MaxInFlight: cfg.Audit.MaxInFlight,
		Timeout:     cfg.Audit.EventTimeout,
	}
}

func closeSinks(sinks []sink.Sink, log *logrus.Entry) {
	for _, s := range sinks {
		if err := s.Close(); err != nil {
			log.WithField("sink", s.Name()).WithError(err).Warn("close sink")
		}
	}
}
