// Package input holds where encwatch's events come from: the kernel as its
// audit daemon (owner), the kernel's multicast group, auditd's dispatcher
// (audisp) and log files (replay), each in a file of its own, behind one
// exported interface. An input yields *audit.Event values; one that reads
// audit records wraps them with the assembler (Assemble, Feed), so that an
// input that yields events itself (eBPF, a laurel or journald reader) needs
// no record at all. What an input can do beyond yielding events is an
// optional capability, an interface of its own found with a type assertion.
//
// Inputs chosen by the policy's audit.mode register a Kind; the daemon,
// the policy decoder and the command line learn the modes from Modes, so a
// new mode is one new file. This package knows nothing of the policy or
// the sinks.
package input

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/audit/netlink"
)

// Input is where the pipeline's events come from.
type Input interface {
	// Events opens the input's event stream, which the pipeline's
	// detection goroutine reads. It is called once.
	Events(ctx context.Context, o StreamOptions) (Stream, error)
	// Close releases what opening the input took (sockets, kernel
	// settings, rules). It is called once, after the stream has ended.
	Close() error
}

// Stream is an input's events, read by one goroutine (detection): Ready
// fires when events may be read, and closes when the stream has ended,
// after which one more Read takes what is left (unless Err says the stream
// failed), and Flush completes what is still pending.
type Stream interface {
	Ready() <-chan struct{}
	// Read hands every event ready to emit, in order; more says events
	// remain to be read at once. An error ends the stream.
	Read(emit func(*audit.Event)) (more bool, err error)
	// Expire completes the events whose closing record is overdue at now
	// (live streams; a no-op for a stream that expires by itself).
	Expire(now time.Time, emit func(*audit.Event))
	// Flush completes every pending event, at the end of the stream.
	Flush(emit func(*audit.Event))
	// Err is why the stream ended, nil when it ended with its input or
	// its context.
	Err() error
	// Close stops the stream and returns the error its input ended with,
	// if the stream did not report it already.
	Close() error
}

// StreamOptions are how the pipeline wants its events.
type StreamOptions struct {
	// Assembler configures the assembler of a record-based input.
	Assembler audit.AssemblerConfig
	// Live says the events are this machine's as they happen: an event
	// whose closing record never comes completes on a wall-clock timer.
	Live bool
	// Lossy says a full stage drops and counts rather than waits: the
	// kernel's reader must never wait on a later stage.
	Lossy bool
	// Counters, if set, counts the stream's records, events and losses.
	Counters *Counters
	// Meter, if set, is told when the assembler starts and ends a batch in
	// a goroutine of its own (Feed), for the stage monitor.
	Meter Meter
	// DropOnCancel drops the record batches still queued once ctx ends:
	// an interrupted replay ends at once rather than after them (Feed).
	DropOnCancel bool
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Counters are a stream's counts, written by the stream's goroutines and
// read by any (metrics, the loss checks).
type Counters struct {
	Records, Events atomic.Uint64
	// DroppedEvents counts events a lossy stream dropped because detection
	// was behind.
	DroppedEvents atomic.Uint64
	// SerialLost mirrors the assembler's count of serials never seen.
	SerialLost atomic.Uint64
	// DroppedBatches and DroppedBytes count record batches a lossy stream
	// refused for its memory budget.
	DroppedBatches, DroppedBytes atomic.Uint64
}

// Meter is told when a stage starts and ends a batch of work.
type Meter interface {
	Begin()
	End()
}

// Status is the kernel's audit status, as the owner and multicast inputs
// read it.
type Status = netlink.Status

// ReaderStats are a kernel reader's receive counts and losses.
type ReaderStats = netlink.ReaderStats

// ProcessComm returns the command name of pid, or "" (for naming who holds
// the audit pid).
func ProcessComm(pid int) string { return netlink.ProcessComm(pid) }

// KernelWatcher is an input reading this machine's kernel audit stream: the
// daemon's supervisor checks its status for tampering and loss.
type KernelWatcher interface {
	Status() (Status, error)
	// Found is the status when the input was opened.
	Found() Status
	// Rules lists every rule in the kernel, as auditctl prints it.
	Rules() ([]string, error)
}

// RuleKeeper is an input that keeps encwatch's execve rules in the kernel.
type RuleKeeper interface {
	// RulesInstalled reports whether the rules are encwatch's to keep now.
	RulesInstalled() bool
	RuleKey() string
	OwnRules() []string
	// VerifyRules counts encwatch's rules missing from the kernel.
	VerifyRules() (missing int, err error)
	InstallRules() error
}

// SettingsOwner is an input that owns the kernel's audit settings and pid,
// and so may repair them.
type SettingsOwner interface {
	Enable() error
	Register() error
}

// Reconfigurer is an input that applies reloaded audit settings. It is a
// KernelWatcher: the daemon's kernel supervisor, which only such an input
// has, applies them.
type Reconfigurer interface {
	KernelWatcher
	Reconfigure(audit.Settings) error
}

// Stats is an input that counts its own receive losses.
type Stats interface {
	Stats() ReaderStats
}

// ConfigNotices is an input that tells of CONFIG_CHANGE records touching
// what encwatch relies on (a rule removed, audit switched, the audit pid
// set), so that the kernel is checked at once. The channel carries what
// changed ("remove_rule", "audit_enabled", "audit_pid", "set").
type ConfigNotices interface {
	ConfigChanges() <-chan string
}

// Config is what opening an input of a mode gets.
type Config struct {
	// Settings are the policy's kernel-facing settings.
	Settings audit.Settings
	// Stdin is where an input reading standard input reads (nil:
	// os.Stdin).
	Stdin io.Reader
	// Log is the daemon's logger.
	Log *logrus.Entry
}

// Kind is an input the policy's audit.mode and `encwatch run --mode` name.
type Kind struct {
	Name string
	// Help says what the mode does, for the command's help.
	Help string
	// Live says the input reads this machine as it runs: ancestry and
	// files are looked up here, and events complete on a timer too.
	Live bool
	// Lossy says the input must never wait on the pipeline: a full stage
	// drops and counts.
	Lossy bool
	// Open opens the input.
	Open func(Config) (Input, error)
}

// kinds holds the registered modes, DefaultMode first, then in
// registration order. It is written only by Register, from init functions.
var kinds []Kind

// Register adds a mode. It is meant for init functions and panics on a
// duplicate or incomplete kind, a programming error.
func Register(k Kind) {
	if k.Name == "" || k.Open == nil {
		panic("input: Register: a kind needs a name and Open")
	}
	if _, dup := Lookup(k.Name); dup {
		panic("input: Register: duplicate mode " + k.Name)
	}
	if k.Name == DefaultMode {
		kinds = append([]Kind{k}, kinds...)
		return
	}
	kinds = append(kinds, k)
}

// Modes returns the registered modes' names, DefaultMode first.
func Modes() []string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.Name
	}
	return names
}

// Kinds returns the registered modes.
func Kinds() []Kind { return slices.Clone(kinds) }

// Lookup returns the mode called name.
func Lookup(name string) (Kind, bool) {
	for _, k := range kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// CheckMode accepts a registered mode.
func CheckMode(name string) error {
	if _, ok := Lookup(name); ok {
		return nil
	}
	m := Modes()
	list := m[len(m)-1]
	if len(m) > 1 {
		list = strings.Join(m[:len(m)-1], ", ") + " or " + list
	}
	return fmt.Errorf("unknown audit mode %q: use %s", name, list)
}
