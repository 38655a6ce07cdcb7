package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/input"
)

// newWatcher watches the policy's directory and its conf.d, or returns nil
// (reload then takes SIGHUP) when it cannot. It is set up before the daemon
// starts so that no change after start is missed.
func (d *daemon) newWatcher() *fsnotify.Watcher {
	path := d.cfg.Load().Path
	dir := filepath.Dir(path)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.log.WithError(err).Warn("cannot watch the policy files; reload with SIGHUP")
		return nil
	}
	if err := w.Add(dir); err != nil {
		d.log.WithError(err).WithField("dir", dir).Warn("cannot watch the policy directory; reload with SIGHUP")
	}
	// conf.d may not exist; if it appears later, the event on dir adds it.
	_ = w.Add(filepath.Join(dir, "conf.d"))
	return w
}

// reloadDebounce is how long the watcher waits after the last change to the
// policy files before reloading: an editor's save or a configuration
// manager's run touches several files in quick succession.
const reloadDebounce = 250 * time.Millisecond

// watchConfig reloads the policy on every value of opts.Reload (SIGHUP) and
// whenever a file in the policy's directory or its conf.d changes. It
// watches the directories, not the files: editors and configuration
// managers replace a file by renaming a new one over it, and a Kubernetes
// ConfigMap swaps a ..data symlink, and a watch on the old file would see
// neither.
func (d *daemon) watchConfig(ctx context.Context, w *fsnotify.Watcher, rs []reloader) error {
	path := d.cfg.Load().Path
	dir := filepath.Dir(path)
	confd := filepath.Join(dir, "conf.d")
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	debounce := d.opts.debounce
	if debounce <= 0 {
		debounce = reloadDebounce
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.opts.Reload:
			d.log.Info("SIGHUP: reloading policy")
			d.reload(ctx, "sighup", rs)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !relevant(ev, dir, confd) {
				continue
			}
			if ev.Name == confd && ev.Has(fsnotify.Create) {
				_ = w.Add(confd)
			}
			timer.Reset(debounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			d.log.WithError(err).Warn("policy file watch error")
		case <-timer.C:
			d.reload(ctx, "file change", rs)
		}
	}
}

// relevant reports whether ev can change the policy: anything in conf.d,
// and in the policy's directory anything but files the daemon or a test
// writes there that are not policy (alert files and the like): *.hcl, the
// conf.d directory, and Kubernetes' ..data and ..timestamp entries.
func relevant(ev fsnotify.Event, dir, confd string) bool {
	if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
		return false // atime and the like
	}
	switch filepath.Dir(ev.Name) {
	case confd:
		return true
	case dir:
		base := filepath.Base(ev.Name)
		return filepath.Ext(base) == ".hcl" || base == "conf.d" || base == "..data" || len(base) > 2 && base[:2] == ".."
	}
	return false
}

// reloader applies a reloaded policy to one part of the running daemon, the
// way Prometheus's reloaders do: apply brings its part from old to new (it
// decides itself whether anything changed for it) and says why it could
// not. name says which part in logs and errors.
type reloader struct {
	name  string
	apply func(old, new *config.Config) error
}

// reloaders are the parts of the daemon a reload applies a new policy to,
// in order. Adding a part that follows the policy is adding an entry here
// (docs/development.md). ctx bounds the hand-offs to the stages
// that own the state.
func (d *daemon) reloaders(ctx context.Context) []reloader {
	rs := []reloader{
		{name: "detection", apply: d.reloadDetection},
		{name: "sinks", apply: func(old, cfg *config.Config) error { return d.reloadSinks(ctx, old, cfg) }},
	}
	if r, ok := d.in.(input.Reconfigurer); ok {
		rs = append(rs, d.auditReloader(ctx, r))
	}
	return append(rs, reloader{name: "restart_only", apply: d.reloadRestartOnly})
}

// applyReloaders runs every reloader, in order, and returns their failures
// joined, each named by its reloader. Like Prometheus it goes on after a
// failure: a sink that cannot be built does not hold back the new
// signatures.
func applyReloaders(rs []reloader, old, cfg *config.Config, log *logrus.Entry) error {
	var errs []error
	took := logrus.Fields{}
	for _, r := range rs {
		start := time.Now()
		if err := r.apply(old, cfg); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
		}
		took[r.name] = time.Since(start).Seconds()
	}
	log.WithFields(took).Debug("reloaders took")
	return errors.Join(errs...)
}

