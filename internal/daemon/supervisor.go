package daemon

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/input"
)

// Synthetic signatures.
const (
	sigTamper       = "audit_tamper"
	sigLoss         = "audit_loss"
	sigReloadFailed = "policy_reload_failed"
)

// kernelView is what the supervisor remembers between checks, to tell what
// changed.
type kernelView struct {
	// tampered is what the last check found changed and could not repair
	// ("disabled,pid"); a state that persists is alerted on once, not at
	// every check.
	tampered         string
	lost             uint32 // the kernel's lost counter
	enobufs, dropped uint64 // the reader's counters
	droppedEvents    uint64 // the pipeline's
}

// supervisor is the only goroutine that talks to the kernel once the daemon
// runs: it checks the audit status and encwatch's rules every
// tamper_interval and whenever a CONFIG_CHANGE record says something moved,
// repairs what it can, raises audit_tamper and audit_loss alerts, and runs
// the kernel calls of other goroutines (a reload's new audit block) handed
// to it through daemon.kernelCalls.
type supervisor struct {
	d        *daemon
	k        input.KernelWatcher
	view     kernelView
	interval time.Duration
	ticker   *time.Ticker
}

// kernelCall is work for the supervisor: fn runs in its goroutine and its
// error comes back on done.
type kernelCall struct {
	fn   func(*supervisor) error
	done chan error
}

func newSupervisor(d *daemon, k input.KernelWatcher, interval time.Duration) *supervisor {
	if interval <= 0 {
		interval = config.DefaultTamperInterval
	}
	return &supervisor{d: d, k: k, view: kernelView{lost: k.Found().Lost}, interval: interval}
}

// run checks the kernel until ctx ends.
func (s *supervisor) run(ctx context.Context) error {
	s.check("start")
	s.ticker = time.NewTicker(s.interval)
	defer s.ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.ticker.C:
			s.check("timer")
		case what := <-s.d.configChanges:
			s.check("config_change " + what)
		case c := <-s.d.kernelCalls:
			c.done <- c.fn(s)
		}
	}
}

