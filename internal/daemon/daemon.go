package daemon

import (
	"context"
	"io"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/proc"
	"github.com/encwatch/encwatch/internal/sink"
)

// Replay reads auditd log files ("-" is stdin) through the same pipeline as
// Run and writes the alerts as JSON lines to out. It needs no privileges.
func Replay(ctx context.Context, cfg *config.Config, log *logrus.Entry, files []string, out io.Writer) error {
	sinks := []sink.Sink{sink.NewStdout("replay", out, nil)}
	// Forensic output must be complete: detection waits for the writer.
	p := newPipeline(cfg, log, newRouter(log, sinks, true), fromLog)
	p.asm = audit.NewAssembler(assemblerConfig(cfg, false))
	return p.run(ctx, replayInput{files: files, log: log}.Run)
}

// source kinds for newPipeline.
const (
	// fromKernel: this machine's live stream, where a full stage drops and
	// counts rather than stall the kernel reader.
	fromKernel = iota
	// fromAudisp: this machine's events through auditd's dispatcher, which
	// queues for us: stages wait rather than drop.
	fromAudisp
	// fromLog: replayed logs, from another time or host: nothing is looked
	// up on this machine (no /proc ancestry, no file hashes).
	fromLog
)

// newPipeline wires detection to router for a source of the given kind.
// The caller adds the assembler, whose configuration depends on the source.
func newPipeline(cfg *config.Config, log *logrus.Entry, router *sink.Router, kind int) *pipeline {
	procs := proc.New(proc.Options{Offline: kind == fromLog})
	engine := detect.NewEngine(cfg.Policy, cfg.Settings.Hostname, time.Now)
	engine.SetProcesses(procs)
	files := proc.NewIdentifier(proc.IdentifierOptions{Offline: kind == fromLog})
	engine.SetFiles(files)
	for _, problem := range cfg.EncoderProblems {
		log.WithField("problem", problem).Warn("encoder binary not identified")
	}
	p := &pipeline{
		log:        log,
		engine:     engine,
		procs:      procs,
		files:      files,
		now:        time.Now,
		swaps:      make(chan *sink.Router),
		synth:      make(chan detect.Alert, synthQueue),
		detectDone: make(chan struct{}),
		lossy:      kind == fromKernel,
		recordGate: recordGate{max: maxQueuedRecordBytes},
		expire:     kind == fromKernel,
	}
	p.router.Store(router)
	return p
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
