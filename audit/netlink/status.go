package netlink

import (
	"fmt"
	"os"
	"strings"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/rule"

	"github.com/encwatch/encwatch/audit"
)

// Status is the kernel's audit status (struct audit_status,
// include/uapi/linux/audit.h).
type Status struct {
	Enabled         uint32 // 0 off, 1 on, 2 locked until reboot
	Failure         uint32 // 0 silent, 1 printk, 2 panic
	PID             int    // the registered audit daemon, 0 if none
	RateLimit       uint32 // records per second, 0 unlimited
	BacklogLimit    uint32
	Backlog         uint32 // records queued now
	Lost            uint32 // records dropped since boot
	BacklogWaitTime uint32 // jiffies
}

// FailureMode names Failure the way the policy spells it.
func (s Status) FailureMode() string { return audit.FailureName(s.Failure) }

func statusFrom(st libaudit.AuditStatus) Status {
	return Status{
		Enabled:         st.Enabled,
		Failure:         st.Failure,
		PID:             int(st.PID),
		RateLimit:       st.RateLimit,
		BacklogLimit:    st.BacklogLimit,
		Backlog:         st.Backlog,
		Lost:            st.Lost,
		BacklogWaitTime: st.BacklogWaitTime,
	}
}

// Control is a read-only view of the kernel's audit state: it neither
// registers as the audit daemon nor changes anything. `encwatch status` uses
// it, and the Owner and Multicast readers keep one for their own requests.
// Its methods are not safe for concurrent use.
type Control struct {
	sock *socket
}

// OpenControl opens a control socket for Status and Rules.
func OpenControl() (*Control, error) {
	s, err := openSocket(0)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return &Control{sock: s}, nil
}

// Status returns the kernel's audit status.
func (c *Control) Status() (Status, error) {
	st, err := c.sock.getStatus()
	if err != nil {
		return Status{}, fmt.Errorf("audit: get status: %w", err)
	}
	return statusFrom(st), nil
}

// Rules returns every audit rule in the kernel as auditctl would print it.
func (c *Control) Rules() ([]string, error) {
	wires, err := c.sock.listRules()
	if err != nil {
		return nil, fmt.Errorf("audit: list rules: %w", err)
	}
	out := make([]string, 0, len(wires))
	for _, w := range wires {
		text, err := rule.ToCommandLine(rule.WireFormat(w), false)
		if err != nil {
			return nil, fmt.Errorf("audit: decode rule: %w", err)
		}
		out = append(out, text)
	}
	return out, nil
}

// Close closes the control socket.
func (c *Control) Close() error {
	return c.sock.Close()
}

// set sets one audit_status field.
func (c *Control) set(mask libaudit.AuditStatusMask, v uint32) error {
	st := libaudit.AuditStatus{Mask: mask}
	switch mask {
	case libaudit.AuditStatusEnabled:
		st.Enabled = v
	case libaudit.AuditStatusFailure:
		st.Failure = v
	case libaudit.AuditStatusPID:
		st.PID = v
	case libaudit.AuditStatusRateLimit:
		st.RateLimit = v
	case libaudit.AuditStatusBacklogLimit:
		st.BacklogLimit = v
	case libaudit.AuditStatusBacklogWaitTime:
		st.BacklogWaitTime = v
	}
	return c.sock.setStatus(st, nil)
}

// PIDTakenError is returned by OpenOwner when another live process is
// registered as the kernel's audit daemon: the kernel delivers records to one
// process only.
type PIDTakenError struct {
	PID  int
	Comm string // from /proc/PID/comm; "" if it could not be read
}

func (e *PIDTakenError) Error() string {
	who := fmt.Sprintf("process %d", e.PID)
	if e.Comm != "" {
		who = fmt.Sprintf("process %d (%s)", e.PID, e.Comm)
	}
	return fmt.Sprintf("audit: the kernel audit stream is already owned by %s, probably auditd; "+
		"the kernel sends records to one audit daemon only, so choose one: "+
		"stop it (systemctl stop auditd; disable it to keep it stopped) to let encwatch own the stream; "+
		`or read beside it with audit { mode = "multicast" } (or run --mode multicast), `+
		"with the execve rules loaded by auditd or install_rules = true; "+
		"or install encwatch as an audisp plugin (/etc/audit/plugins.d/encwatch.conf, "+
		"running encwatch run --mode audisp)", who)
}

// ProcessComm returns the command name of pid from /proc, or "" if it is
// gone: who holds the audit pid, for messages.
func ProcessComm(pid int) string {
	if pid <= 0 {
		return ""
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(b), "\n\x00")
}
