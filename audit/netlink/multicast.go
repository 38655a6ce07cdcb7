package netlink

import (
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
)

// MulticastConfig is how a multicast reader sets up: of the policy's
// settings it uses RuleKey, InstallRules (install encwatch's execve rules,
// removed again by Close; without it the reader relies on rules someone
// else, auditd's audit.rules, loads, and changes nothing in the kernel),
// GatherWindow and ReceiveBuffer. It never changes a kernel setting.
type MulticastConfig struct {
	audit.Settings
}

// withDefaults is OwnerConfig.withDefaults for the fields a reader has.
func (c MulticastConfig) withDefaults() (MulticastConfig, error) {
	s, err := audit.Settings{RuleKey: c.RuleKey, GatherWindow: c.GatherWindow, ReceiveBuffer: c.ReceiveBuffer}.WithDefaults()
	c.RuleKey, c.GatherWindow, c.ReceiveBuffer = s.RuleKey, s.GatherWindow, s.ReceiveBuffer
	return c, err
}

// Multicast is a read-only reader of the kernel's audit records on the
// readlog multicast group, beside a running auditd: it never registers as
// the audit daemon and never changes kernel settings; it installs its rules
// only when asked. Its concurrency contract is the Owner's.
type Multicast struct {
	reader
	*ruleSet
	log     *logrus.Entry
	ctrl    *Control
	found   Status
	install bool
}

// OpenMulticast joins the readlog multicast group and, with
// cfg.InstallRules, installs encwatch's execve rules.
func OpenMulticast(cfg MulticastConfig, log *logrus.Entry) (*Multicast, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log = discard(log)
	ctrl, rules, found, err := openControl(cfg.RuleKey, log)
	if err != nil {
		return nil, err
	}
	m := &Multicast{reader: reader{gather: cfg.GatherWindow}, ruleSet: rules, log: log, ctrl: ctrl, found: found, install: cfg.InstallRules}
	if err := m.open(cfg.ReceiveBuffer); err != nil {
		if cerr := m.Close(); cerr != nil {
			return nil, errors.Join(err, cerr)
		}
		return nil, err
	}
	m.log.WithFields(logrus.Fields{
		"audit_pid":     found.PID,
		"audit_comm":    ProcessComm(found.PID),
		"enabled":       found.Enabled,
		"install_rules": cfg.InstallRules,
		"rule_key":      cfg.RuleKey,
	}).Info("reading the audit multicast group")
	return m, nil
}

func (m *Multicast) open(receiveBuffer int) error {
	var err error
	// It only receives: nothing is ever sent on it.
	if m.data, err = openSocket(nlgrpReadlog); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := m.data.setReceiveBuffer(receiveBuffer); err != nil {
		return fmt.Errorf("audit: multicast socket: %w", err)
	}
	if m.found.Enabled == 0 {
		m.log.Warn("kernel audit is disabled; a multicast reader leaves it so and no records will arrive")
	}
	if !m.install {
		return nil
	}
	if m.found.Enabled == 2 {
		return errLocked
	}
	return m.InstallRules()
}

// Status returns the kernel's audit status.
func (m *Multicast) Status() (Status, error) { return m.ctrl.Status() }

// Found returns the status OpenMulticast found.
func (m *Multicast) Found() Status { return m.found }

// Rules returns every audit rule in the kernel as auditctl would print it.
func (m *Multicast) Rules() ([]string, error) { return m.ctrl.Rules() }

// RulesInstalled reports whether the reader keeps its own rules in the
// kernel (MulticastConfig.InstallRules).
func (m *Multicast) RulesInstalled() bool { return m.install }

// Reconfigure applies the rule key and InstallRules of cfg while Run runs:
// the rules the reader added under the old key, or that it no longer
// installs, are removed, and the wanted ones installed. GatherWindow and
// ReceiveBuffer take effect only on the next open.
func (m *Multicast) Reconfigure(cfg MulticastConfig) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	m.install = cfg.InstallRules
	if err := m.rekey(cfg.RuleKey); err != nil {
		return err
	}
	if !m.install {
		return m.removeRules()
	}
	return m.InstallRules()
}

// Close removes the rules the reader installed and closes its sockets. It
// is called once, after Run has returned.
func (m *Multicast) Close() error {
	errs := []error{m.removeRules()}
	if m.data != nil {
		errs = append(errs, m.data.Close())
	}
	errs = append(errs, m.ctrl.Close())
	return errors.Join(errs...)
}
