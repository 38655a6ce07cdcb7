package audit

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
)

// The kernel-facing settings of the policy's audit block are checked here and
// only here: internal/config calls these functions while decoding, and
// audit/netlink calls them again before it touches the kernel, so that
// `encwatch validate` and `encwatch run` cannot disagree. They do no I/O.
// Each error names the setting by its policy attribute.

// Defaults of the kernel-facing settings, used when the policy says nothing.
const (
	DefaultRuleKey       = "encwatch"
	DefaultBacklogLimit  = 8192
	DefaultGatherWindow  = 20 * time.Millisecond
	DefaultReceiveBuffer = 8 << 20
	// The assembler's defaults, DefaultMaxInFlight and DefaultTimeout (the
	// policy's event_timeout), are beside AssemblerConfig.
)

// Kernel failure modes (audit_failure, kernel/audit.c: AUDIT_FAIL_*,
// include/uapi/linux/audit.h).
const (
	FailSilent = 0 // AUDIT_FAIL_SILENT
	FailPrintk = 1 // AUDIT_FAIL_PRINTK
	FailPanic  = 2 // AUDIT_FAIL_PANIC
)

// failureNames is indexed by the AUDIT_FAIL_* value.
var failureNames = [...]string{FailSilent: "silent", FailPrintk: "printk", FailPanic: "panic"}

// FailureModes returns the names the audit block's failure takes, in the
// order of their kernel values.
func FailureModes() []string { return slices.Clone(failureNames[:]) }

// ParseFailure returns the kernel value of a failure mode name ("silent",
// "printk" or "panic").
func ParseFailure(name string) (uint32, error) {
	for v, n := range failureNames {
		if n == name {
			return uint32(v), nil
		}
	}
	return 0, fmt.Errorf("unknown failure mode %q: use silent, printk or panic", name)
}

// FailureName names a kernel failure value the way the policy spells it, or
// "unknown(N)".
func FailureName(v uint32) string {
	if int(v) < len(failureNames) {
		return failureNames[v]
	}
	return fmt.Sprintf("unknown(%d)", v)
}

// maxRuleKeyLen is AUDIT_MAX_KEY_LEN, include/uapi/linux/audit.h.
const maxRuleKeyLen = 256

// CheckRuleKey accepts a rule key that survives auditctl-style quoting and
// comes back unchanged in key="..." fields: 1 to maxRuleKeyLen letters,
// digits, '-', '_' and '.'.
func CheckRuleKey(key string) error {
	if key == "" || len(key) > maxRuleKeyLen {
		return fmt.Errorf("rule_key %.40q is %d bytes: want 1 to %d", key, len(key), maxRuleKeyLen)
	}
	if i := strings.IndexFunc(key, func(c rune) bool {
		return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.')
	}); i >= 0 {
		return fmt.Errorf("rule_key %q: use letters, digits, '-', '_' and '.' only", key)
	}
	return nil
}

// Bounds of the numeric settings.
const (
	// MaxBacklogWaitTime: the kernel takes the wait time (jiffies) as a
	// signed int (audit_backlog_wait_time, kernel/audit.c).
	MaxBacklogWaitTime = math.MaxInt32
	// MaxGatherWindow bounds the latency the reader may add.
	MaxGatherWindow = time.Second
	// MinEventTimeout and MaxEventTimeout bound how long an event waits for
	// its closing record.
	MinEventTimeout = time.Millisecond
	MaxEventTimeout = time.Minute
	// MaxMaxInFlight bounds the events being assembled at once.
	MaxMaxInFlight = 1 << 20
)

// CheckBacklogLimit accepts a backlog_limit the kernel's u32 holds (0 means
// DefaultBacklogLimit).
func CheckBacklogLimit(n int64) error { return inRange("backlog_limit", n, 0, math.MaxUint32) }

// CheckBacklogWaitTime accepts a backlog_wait_time in jiffies.
func CheckBacklogWaitTime(n int64) error {
	return inRange("backlog_wait_time", n, 0, MaxBacklogWaitTime)
}

// CheckRateLimit accepts a rate_limit in records per second (0: unlimited).
func CheckRateLimit(n int64) error { return inRange("rate_limit", n, 0, math.MaxUint32) }

// CheckMaxInFlight accepts a max_in_flight for the assembler.
func CheckMaxInFlight(n int64) error { return inRange("max_in_flight", n, 1, MaxMaxInFlight) }

// CheckGatherWindow accepts a gather_window (0 means DefaultGatherWindow).
func CheckGatherWindow(d time.Duration) error {
	return durationInRange("gather_window", d, 0, MaxGatherWindow)
}

// CheckEventTimeout accepts an event_timeout.
func CheckEventTimeout(d time.Duration) error {
	return durationInRange("event_timeout", d, MinEventTimeout, MaxEventTimeout)
}

func inRange(name string, n, lo, hi int64) error {
	if n < lo || n > hi {
		return fmt.Errorf("%s must be a whole number from %d to %d, got %d", name, lo, hi, n)
	}
	return nil
}

