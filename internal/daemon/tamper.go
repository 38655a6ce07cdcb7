package daemon

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
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

// supervise is the only goroutine that talks to the kernel once the daemon
// runs: it checks the audit status and encwatch's rules every
// tamper_interval and whenever a CONFIG_CHANGE record says something moved,
// repairs what it can, raises audit_tamper and audit_loss alerts, and
// applies reloaded audit settings.
func (d *daemon) supervise(ctx context.Context, found audit.Status) error {
	v := kernelView{lost: found.Lost}
	d.check(&v, "start")
	interval := d.cfg.Load().Audit.TamperInterval
	if interval <= 0 {
		interval = config.DefaultTamperInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			d.check(&v, "timer")
		case what := <-d.configChanges:
			d.check(&v, "config_change "+what)
		case a := <-d.kernelChanges:
			d.reconfigure(a)
			if a.TamperInterval > 0 && a.TamperInterval != interval {
				interval = a.TamperInterval
				t.Reset(interval)
			}
			d.check(&v, "reload")
		}
	}
}

// reconfigure applies a reloaded audit block to the kernel.
func (d *daemon) reconfigure(a config.Audit) {
	cfg := *d.cfg.Load()
	cfg.Audit = a
	err := d.k.Reconfigure(kernelConfig(&cfg), a.InstallRules)
	if err != nil {
		d.log.WithError(err).Error("apply reloaded audit settings")
		return
	}
	d.log.WithFields(logrus.Fields{"rule_key": a.RuleKey, "backlog_limit": a.BacklogLimit}).Info("audit settings applied")
}

// check compares the kernel with what encwatch needs, repairs it, and
// raises alerts for what changed.
func (d *daemon) check(v *kernelView, trigger string) {
	log := d.log.WithField("trigger", trigger)
	k := d.k
	st, err := k.Status()
	if err != nil {
		d.setKernelHealth("kernel audit status unavailable: " + err.Error())
		log.WithError(err).Error("check kernel audit status")
		return
	}
	d.m.observeStatus(st)
	cfg := d.cfg.Load()
	ownRules := !k.Multicast() || cfg.Audit.InstallRules
	var tamper, repairs []string
	var matches []detect.Match

	if ownRules {
		missing, err := k.VerifyRules()
		switch {
		case err != nil:
			log.WithError(err).Error("verify audit rules")
		case missing > 0:
			matches = append(matches, detect.Match{Field: "audit.rules", Value: fmt.Sprintf("%d of %d rules with key %q missing", missing, len(k.OwnRules()), k.RuleKey()),
				Reason: "encwatch's execve rules were deleted: execs go unseen"})
			tamper = append(tamper, "rules")
			if err := k.InstallRules(); err != nil {
				log.WithError(err).Error("re-install audit rules")
			} else {
				repairs = append(repairs, "rules re-installed")
			}
		}
	}
	if st.Enabled == 0 {
		matches = append(matches, detect.Match{Field: "audit.enabled", Value: "0",
			Reason: "kernel auditing was switched off: no records are produced"})
		tamper = append(tamper, "disabled")
		if !k.Multicast() && cfg.Audit.Enabled {
			if err := k.Enable(); err != nil {
				log.WithError(err).Error("re-enable kernel audit")
			} else {
				repairs = append(repairs, "audit re-enabled")
			}
		}
	}
	if !k.Multicast() && st.PID != os.Getpid() {
		who := fmt.Sprint(st.PID)
		if comm := commOf(st.PID); comm != "" {
			who += " (" + comm + ")"
		}
		matches = append(matches, detect.Match{Field: "audit.pid", Value: who,
			Reason: "encwatch is no longer the registered audit daemon: records go elsewhere or nowhere"})
		tamper = append(tamper, "pid")
		if st.PID == 0 {
			if err := k.Register(); err != nil {
				log.WithError(err).Error("re-register as audit daemon")
			} else {
				repairs = append(repairs, "re-registered as audit daemon")
			}
		}
	}
	// Every repair is news; an unrepaired change is news once, until it
	// changes again (auditd holding the pid, audit off in multicast mode).
	state := strings.Join(tamper, ",")
	news := len(repairs) > 0 || state != v.tampered
	if len(repairs) > 0 {
		state = ""
	}
	v.tampered = state
	if len(matches) > 0 && news {
		for _, r := range repairs {
			matches = append(matches, detect.Match{Field: "encwatch.repair", Value: r, Reason: "encwatch restored what it needs"})
		}
		d.m.tamper.Add(1)
		d.raise(d.syntheticAlert(sigTamper, "The kernel audit configuration encwatch relies on was changed",
			detect.Critical, matches, []string{
				"Find who changed the audit configuration (auid/ses in the CONFIG_CHANGE records, auditctl in the shell history)",
				"Treat the host as possibly compromised: audit tampering usually precedes activity meant to go unseen",
			}))
	}

	// Loss: the kernel's counter, the socket's overflows, our own drops.
	var loss []detect.Match
	if delta := st.Lost - v.lost; delta > 0 && delta < 1<<31 { // wrap-safe: uint32 arithmetic
		loss = append(loss, detect.Match{Field: "loss.kernel", Value: fmt.Sprint(delta), Reason: "the kernel dropped records (backlog full or rate limit)"})
		d.m.kernelLost.Add(uint64(delta))
	}
	v.lost = st.Lost
	ks := k.Stats()
	if ks.ENOBUFS > v.enobufs {
		loss = append(loss, detect.Match{Field: "loss.socket", Value: fmt.Sprint(ks.ENOBUFS - v.enobufs), Reason: "the netlink socket overflowed (ENOBUFS)"})
	}
	if ks.DroppedRecords > v.dropped {
		loss = append(loss, detect.Match{Field: "loss.pipeline_records", Value: fmt.Sprint(ks.DroppedRecords - v.dropped), Reason: "records dropped: the assembler was behind"})
	}
	if de := d.p.droppedEvents.Load(); de > v.droppedEvents {
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

	// Health after repair.
	if len(repairs) > 0 {
		if st2, err := k.Status(); err == nil {
			st = st2
		}
	}
	switch {
	case st.Enabled == 0:
		d.setKernelHealth("kernel audit is disabled")
	case !k.Multicast() && st.PID != os.Getpid():
		d.setKernelHealth(fmt.Sprintf("audit pid is %d, not encwatch", st.PID))
	case ownRules && len(tamper) > 0 && !contains(repairs, "rules re-installed") && contains(tamper, "rules"):
		d.setKernelHealth("encwatch's audit rules are missing")
	default:
		d.setKernelHealth("")
	}
	if len(tamper) > 0 && news {
		log.WithFields(logrus.Fields{"changed": tamper, "repaired": repairs}).Warn("kernel audit tampering detected")
	} else if len(tamper) > 0 {
		log.WithField("changed", tamper).Debug("kernel audit still tampered with")
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

// commOf returns the command name of pid, or "".
func commOf(pid int) string {
	if pid <= 0 {
		return ""
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	for len(b) > 0 && (b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return string(b)
}