// reload loads the policy again, runs its tests and applies it through rs.
// A policy that fails to load leaves the running one in place; a reloader
// that fails leaves its own part as far as it got, while the others apply
// the new policy. Either way the reload counts as failed, is logged with
// the reason and raised as a policy_reload_failed alert.
func (d *daemon) reload(ctx context.Context, trigger string, rs []reloader) {
	start := time.Now()
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
		d.notify.reloading(time.Duration(ts.Nano()))
	}
	defer d.notify.send("READY=1")
	old := d.cfg.Load()
	log := d.log.WithFields(logrus.Fields{"config": old.Path, "trigger": trigger})
	cfg, err := d.loadPolicy(old.Path)
	if err != nil {
		log.WithError(err).Error("policy reload failed; keeping the running policy")
		d.reloadFailed(err, "A changed policy was rejected; the previous policy stays in force",
			"the new policy did not load or its tests failed")
		return
	}
	d.cfg.Store(cfg)
	if err := applyReloaders(rs, old, cfg, log); err != nil {
		if ctx.Err() != nil {
			return // shutting down: what was not applied no longer matters
		}
		log.WithError(err).Error("policy reload failed; the parts named in the error keep the previous policy")
		d.reloadFailed(err, "A changed policy was only partly applied; the parts named in policy.error keep the previous policy",
			"a part of the running daemon refused the new policy")
		return
	}
	d.m.reloads.WithLabelValues("ok").Inc()
	log.WithFields(logrus.Fields{
		"signatures": len(cfg.Policy.Signatures()),
		"tests":      len(cfg.Tests),
		"sinks":      len(cfg.Sinks),
		"took":       time.Since(start).Seconds(),
	}).Info("policy reloaded")
}

// reloadFailed counts a failed reload and raises policy_reload_failed.
func (d *daemon) reloadFailed(err error, description, reason string) {
	d.m.reloads.WithLabelValues("failed").Inc()
	d.raise(d.syntheticAlert(sigReloadFailed, description, detect.Medium,
		[]detect.Match{{Field: "policy.error", Value: truncate(err.Error(), 2048), Reason: reason}},
		[]string{"Fix the policy (encwatch validate shows the problems) or revert the change", "Check who changed the policy files"}))
}

// loadPolicy loads and tests the policy at path as the daemon requires.
func (d *daemon) loadPolicy(path string) (*config.Config, error) {
	cfg, err := config.Load(path, config.LoadOptions{RequireRootOwned: true})
	if err != nil {
		return nil, err
	}
	if err := config.TestsError(cfg.RunTests()); err != nil {
		return nil, fmt.Errorf("policy tests: %w", err)
	}
	return cfg, nil
}

// reloadDetection swaps the new signatures into the detection engine.
func (d *daemon) reloadDetection(_, cfg *config.Config) error {
	d.p.engine.Swap(cfg.Policy)
	logEncoderProblems(cfg, d.log)
	return nil
}

// reloadSinks leaves the running router alone when the sink blocks did not
// change; otherwise it builds the new sinks and hands a router for them to
// the detection stage, which switches to it and closes the old one: the old
// router delivers what it had queued before closing its sinks.
func (d *daemon) reloadSinks(ctx context.Context, old, cfg *config.Config) error {
	// A sink block decodes into the sink package's own description
	// (nested TLS options, header maps), which grows with every sink
	// type; it is compared whole so that no field is ever missed.
	// Rebuilding unchanged sinks is not harmless: it reconnects and hands
	// the spool from one router to the next.
	if reflect.DeepEqual(sinkSpecs(old), sinkSpecs(cfg)) {
		return nil
	}
	sinks, err := buildSinks(cfg, d.log, d.opts.Version)
	if err != nil {
		return err
	}
	d.p.swapRouter(context.WithoutCancel(ctx), newRouter(d.log, sinks, false))
	d.log.WithField("sinks", len(sinks)).Info("sinks rebuilt")
	return nil
}

// auditReloader applies a changed audit block to the kernel through the
// supervisor. A block the kernel refused is applied again at the next
// reload even if unchanged, so that a reload counts as ok only once the
// kernel has taken the policy's block.
func (d *daemon) auditReloader(ctx context.Context, r input.Reconfigurer) reloader {
	refused := false // reloads run one at a time, in watchConfig
	return reloader{name: "audit", apply: func(old, cfg *config.Config) error {
		if sameAudit(old.Audit, cfg.Audit) && !refused {
			return nil
		}
		err := d.onKernel(ctx, func(s *supervisor) error { return s.reconfigure(r, cfg.Audit) })
		refused = err != nil
		return err
	}}
}

// sameAudit reports whether two audit blocks say the same.
func sameAudit(a, b config.Audit) bool {
	sa, sb := a.Settings, b.Settings
	a.Settings, b.Settings = audit.Settings{}, audit.Settings{}
	return reflect.DeepEqual(a, b) && sa.Equal(sb)
}

// reloadRestartOnly warns of the changes that only a restart applies.
func (d *daemon) reloadRestartOnly(old, cfg *config.Config) error {
	if cfg.Audit.Mode != old.Audit.Mode && d.opts.Mode == "" {
		d.log.WithFields(logrus.Fields{"running": d.mode, "policy": cfg.Audit.Mode}).Warn("audit mode change takes effect on restart")
	}
	if old.Metrics != cfg.Metrics {
		d.log.Warn("metrics address change takes effect on restart")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