func durationInRange(name string, d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("%s must be from %s to %s, got %s", name, lo, hi, d)
	}
	return nil
}

// ExcludableRecords are the record types exclude_records may name: records
// of an exec event that detection can do without. PROCTITLE is the argv of a
// failed exec (which has no EXECVE record) and the command line of a process
// that rewrote its own; BPRM_FCAPS reports an executable's file
// capabilities. Every other record of an exec event is needed.
func ExcludableRecords() []string { return []string{"PROCTITLE", "BPRM_FCAPS"} }

// CheckExcludeRecords accepts an exclude_records list: names from
// ExcludableRecords, each at most once.
func CheckExcludeRecords(names []string) error {
	allowed := ExcludableRecords()
	for i, n := range names {
		if !slices.Contains(allowed, n) {
			return fmt.Errorf("exclude_records: %q cannot be excluded: use %s", n, strings.Join(allowed, " or "))
		}
		if slices.Contains(names[:i], n) {
			return fmt.Errorf("exclude_records: %q listed twice", n)
		}
	}
	return nil
}

// Settings are the kernel-facing settings of the policy's audit block: the
// one type internal/config decodes them into and audit/netlink opens the
// kernel with (both embed it), so no field is copied by hand on the way.
// Which fields an opener uses is its own: the owner every one but
// InstallRules (it always installs its rules), the multicast reader only
// RuleKey, InstallRules, GatherWindow and ReceiveBuffer.
type Settings struct {
	// Enabled switches kernel auditing on (enabled=1) for as long as the
	// owner is open. False leaves the enabled flag as found.
	Enabled bool
	// InstallRules, for the multicast reader, installs encwatch's execve
	// rules (and removes them on exit); by default it relies on the rules
	// auditd loads. The owner always installs them.
	InstallRules bool
	// BacklogLimit is how many records the kernel queues for the reader
	// before it waits (BacklogWaitTime) and then drops, counting them as
	// lost; 0 is DefaultBacklogLimit.
	BacklogLimit uint32
	// BacklogWaitTime is how long, in kernel ticks (jiffies; 60000 is
	// 60 s at HZ=1000), an audited process waits for room when the backlog
	// is full. nil leaves the kernel value alone. 0 never waits: records
	// are dropped (and counted as lost) instead of stalling the process
	// doing the exec; a larger value loses nothing but can stall every
	// audited process while encwatch is slow.
	BacklogWaitTime *uint32
	// RateLimit caps records per second, 0 for no limit.
	RateLimit uint32
	// Failure is what the kernel does on a lost record: "silent", "printk"
	// or "panic"; "" leaves the kernel value alone.
	Failure string
	// RuleKey tags encwatch's execve rules (-k), the only rules it removes
	// on exit; "" is DefaultRuleKey.
	RuleKey string
	// GatherWindow is how long the reader lets records gather after the
	// first one before draining them in one go: it trades alert latency
	// for fewer wake-ups; 0 is DefaultGatherWindow.
	GatherWindow time.Duration
	// ReceiveBuffer is the data socket's receive buffer in bytes; 0 is
	// DefaultReceiveBuffer. The policy does not set it.
	ReceiveBuffer int
	// ExcludeRecords (owner) are record types (ExcludableRecords) the
	// kernel is told not to emit, with an exclude rule each: fewer records
	// per exec, but kernel-wide, and removed on close. Empty by default.
	ExcludeRecords []string
}

// WithDefaults fills in s's zero fields with the Default* values and checks
// every field with this file's validators, the ones the policy is checked
// with.
func (s Settings) WithDefaults() (Settings, error) {
	if s.BacklogLimit == 0 {
		s.BacklogLimit = DefaultBacklogLimit
	}
	if s.RuleKey == "" {
		s.RuleKey = DefaultRuleKey
	}
	if s.GatherWindow <= 0 {
		s.GatherWindow = DefaultGatherWindow
	}
	if s.ReceiveBuffer <= 0 {
		s.ReceiveBuffer = DefaultReceiveBuffer
	}
	errs := []error{
		CheckRuleKey(s.RuleKey),
		CheckGatherWindow(s.GatherWindow),
		CheckExcludeRecords(s.ExcludeRecords),
	}
	if s.BacklogWaitTime != nil {
		errs = append(errs, CheckBacklogWaitTime(int64(*s.BacklogWaitTime)))
	}
	if s.Failure != "" {
		_, err := ParseFailure(s.Failure)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("audit: %w", err)
	}
	return s, nil
}

// Equal reports whether s and o say the same, comparing BacklogWaitTime
// and ExcludeRecords by value.
func (s Settings) Equal(o Settings) bool {
	sw, ow := s.BacklogWaitTime, o.BacklogWaitTime
	sameWait := sw == nil && ow == nil || sw != nil && ow != nil && *sw == *ow
	sameExclude := slices.Equal(s.ExcludeRecords, o.ExcludeRecords)
	s.BacklogWaitTime, o.BacklogWaitTime = nil, nil
	s.ExcludeRecords, o.ExcludeRecords = nil, nil
	return reflect.DeepEqual(s, o) && sameWait && sameExclude
}
