package netlink

import (
	"errors"
	"fmt"
	"io"
	"os"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/audit"
)

// OwnerConfig is how the Owner sets up the kernel side of audit: the
// policy's settings, every one of them but InstallRules (the Owner always
// installs its rules). A zero field takes its audit.Default* value (Enabled
// excepted); every field is checked by the audit package's validators, as
// the policy is.
type OwnerConfig struct {
	audit.Settings
}

// withDefaults fills in zero fields and checks every field with the audit
// package's validators, the ones the policy is checked with.
func (c OwnerConfig) withDefaults() (OwnerConfig, error) {
	s, err := c.Settings.WithDefaults()
	return OwnerConfig{s}, err
}

// Owner is encwatch registered as the kernel's audit daemon: it owns the
// data socket the kernel sends records to (unicast), a control socket, the
// kernel settings it changed and the execve rules it installed. Run reads
// records; Status, Rules, VerifyRules, InstallRules, Enable, Register and
// Reconfigure may be called while Run runs but not concurrently with each
// other; Close is called once, after Run has returned.
type Owner struct {
	reader
	*ruleSet
	cfg  OwnerConfig
	log  *logrus.Entry
	ctrl *Control

	found   Status                   // the status before OpenOwner changed anything
	changed libaudit.AuditStatusMask // settings the Owner changed, restored by Close
}

// openControl opens the control socket and reads the status found: the
// start that Owner and Multicast share.
func openControl(key string, log *logrus.Entry, exclude ...string) (*Control, *ruleSet, Status, error) {
	ctrl, err := OpenControl()
	if err != nil {
		return nil, nil, Status{}, err
	}
	rules, err := newRuleSet(ctrl, log, key, exclude...)
	if err != nil {
		ctrl.Close()
		return nil, nil, Status{}, err
	}
	found, err := ctrl.Status()
	if err != nil {
		ctrl.Close()
		return nil, nil, Status{}, err
	}
	return ctrl, rules, found, nil
}

