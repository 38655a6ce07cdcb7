package audit

import (
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// nlgrpReadlog is AUDIT_NLGRP_READLOG, include/uapi/linux/audit.h: the
// netlink multicast group on which the kernel copies every record it sends
// to the audit daemon, whoever that is. Joining it takes CAP_AUDIT_READ.
const nlgrpReadlog = 1

// MulticastConfig is how a multicast reader sets up.
type MulticastConfig struct {
	// RuleKey tags encwatch's execve rules; see KernelConfig.RuleKey.
	RuleKey string
	// InstallRules installs encwatch's execve rules, removed again by
	// Close. Without it the reader relies on rules someone else (auditd's
	// audit.rules) loads, and changes nothing in the kernel.
	InstallRules bool
	// GatherWindow and ReceiveBuffer are as in KernelConfig.
	GatherWindow  time.Duration
	ReceiveBuffer int
}

// OpenMulticast opens a read-only reader of the kernel's audit records on
// the readlog multicast group, beside a running auditd: it never registers
// as the audit daemon and never changes kernel settings. The returned Kernel
// has the same Run, Stats, Status, Rules and VerifyRules as one from
// OpenKernel; its Close removes only the rules it installed.
func OpenMulticast(cfg MulticastConfig, log *logrus.Entry) (*Kernel, error) {
	kc, err := KernelConfig{
		RuleKey:       cfg.RuleKey,
		GatherWindow:  cfg.GatherWindow,
		ReceiveBuffer: cfg.ReceiveBuffer,
	}.withDefaults()
	if err != nil {
		return nil, err
	}
	k, err := newKernel(kc, log, true)
	if err != nil {
		return nil, err
	}
	if err := k.openMulticast(cfg.InstallRules); err != nil {
		if cerr := k.Close(); cerr != nil {
			return nil, errors.Join(err, cerr)
		}
		return nil, err
	}
	k.log.WithFields(logrus.Fields{
		"audit_pid":     k.found.PID,
		"audit_comm":    processComm(k.found.PID),
		"enabled":       k.found.Enabled,
		"install_rules": cfg.InstallRules,
		"rule_key":      kc.RuleKey,
	}).Info("reading the audit multicast group")
	return k, nil
}

func (k *Kernel) openMulticast(install bool) error {
	var err error
	if k.data, err = openMulticastSocket(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := k.data.setReceiveBuffer(k.cfg.ReceiveBuffer); err != nil {
		return fmt.Errorf("audit: multicast socket: %w", err)
	}
	if k.found.Enabled == 0 {
		k.log.Warn("kernel audit is disabled; a multicast reader leaves it so and no records will arrive")
	}
	if !install {
		return nil
	}
	if k.found.Enabled == 2 {
		return errors.New("audit: the kernel audit configuration is locked (enabled=2) until reboot; " +
			"encwatch cannot install its rules")
	}
	return k.InstallRules()
}

// openMulticastSocket opens a NETLINK_AUDIT socket joined to the readlog
// group. It only receives: nothing is ever sent on it.
func openMulticastSocket() (*socket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
			return nil, fmt.Errorf("open netlink audit socket: kernel has no audit support: %w", err)
		}
		return nil, fmt.Errorf("open netlink audit socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (nlgrpReadlog - 1)}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("join audit multicast group: %w (needs CAP_AUDIT_READ)", err)
		}
		return nil, fmt.Errorf("join audit multicast group: %w", err)
	}
	return &socket{fd: fd, buf: make([]byte, maxMessage)}, nil
}
