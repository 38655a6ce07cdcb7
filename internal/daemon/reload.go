package daemon

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
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

// watchConfig reloads the policy on SIGHUP and whenever a file in the
// policy's directory or its conf.d changes. It watches the directories, not
// the files: editors and configuration managers replace a file by renaming
// a new one over it, and a Kubernetes ConfigMap swaps a ..data symlink, and
// a watch on the old file would see neither.
func (d *daemon) watchConfig(ctx context.Context, w *fsnotify.Watcher) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	path := d.cfg.Load().Path
	dir := filepath.Dir(path)
	confd := filepath.Join(dir, "conf.d")
	if w != nil {
		defer w.Close()
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
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
		case <-hup:
			d.log.Info("SIGHUP: reloading policy")
			d.reload(ctx, "sighup")
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
			d.reload(ctx, "file change")
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

// reload loads the policy again, runs its tests, and swaps it in. A policy
// that fails leaves the running one in place: the failure is logged with its
// diagnostics, counted and raised as a policy_reload_failed alert.
func (d *daemon) reload(ctx context.Context, trigger string) {
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
		d.m.reloads.WithLabelValues("failed").Inc()
		log.WithError(err).Error("policy reload failed; keeping the running policy")
		d.raise(d.syntheticAlert(sigReloadFailed, "A changed policy was rejected; the previous policy stays in force",
			detect.Medium, []detect.Match{{Field: "policy.error", Value: truncate(err.Error(), 2048), Reason: "the new policy did not load or its tests failed"}},
			[]string{"Fix the policy (encwatch validate shows the problems) or revert the change", "Check who changed the policy files"}))
		return
	}
	if cfg.Audit.Mode != old.Audit.Mode && d.opts.Mode == "" {
		log.WithFields(logrus.Fields{"running": d.mode, "policy": cfg.Audit.Mode}).Warn("audit mode change takes effect on restart")
	}
	d.p.engine.Swap(cfg.Policy)
	d.cfg.Store(cfg)
	if err := d.reloadSinks(ctx, old, cfg); err != nil {
		log.WithError(err).Error("sinks not rebuilt; keeping the running sinks")
	}
	if _, ok := d.in.(reconfigurer); ok && !reflect.DeepEqual(old.Audit, cfg.Audit) {
		select {
		case d.kernelChanges <- cfg.Audit:
		default:
			// A change not yet applied: replace it with this newer one.
			select {
			case <-d.kernelChanges:
			default:
			}
			d.kernelChanges <- cfg.Audit
		}
	}
	if old.Metrics != cfg.Metrics {
		log.Warn("metrics address change takes effect on restart")
	}
	d.m.reloads.WithLabelValues("ok").Inc()
	for _, problem := range cfg.EncoderProblems {
		log.WithField("problem", problem).Warn("encoder binary not identified")
	}
	log.WithFields(logrus.Fields{
		"signatures": len(cfg.Policy.Signatures()),
		"tests":      len(cfg.Tests),
		"sinks":      len(cfg.Sinks),
		"took":       time.Since(start).Seconds(),
	}).Info("policy reloaded")
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

// reloadSinks leaves the running router alone when the sink blocks did not
// change; otherwise it builds the new sinks and hands a router for them to
// the detection stage, which switches to it and closes the old one: the old
// router delivers what it had queued before closing its sinks.
func (d *daemon) reloadSinks(ctx context.Context, old, cfg *config.Config) error {
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