// discard is the logger of a caller that passes none.
func discard(log *logrus.Entry) *logrus.Entry {
	if log != nil {
		return log
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// errLocked is returned when the kernel's audit configuration cannot change.
var errLocked = errors.New("audit: the kernel audit configuration is locked (enabled=2) until reboot; " +
	"encwatch cannot install its rules")

// OpenOwner registers this process as the kernel's audit daemon, applies
// cfg's settings and installs the execve rules for 64- and 32-bit syscalls.
// On failure it undoes whatever it had done. log receives setup details.
func OpenOwner(cfg OwnerConfig, log *logrus.Entry) (*Owner, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log = discard(log)
	ctrl, rules, found, err := openControl(cfg.RuleKey, log, cfg.ExcludeRecords...)
	if err != nil {
		return nil, err
	}
	if found.Enabled == 2 {
		ctrl.Close()
		return nil, errLocked
	}
	o := &Owner{reader: reader{gather: cfg.GatherWindow}, ruleSet: rules, cfg: cfg, log: log, ctrl: ctrl, found: found}
	if err := o.open(); err != nil {
		if cerr := o.Close(); cerr != nil {
			return nil, errors.Join(err, cerr)
		}
		return nil, err
	}
	o.log.WithFields(logrus.Fields{
		"found_enabled":       found.Enabled,
		"found_backlog_limit": found.BacklogLimit,
		"found_failure":       found.FailureMode(),
		"rule_key":            cfg.RuleKey,
	}).Info("registered as kernel audit daemon")
	return o, nil
}

func (o *Owner) open() error {
	var err error
	if o.data, err = openSocket(0); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := o.data.setReceiveBuffer(o.cfg.ReceiveBuffer); err != nil {
		return fmt.Errorf("audit: data socket: %w", err)
	}
	// The kernel sends records to the netlink port of the socket that set
	// the pid, so the data socket registers itself (kernel/audit.c,
	// auditd_set). The kernel refuses with EEXIST while another live
	// process, or this one, is registered.
	keep := func(r audit.Record) { o.pending = append(o.pending, r) }
	err = o.data.setStatus(libaudit.AuditStatus{Mask: libaudit.AuditStatusPID, PID: uint32(os.Getpid())}, keep)
	if errors.Is(err, unix.EEXIST) {
		return o.pidTaken()
	}
	if err != nil {
		return fmt.Errorf("audit: register pid: %w", err)
	}
	o.changed |= libaudit.AuditStatusPID
	if err := o.applySettings(o.found); err != nil {
		return err
	}
	return o.InstallRules()
}

// pidTaken builds the error for a refused registration.
func (o *Owner) pidTaken() error {
	st, err := o.ctrl.Status()
	if err != nil {
		return fmt.Errorf("audit: register pid: %w", unix.EEXIST)
	}
	if st.PID == os.Getpid() {
		return errors.New("audit: this process is already registered as the kernel audit daemon (another Owner is open)")
	}
	return &PIDTakenError{PID: st.PID, Comm: ProcessComm(st.PID)}
}

// applySettings sets what cfg asks for and differs from have (the status
// found at open, or the current one on Reconfigure), remembering each change
// for Close.
func (o *Owner) applySettings(have Status) error {
	type setting struct {
		mask       libaudit.AuditStatusMask
		name       string
		want, have uint32
		apply      bool
	}
	var waitTime uint32
	if o.cfg.BacklogWaitTime != nil {
		waitTime = *o.cfg.BacklogWaitTime
	}
	failure, _ := audit.ParseFailure(o.cfg.Failure) // checked by withDefaults
	settings := []setting{
		{libaudit.AuditStatusBacklogLimit, "backlog_limit", o.cfg.BacklogLimit, have.BacklogLimit, true},
		{libaudit.AuditStatusBacklogWaitTime, "backlog_wait_time", waitTime, have.BacklogWaitTime, o.cfg.BacklogWaitTime != nil},
		{libaudit.AuditStatusRateLimit, "rate_limit", o.cfg.RateLimit, have.RateLimit, true},
		{libaudit.AuditStatusFailure, "failure", failure, have.Failure, o.cfg.Failure != ""},
		// Enabled last: the kernel then already has its backlog tuned.
		{libaudit.AuditStatusEnabled, "enabled", 1, have.Enabled, o.cfg.Enabled},
	}
	for _, s := range settings {
		if !s.apply || s.want == s.have {
			continue
		}
		if err := o.ctrl.set(s.mask, s.want); err != nil {
			return fmt.Errorf("audit: set %s to %d: %w", s.name, s.want, err)
		}
		o.changed |= s.mask
		o.log.WithFields(logrus.Fields{"setting": s.name, "from": s.have, "to": s.want}).Debug("changed kernel audit setting")
	}
	if !o.cfg.Enabled && have.Enabled == 0 {
		o.log.Warn("kernel audit is disabled and the configuration leaves it so; no records will arrive")
	}
	return nil
}

// Status returns the kernel's audit status.
func (o *Owner) Status() (Status, error) { return o.ctrl.Status() }

// Found returns the status OpenOwner found before it changed anything.
func (o *Owner) Found() Status { return o.found }

// Rules returns every audit rule in the kernel as auditctl would print it.
func (o *Owner) Rules() ([]string, error) { return o.ctrl.Rules() }

// RulesInstalled reports whether the Owner keeps its rules in the kernel:
// always.
func (o *Owner) RulesInstalled() bool { return true }

// Enable sets the kernel's audit enabled flag back to 1, for when someone
// switched auditing off. Close restores the flag as OpenOwner found it.
func (o *Owner) Enable() error {
	if err := o.ctrl.set(libaudit.AuditStatusEnabled, 1); err != nil {
		return fmt.Errorf("audit: set enabled to 1: %w", err)
	}
	o.changed |= libaudit.AuditStatusEnabled
	return nil
}

// Register registers this process as the kernel's audit daemon again, for
// when the registration was lost. The request goes out on the data socket
// (the kernel sends records to the port that registered) without asking for
// an acknowledgement, so that it does not compete with Run for the socket's
// replies; the caller checks Status to see whether it took.
func (o *Owner) Register() error {
	st := libaudit.AuditStatus{Mask: libaudit.AuditStatusPID, PID: uint32(os.Getpid())}
	if _, err := o.data.send(audit.MsgSet, unix.NLM_F_REQUEST, statusWire(st)); err != nil {
		return fmt.Errorf("audit: register pid: %w", err)
	}
	o.changed |= libaudit.AuditStatusPID
	return nil
}

// Reconfigure applies the kernel settings and rule key of cfg while Run
// runs: settings that differ from the kernel's current status are set (and
// restored by Close), and when the key changed, the rules under the old key
// that the Owner added are removed and the new ones installed. GatherWindow
// and ReceiveBuffer take effect only on the next open.
func (o *Owner) Reconfigure(cfg OwnerConfig) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	cfg.GatherWindow, cfg.ReceiveBuffer = o.cfg.GatherWindow, o.cfg.ReceiveBuffer
	o.cfg = cfg
	have, err := o.Status()
	if err != nil {
		return err
	}
	if err := o.applySettings(have); err != nil {
		return err
	}
	if err := o.rekey(cfg.RuleKey, cfg.ExcludeRecords...); err != nil {
		return err
	}
	return o.InstallRules()
}

// Close removes the rules the Owner added, unregisters the audit pid,
// restores every setting it changed and closes the sockets. It is called
// once, after Run has returned.
func (o *Owner) Close() error {
	var errs []error
	if err := o.removeRules(); err != nil {
		errs = append(errs, err)
	}
	if o.changed&libaudit.AuditStatusPID != 0 {
		// Only the registered process may unregister (EACCES otherwise);
		// if the kernel has already dropped us there is nothing to undo.
		if st, err := o.ctrl.Status(); err == nil && st.PID == os.Getpid() {
			if err := o.ctrl.set(libaudit.AuditStatusPID, 0); err != nil {
				errs = append(errs, fmt.Errorf("audit: unregister pid: %w", err))
			}
		}
	}
	restore := []struct {
		mask libaudit.AuditStatusMask
		name string
		v    uint32
	}{
		{libaudit.AuditStatusEnabled, "enabled", o.found.Enabled},
		{libaudit.AuditStatusFailure, "failure", o.found.Failure},
		{libaudit.AuditStatusRateLimit, "rate_limit", o.found.RateLimit},
		{libaudit.AuditStatusBacklogWaitTime, "backlog_wait_time", o.found.BacklogWaitTime},
		{libaudit.AuditStatusBacklogLimit, "backlog_limit", o.found.BacklogLimit},
	}
	for _, s := range restore {
		if o.changed&s.mask == 0 {
			continue
		}
		if err := o.ctrl.set(s.mask, s.v); err != nil {
			errs = append(errs, fmt.Errorf("audit: restore %s to %d: %w", s.name, s.v, err))
		}
	}
	o.changed = 0
	if o.data != nil {
		errs = append(errs, o.data.Close())
	}
	errs = append(errs, o.ctrl.Close())
	return errors.Join(errs...)
}