// onKernel runs fn in the supervisor's goroutine and returns its error, or
// ctx's if ctx ends before the supervisor takes it (it starts once the
// canary is through). Only a daemon whose input is an input.KernelWatcher has a
// supervisor.
func (d *daemon) onKernel(ctx context.Context, fn func(*supervisor) error) error {
	c := kernelCall{fn: fn, done: make(chan error, 1)}
	select {
	case d.kernelCalls <- c:
		return <-c.done
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reconfigure applies a reloaded audit block to the kernel through the
// input, takes on its tamper interval and checks the kernel at once.
func (s *supervisor) reconfigure(r input.Reconfigurer, a config.Audit) error {
	err := r.Reconfigure(a.Settings)
	if err == nil {
		s.d.log.WithFields(logrus.Fields{"rule_key": a.RuleKey, "backlog_limit": a.BacklogLimit}).Info("audit settings applied")
	}
	if a.TamperInterval > 0 && a.TamperInterval != s.interval {
		s.interval = a.TamperInterval
		s.ticker.Reset(s.interval)
	}
	s.check("reload")
	return err
}

// check runs daemon.check with the supervisor's view of the kernel.
func (s *supervisor) check(trigger string) { s.d.check(s.k, &s.view, trigger) }

// findings is what one check found changed (tamper), repaired and
// matched, for the audit_tamper alert.
type findings struct {
	tamper, repairs []string
	matches         []detect.Match
}

func (f *findings) add(tamper string, m detect.Match) {
	f.tamper = append(f.tamper, tamper)
	f.matches = append(f.matches, m)
}

// check compares the kernel with what encwatch needs, repairs what the input
// may repair, and raises alerts for what changed. Rules are checked only for
// an input that keeps them; the pid and settings are repaired only by one
// that owns them.
func (d *daemon) check(k input.KernelWatcher, v *kernelView, trigger string) {
	log := d.log.WithField("trigger", trigger)
	st, err := k.Status()
	if err != nil {
		d.setKernelHealth("kernel audit status unavailable: " + err.Error())
		log.WithError(err).Error("check kernel audit status")
		return
	}
	d.m.observeStatus(st)
	var f findings
	rules, ownRules := d.in.(input.RuleKeeper)
	ownRules = ownRules && rules.RulesInstalled()
	if ownRules {
		d.checkRules(rules, &f, log)
	}
	owner, owns := d.in.(input.SettingsOwner)
	if st.Enabled == 0 {
		f.add("disabled", detect.Match{Field: "audit.enabled", Value: "0",
			Reason: "kernel auditing was switched off: no records are produced"})
		if owns && d.cfg.Load().Audit.Enabled {
			if err := owner.Enable(); err != nil {
				log.WithError(err).Error("re-enable kernel audit")
			} else {
				f.repairs = append(f.repairs, "audit re-enabled")
			}
		}
	}
	if owns && st.PID != os.Getpid() {
		d.checkPID(owner, st.PID, &f, log)
	}
	news := d.reportTamper(v, &f)
	d.checkLoss(v, st)

	// Health after repair.
	if len(f.repairs) > 0 {
		if st2, err := k.Status(); err == nil {
			st = st2
		}
	}
	switch {
	case st.Enabled == 0:
		d.setKernelHealth("kernel audit is disabled")
	case owns && st.PID != os.Getpid():
		d.setKernelHealth(fmt.Sprintf("audit pid is %d, not encwatch", st.PID))
	case ownRules && contains(f.tamper, "rules") && !contains(f.repairs, "rules re-installed"):
		d.setKernelHealth("encwatch's audit rules are missing")
	default:
		d.setKernelHealth("")
	}
	if len(f.tamper) > 0 && news {
		log.WithFields(logrus.Fields{"changed": f.tamper, "repaired": f.repairs}).Warn("kernel audit tampering detected")
	} else if len(f.tamper) > 0 {
		log.WithField("changed", f.tamper).Debug("kernel audit still tampered with")
	}
}

// checkRules re-installs encwatch's rules if any went missing.
func (d *daemon) checkRules(k input.RuleKeeper, f *findings, log *logrus.Entry) {
	missing, err := k.VerifyRules()
	switch {
	case err != nil:
		log.WithError(err).Error("verify audit rules")
	case missing > 0:
		f.add("rules", detect.Match{Field: "audit.rules", Value: fmt.Sprintf("%d of %d rules with key %q missing", missing, len(k.OwnRules()), k.RuleKey()),
			Reason: "encwatch's execve rules were deleted: execs go unseen"})
		if err := k.InstallRules(); err != nil {
			log.WithError(err).Error("re-install audit rules")
		} else {
			f.repairs = append(f.repairs, "rules re-installed")
		}
	}
}

// checkPID reports that pid, not encwatch, holds the audit pid, and takes
// it back when nobody does.
func (d *daemon) checkPID(k input.SettingsOwner, pid int, f *findings, log *logrus.Entry) {
	who := fmt.Sprint(pid)
	if comm := input.ProcessComm(pid); comm != "" {
		who += " (" + comm + ")"
	}
	f.add("pid", detect.Match{Field: "audit.pid", Value: who,
		Reason: "encwatch is no longer the registered audit daemon: records go elsewhere or nowhere"})
	if pid == 0 {
		if err := k.Register(); err != nil {
			log.WithError(err).Error("re-register as audit daemon")
		} else {
			f.repairs = append(f.repairs, "re-registered as audit daemon")
		}
	}
}

// reportTamper raises audit_tamper for what is news and reports whether it
// was: every repair is news; an unrepaired change is news once, until it
// changes again (auditd holding the pid, audit off in multicast mode).
func (d *daemon) reportTamper(v *kernelView, f *findings) bool {
	state := strings.Join(f.tamper, ",")
	news := len(f.repairs) > 0 || state != v.tampered
	if len(f.repairs) > 0 {
		state = ""
	}
	v.tampered = state
	if len(f.matches) == 0 || !news {
		return news
	}
	matches := f.matches
	for _, r := range f.repairs {
		matches = append(matches, detect.Match{Field: "encwatch.repair", Value: r, Reason: "encwatch restored what it needs"})
	}
	d.m.tamper.Add(1)
	d.raise(d.syntheticAlert(sigTamper, "The kernel audit configuration encwatch relies on was changed",
		detect.Critical, matches, []string{
			"Find who changed the audit configuration (auid/ses in the CONFIG_CHANGE records, auditctl in the shell history)",
			"Treat the host as possibly compromised: audit tampering usually precedes activity meant to go unseen",
		}))
	return news
}

// checkLoss raises audit_loss for the rise of the kernel's lost counter, the
// socket's overflows and the pipeline's own drops since the last check.
func (d *daemon) checkLoss(v *kernelView, st input.Status) {
	var loss []detect.Match
	if delta := st.Lost - v.lost; delta > 0 && delta < 1<<31 { // wrap-safe: uint32 arithmetic
		loss = append(loss, detect.Match{Field: "loss.kernel", Value: fmt.Sprint(delta), Reason: "the kernel dropped records (backlog full or rate limit)"})
		d.m.kernelLost.Add(uint64(delta))
	}
	v.lost = st.Lost
	var ks input.ReaderStats
	if rs, ok := d.in.(input.Stats); ok {
		ks = rs.Stats()
	}
	if ks.ENOBUFS > v.enobufs {
		loss = append(loss, detect.Match{Field: "loss.socket", Value: fmt.Sprint(ks.ENOBUFS - v.enobufs), Reason: "the netlink socket overflowed (ENOBUFS)"})
	}
	if ks.DroppedRecords > v.dropped {
		loss = append(loss, detect.Match{Field: "loss.pipeline_records", Value: fmt.Sprint(ks.DroppedRecords - v.dropped), Reason: "records dropped: the assembler was behind"})
	}
	if de := d.p.DroppedEvents.Load(); de > v.droppedEvents {
		loss = append(loss, detect.Match{Field: "loss.pipeline_events", Value: fmt.Sprint(de - v.droppedEvents), Reason: "events dropped: detection was behind"})
		v.droppedEvents = de
	}
	v.enobufs, v.dropped = ks.ENOBUFS, ks.DroppedRecords
	if len(loss) > 0 {
		d.raise(d.syntheticAlert(sigLoss, "Audit records were lost before encwatch could examine them",
			detect.High, loss, []string{
				"Raise audit.backlog_limit or the receive buffer; check the host's load",
				"Loss can be provoked on purpose to hide an exec: look at what ran around this time",
			}))
	}
}

func (d *daemon) setKernelHealth(reason string) {
	d.kernelHealth.Store(&reason)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
