package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/proc"
	"github.com/encwatch/encwatch/internal/sink"
)

// Run owns the kernel audit socket until ctx ends: it registers as the audit
// daemon, installs the execve rules, runs the pipeline into the configured
// sinks, and on the way out removes its rules and restores the kernel state
// it found.
func Run(ctx context.Context, cfg *config.Config, log *logrus.Entry) error {
	sinks, err := buildSinks(cfg, log)
	if err != nil {
		return err
	}
	k, err := audit.OpenKernel(kernelConfig(cfg), log.WithField("stage", "kernel"))
	if err != nil {
		closeSinks(sinks, log)
		return err
	}
	p := newPipeline(cfg, log, sinks, true)
	log.WithFields(logrus.Fields{
		"config":      cfg.Path,
		"environment": cfg.Settings.Environment,
		"signatures":  len(cfg.Policy.Signatures()),
		"sinks":       len(sinks),
		"rule_key":    cfg.Audit.RuleKey,
	}).Info("encwatch running")

	err = p.run(ctx, k.Run)
	ks := k.Stats()
	log.WithFields(logrus.Fields{
		"records":          ks.Records,
		"kernel_enobufs":   ks.ENOBUFS,
		"dropped_records":  ks.DroppedRecords,
		"dropped_events":   p.droppedEvents.Load(),
		"events":           p.events.Load(),
		"alerts":           p.alerts.Load(),
		"serial_gaps_lost": p.asm.Stats().Lost,
	}).Info("encwatch stopping")
	if cerr := k.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("restore kernel audit state: %w", cerr))
	}
	return err
}

// Replay reads auditd log files ("-" is stdin) through the same pipeline as
// Run and writes the alerts as JSON lines to out. It needs no privileges.
func Replay(ctx context.Context, cfg *config.Config, log *logrus.Entry, files []string, out io.Writer) error {
	sinks := []sink.Sink{sink.NewStdout("replay", out, nil)}
	p := newPipeline(cfg, log, sinks, false)
	src := func(ctx context.Context, recs chan<- []audit.Record) error {
		for _, name := range files {
			if err := replayFile(ctx, name, recs, log); err != nil {
				return err
			}
		}
		return nil
	}
	return p.run(ctx, src)
}

func replayFile(ctx context.Context, name string, out chan<- []audit.Record, log *logrus.Entry) error {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		r = f
	}
	onErr := func(line int, err error) {
		log.WithFields(logrus.Fields{"file": name, "line": line}).WithError(err).Warn("skipping malformed audit record")
	}
	if err := audit.ReadLog(ctx, r, out, onErr); err != nil {
		return fmt.Errorf("replay %s: %w", name, err)
	}
	return nil
}

func newPipeline(cfg *config.Config, log *logrus.Entry, sinks []sink.Sink, live bool) *pipeline {
	procs := proc.New(proc.Options{})
	engine := detect.NewEngine(cfg.Policy, cfg.Settings.Hostname, time.Now)
	engine.SetProcesses(procs)
	engine.SetFiles(proc.NewHasher())
	for _, problem := range cfg.EncoderProblems {
		log.WithField("problem", problem).Warn("encoder binary not identified")
	}
	return &pipeline{
		log:    log,
		asm:    audit.NewAssembler(assemblerConfig(cfg, live)),
		engine: engine,
		procs:  procs,
		router: sink.NewRouter(log.WithField("stage", "sink"), sinks, routerOptions(live)),
		now:    time.Now,
		lossy:  live,
		expire: live,
	}
}

// routerOptions: the live stream never waits on a sink; replay output must be
// complete, so detection waits for the writer there.
func routerOptions(live bool) sink.RouterOptions {
	if live {
		return sink.RouterOptions{}
	}
	return sink.RouterOptions{Block: true, DrainTimeout: time.Minute}
}

func kernelConfig(cfg *config.Config) audit.KernelConfig {
	a := cfg.Audit
	return audit.KernelConfig{
		Enabled:         a.Enabled,
		BacklogLimit:    a.BacklogLimit,
		BacklogWaitTime: a.BacklogWaitTime,
		RateLimit:       a.RateLimit,
		Failure:         a.Failure,
		RuleKey:         a.RuleKey,
		GatherWindow:    a.GatherWindow,
	}
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
