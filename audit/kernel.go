package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/rule"
	"github.com/elastic/go-libaudit/v2/rule/flags"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Defaults of KernelConfig.
const (
	DefaultRuleKey       = "encwatch"
	DefaultBacklogLimit  = 8192
	DefaultGatherWindow  = 20 * time.Millisecond
	DefaultReceiveBuffer = 8 << 20
)

// Kernel failure modes (audit_failure, kernel/audit.c: AUDIT_FAIL_*).
const (
	failSilent = 0 // AUDIT_FAIL_SILENT
	failPrintk = 1 // AUDIT_FAIL_PRINTK
	failPanic  = 2 // AUDIT_FAIL_PANIC
)

var failureModes = map[string]uint32{"silent": failSilent, "printk": failPrintk, "panic": failPanic}

// KernelConfig is how encwatch sets up the kernel side of audit. The zero
// value of a numeric field means its default; see DefaultKernelConfig.
type KernelConfig struct {
	// Enabled switches kernel auditing on (enabled=1) for as long as the
	// Kernel is open. False leaves the enabled flag as found.
	Enabled bool
	// BacklogLimit is how many records the kernel queues for the reader
	// before it waits (BacklogWaitTime) and then drops, counting them as lost.
	BacklogLimit uint32
	// BacklogWaitTime is how long, in jiffies, an audited process waits for
	// room in a full backlog before its record is dropped; 0 drops at once
	// (no stall, more loss). Nil leaves it as found.
	BacklogWaitTime *uint32
	// RateLimit caps records per second (0: unlimited).
	RateLimit uint32
	// Failure is what the kernel does when it loses a record: "silent",
	// "printk" or "panic"; "" leaves it as found.
	Failure string
	// RuleKey tags the execve rules (-k) so they can be told apart from
	// anyone else's.
	RuleKey string
	// GatherWindow is how long the reader lets records accumulate after the
	// first one before draining them all; it bounds the added latency.
	GatherWindow time.Duration
	// ReceiveBuffer is the data socket's receive buffer in bytes.
	ReceiveBuffer int
}

// DefaultKernelConfig returns the settings encwatch uses when the policy says
// nothing.
func DefaultKernelConfig() KernelConfig {
	return KernelConfig{
		Enabled:       true,
		BacklogLimit:  DefaultBacklogLimit,
		RuleKey:       DefaultRuleKey,
		GatherWindow:  DefaultGatherWindow,
		ReceiveBuffer: DefaultReceiveBuffer,
	}
}

func (c KernelConfig) withDefaults() (KernelConfig, error) {
	if c.BacklogLimit == 0 {
		c.BacklogLimit = DefaultBacklogLimit
	}
	if c.RuleKey == "" {
		c.RuleKey = DefaultRuleKey
	}
	if c.GatherWindow <= 0 {
		c.GatherWindow = DefaultGatherWindow
	}
	if c.ReceiveBuffer <= 0 {
		c.ReceiveBuffer = DefaultReceiveBuffer
	}
	if err := checkKey(c.RuleKey); err != nil {
		return c, err
	}
	if _, ok := failureModes[c.Failure]; c.Failure != "" && !ok {
		return c, fmt.Errorf("audit: failure mode %q: want silent, printk or panic", c.Failure)
	}
	return c, nil
}

// maxKeyLen is AUDIT_MAX_KEY_LEN, include/uapi/linux/audit.h.
const maxKeyLen = 256

// checkKey accepts rule keys that survive auditctl-style quoting unchanged.
func checkKey(key string) error {
	if len(key) > maxKeyLen {
		return fmt.Errorf("audit: rule key is %d bytes, the kernel allows %d", len(key), maxKeyLen)
	}
	for _, c := range key {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("audit: rule key %q: use letters, digits, '-', '_' and '.' only", key)
		}
	}
	return nil
}

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

// FailureMode names Failure the way KernelConfig.Failure spells it.
func (s Status) FailureMode() string {
	for name, v := range failureModes {
		if v == s.Failure {
			return name
		}
	}
	return fmt.Sprintf("unknown(%d)", s.Failure)
}

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

// PIDTakenError is returned by OpenKernel when another live process is
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

// Control is a read-only view of the kernel's audit state: it neither
// registers as the audit daemon nor changes anything. Its methods are not
// safe for concurrent use.
type Control struct {
	sock *socket
}

// OpenControl opens a control socket for Status and Rules.
func OpenControl() (*Control, error) {
	s, err := openSocket()
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

// execRule is one rule encwatch wants in the kernel.
type execRule struct {
	text  string // as ToCommandLine prints it, for comparison with the kernel's list
	wire  rule.WireFormat
	added bool // we added it, so Close removes it
}

// Kernel is encwatch registered as the kernel's audit daemon: it owns the
// data socket the kernel sends records to, a control socket, and the execve
// rules it installed. Run reads records; Status, Rules, VerifyRules and
// InstallRules may be called while Run runs but not concurrently with each
// other; Close is called once, after Run has returned.
type Kernel struct {
	cfg  KernelConfig
	log  *logrus.Entry
	ctrl *Control
	data *socket

	found   Status                   // the status before OpenKernel changed anything
	changed libaudit.AuditStatusMask // settings OpenKernel changed, restored by Close
	rules   []execRule

	// pending holds records that arrived on the data socket before the
	// kernel acknowledged the pid registration; Run delivers them first.
	pending []Record

	// multicast is true for a reader of the readlog group (OpenMulticast):
	// it never registers, never changes settings, and installs rules only
	// when asked.
	multicast bool

	records, batches, enobufs, dropped atomic.Uint64
}

// newKernel opens the control socket and reads the status found, the start
// that owner and multicast readers share.
func newKernel(cfg KernelConfig, log *logrus.Entry, multicast bool) (*Kernel, error) {
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	k := &Kernel{cfg: cfg, log: log, multicast: multicast}
	var err error
	if k.rules, err = buildRules(cfg.RuleKey); err != nil {
		return nil, err
	}
	if k.ctrl, err = OpenControl(); err != nil {
		return nil, err
	}
	if k.found, err = k.ctrl.Status(); err != nil {
		k.ctrl.Close()
		return nil, err
	}
	return k, nil
}

// OpenKernel registers this process as the kernel's audit daemon, applies
// cfg's settings and installs the execve rules for 64- and 32-bit syscalls.
// On failure it undoes whatever it had done. log receives setup details.
func OpenKernel(cfg KernelConfig, log *logrus.Entry) (*Kernel, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	k, err := newKernel(cfg, log, false)
	if err != nil {
		return nil, err
	}
	if k.found.Enabled == 2 {
		k.ctrl.Close()
		return nil, errors.New("audit: the kernel audit configuration is locked (enabled=2) until reboot; " +
			"encwatch cannot install its rules")
	}
	if err := k.open(); err != nil {
		if cerr := k.Close(); cerr != nil {
			return nil, errors.Join(err, cerr)
		}
		return nil, err
	}
	k.log.WithFields(logrus.Fields{
		"found_enabled":       k.found.Enabled,
		"found_backlog_limit": k.found.BacklogLimit,
		"found_failure":       k.found.FailureMode(),
		"rule_key":            cfg.RuleKey,
	}).Info("registered as kernel audit daemon")
	return k, nil
}

func (k *Kernel) open() error {
	var err error
	if k.data, err = openSocket(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := k.data.setReceiveBuffer(k.cfg.ReceiveBuffer); err != nil {
		return fmt.Errorf("audit: data socket: %w", err)
	}
	// The kernel sends records to the netlink port of the socket that set
	// the pid, so the data socket registers itself (kernel/audit.c,
	// auditd_set). The kernel refuses with EEXIST while another live
	// process, or this one, is registered.
	keep := func(r Record) { k.pending = append(k.pending, r) }
	err = k.data.setStatus(libaudit.AuditStatus{Mask: libaudit.AuditStatusPID, PID: uint32(os.Getpid())}, keep)
	if errors.Is(err, unix.EEXIST) {
		return k.pidTaken()
	}
	if err != nil {
		return fmt.Errorf("audit: register pid: %w", err)
	}
	k.changed |= libaudit.AuditStatusPID
	if err := k.applySettings(k.found); err != nil {
		return err
	}
	return k.InstallRules()
}

// pidTaken builds the error for a refused registration.
func (k *Kernel) pidTaken() error {
	st, err := k.ctrl.Status()
	if err != nil {
		return fmt.Errorf("audit: register pid: %w", unix.EEXIST)
	}
	if st.PID == os.Getpid() {
		return errors.New("audit: this process is already registered as the kernel audit daemon (another Kernel is open)")
	}
	return &PIDTakenError{PID: st.PID, Comm: processComm(st.PID)}
}

// applySettings sets what cfg asks for and differs from have (the status
// found at open, or the current one on Reconfigure), remembering each change
// for Close.
func (k *Kernel) applySettings(have Status) error {
	type setting struct {
		mask       libaudit.AuditStatusMask
		name       string
		want, have uint32
		apply      bool
	}
	var waitTime uint32
	if k.cfg.BacklogWaitTime != nil {
		waitTime = *k.cfg.BacklogWaitTime
	}
	settings := []setting{
		{libaudit.AuditStatusBacklogLimit, "backlog_limit", k.cfg.BacklogLimit, have.BacklogLimit, true},
		{libaudit.AuditStatusBacklogWaitTime, "backlog_wait_time", waitTime, have.BacklogWaitTime, k.cfg.BacklogWaitTime != nil},
		{libaudit.AuditStatusRateLimit, "rate_limit", k.cfg.RateLimit, have.RateLimit, true},
		{libaudit.AuditStatusFailure, "failure", failureModes[k.cfg.Failure], have.Failure, k.cfg.Failure != ""},
		// Enabled last: the kernel then already has its backlog tuned.
		{libaudit.AuditStatusEnabled, "enabled", 1, have.Enabled, k.cfg.Enabled},
	}
	for _, s := range settings {
		if !s.apply || s.want == s.have {
			continue
		}
		if err := k.set(s.mask, s.want); err != nil {
			return fmt.Errorf("audit: set %s to %d: %w", s.name, s.want, err)
		}
		k.changed |= s.mask
		k.log.WithFields(logrus.Fields{"setting": s.name, "from": s.have, "to": s.want}).Debug("changed kernel audit setting")
	}
	if !k.cfg.Enabled && have.Enabled == 0 {
		k.log.Warn("kernel audit is disabled and the configuration leaves it so; no records will arrive")
	}
	return nil
}

// set sets one audit_status field through the control socket.
func (k *Kernel) set(mask libaudit.AuditStatusMask, v uint32) error {
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
	return k.ctrl.sock.setStatus(st, nil)
}

// buildRules builds the execve/execveat rules for both syscall ABIs.
func buildRules(key string) ([]execRule, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var out []execRule
	for _, arch := range []string{"b64", "b32"} {
		r, err := flags.Parse(fmt.Sprintf("-a always,exit -F arch=%s -S execve,execveat -k %s", arch, key))
		if err != nil {
			return nil, fmt.Errorf("audit: rule key %q: %w", key, err)
		}
		wire, err := rule.Build(r)
		if err != nil {
			return nil, fmt.Errorf("audit: build %s rule: %w", arch, err)
		}
		text, err := rule.ToCommandLine(wire, false)
		if err != nil {
			return nil, fmt.Errorf("audit: decode %s rule: %w", arch, err)
		}
		out = append(out, execRule{text: text, wire: wire})
	}
	return out, nil
}

// Status returns the kernel's audit status.
func (k *Kernel) Status() (Status, error) { return k.ctrl.Status() }

// Found returns the status OpenKernel found before it changed anything.
func (k *Kernel) Found() Status { return k.found }

// Rules returns every audit rule in the kernel as auditctl would print it.
func (k *Kernel) Rules() ([]string, error) { return k.ctrl.Rules() }

// OwnRules returns encwatch's rules as auditctl would print them, whether or
// not they are in the kernel now.
func (k *Kernel) OwnRules() []string {
	out := make([]string, len(k.rules))
	for i, r := range k.rules {
		out[i] = r.text
	}
	return out
}

// VerifyRules reports how many of encwatch's rules are missing from the
// kernel (deleted by someone else, for instance).
func (k *Kernel) VerifyRules() (missing int, err error) {
	have, err := k.Rules()
	if err != nil {
		return 0, err
	}
	for _, r := range k.rules {
		if !slices.Contains(have, r.text) {
			missing++
		}
	}
	return missing, nil
}

// InstallRules adds whichever of encwatch's rules the kernel lacks. A rule
// the kernel already has (EEXIST: someone installed the identical rule) is
// left to its owner and not removed by Close.
func (k *Kernel) InstallRules() error {
	for i := range k.rules {
		r := &k.rules[i]
		err := k.ctrl.sock.request(msgAddRule, r.wire, nil)
		switch {
		case err == nil:
			r.added = true
			k.log.WithField("rule", r.text).Debug("added audit rule")
		case errors.Is(err, unix.EEXIST):
			k.log.WithField("rule", r.text).Debug("audit rule already present")
		default:
			return fmt.Errorf("audit: add rule %q: %w", r.text, err)
		}
	}
	return nil
}

// Close removes the rules OpenKernel added, unregisters the audit pid,
// restores every setting it changed and closes the sockets. It is called
// once, after Run has returned.
func (k *Kernel) Close() error {
	var errs []error
	if err := k.removeRules(); err != nil {
		errs = append(errs, err)
	}
	if k.changed&libaudit.AuditStatusPID != 0 {
		// Only the registered process may unregister (EACCES otherwise);
		// if the kernel has already dropped us there is nothing to undo.
		if st, err := k.ctrl.Status(); err == nil && st.PID == os.Getpid() {
			if err := k.set(libaudit.AuditStatusPID, 0); err != nil {
				errs = append(errs, fmt.Errorf("audit: unregister pid: %w", err))
			}
		}
	}
	restore := []struct {
		mask libaudit.AuditStatusMask
		name string
		v    uint32
	}{
		{libaudit.AuditStatusEnabled, "enabled", k.found.Enabled},
		{libaudit.AuditStatusFailure, "failure", k.found.Failure},
		{libaudit.AuditStatusRateLimit, "rate_limit", k.found.RateLimit},
		{libaudit.AuditStatusBacklogWaitTime, "backlog_wait_time", k.found.BacklogWaitTime},
		{libaudit.AuditStatusBacklogLimit, "backlog_limit", k.found.BacklogLimit},
	}
	for _, s := range restore {
		if k.changed&s.mask == 0 {
			continue
		}
		if err := k.set(s.mask, s.v); err != nil {
			errs = append(errs, fmt.Errorf("audit: restore %s to %d: %w", s.name, s.v, err))
		}
	}
	k.changed = 0
	if k.data != nil {
		errs = append(errs, k.data.Close())
	}
	errs = append(errs, k.ctrl.Close())
	return errors.Join(errs...)
}

// Multicast reports whether k reads the readlog multicast group rather than
// owning the unicast stream.
func (k *Kernel) Multicast() bool { return k.multicast }

// RuleKey returns the key of encwatch's rules.
func (k *Kernel) RuleKey() string { return k.cfg.RuleKey }

// Enable sets the kernel's audit enabled flag back to 1, for when someone
// switched auditing off. Close restores the flag as OpenKernel found it.
func (k *Kernel) Enable() error {
	if k.multicast {
		return errors.New("audit: a multicast reader does not change kernel settings")
	}
	if err := k.set(libaudit.AuditStatusEnabled, 1); err != nil {
		return fmt.Errorf("audit: set enabled to 1: %w", err)
	}
	k.changed |= libaudit.AuditStatusEnabled
	return nil
}

// Register registers this process as the kernel's audit daemon again, for
// when the registration was lost. The request goes out on the data socket
// (the kernel sends records to the port that registered) without asking for
// an acknowledgement, so that it does not compete with Run for the socket's
// replies; the caller checks Status to see whether it took.
func (k *Kernel) Register() error {
	if k.multicast {
		return errors.New("audit: a multicast reader does not register as the audit daemon")
	}
	_, err := k.data.Send(syscall.NetlinkMessage{
		Header: syscall.NlMsghdr{Type: msgSet, Flags: unix.NLM_F_REQUEST},
		Data:   statusWire(libaudit.AuditStatus{Mask: libaudit.AuditStatusPID, PID: uint32(os.Getpid())}),
	})
	if err != nil {
		return fmt.Errorf("audit: register pid: %w", err)
	}
	k.changed |= libaudit.AuditStatusPID
	return nil
}

// Reconfigure applies the kernel settings and rule key of cfg while Run
// runs: settings that differ from the kernel's current status are set (and
// restored by Close), and when the key changed, the rules under the old key
// that k added are removed and the new ones installed. GatherWindow and
// ReceiveBuffer take effect only on the next open. A multicast reader
// changes no settings and touches rules only if it installs them.
func (k *Kernel) Reconfigure(cfg KernelConfig, installRules bool) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	cfg.GatherWindow, cfg.ReceiveBuffer = k.cfg.GatherWindow, k.cfg.ReceiveBuffer
	oldKey := k.cfg.RuleKey
	k.cfg = cfg
	if !k.multicast {
		have, err := k.Status()
		if err != nil {
			return err
		}
		if err := k.applySettings(have); err != nil {
			return err
		}
	}
	if cfg.RuleKey == oldKey && !(k.multicast && !installRules) {
		return k.InstallRules()
	}
	rules, err := buildRules(cfg.RuleKey)
	if err != nil {
		return err
	}
	if err := k.removeRules(); err != nil {
		return err
	}
	k.rules = rules
	if k.multicast && !installRules {
		return nil
	}
	return k.InstallRules()
}

// removeRules deletes the rules k added.
func (k *Kernel) removeRules() error {
	var errs []error
	for i := range k.rules {
		r := &k.rules[i]
		if !r.added {
			continue
		}
		// ENOENT: someone else already deleted it.
		if err := k.ctrl.sock.request(msgDelRule, r.wire, nil); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("audit: delete rule %q: %w", r.text, err))
			continue
		}
		r.added = false
	}
	return errors.Join(errs...)
}
