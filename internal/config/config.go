// Package config loads the encwatch policy: config.hcl and the conf.d/*.hcl
// files beside it, validated against the schema, with every problem reported
// as file:line:col, and converted into detect and sink values. Sink blocks
// are decoded by the sink package's registry of sink types (sink.DecodeBlock),
// and the top-level blocks other packages register (RegisterBlock, such as
// internal/fleet's heartbeat and collect) by those packages; HCL types stop
// here and there.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/input"
	"github.com/encwatch/encwatch/internal/sink"
)

// Config is a loaded, validated policy.
type Config struct {
	Path     string // the main file, as given to Load
	Settings Settings
	Audit    Audit
	Metrics  Metrics
	Policy   *detect.Policy
	Sinks    []sink.Config // each with the range of its block header
	// Blocks are the registered top-level blocks the policy holds
	// (RegisterBlock), each as its Decode made it, by type; blockAt says
	// where each is.
	Blocks  map[string]any
	blockAt map[string]hcl.Range
	// Tests are the policy's test blocks, run by RunTests.
	Tests []PolicyTest
	// Encoders are the known encoder binaries Load found on this machine,
	// compiled into Policy for the renamed-encoder check; EncoderProblems
	// says which listed binaries could not be used, and why.
	Encoders        []detect.EncoderIdentity
	EncoderProblems []string
}

// Settings is the settings block.
type Settings struct {
	// Environment is "ci", "staging", "production" or a custom word.
	Environment string
	// Hostname names this machine in alerts; os.Hostname() when unset.
	Hostname string
	// AncestryDepth is how many ancestors an alert carries.
	AncestryDepth int
	// AlertCap is the safety cap on new alerts per source (a user on a host) and minute; 0 is
	// detect.DefaultAlertCap.
	AlertCap int
	// EncoderBinaries are the paths of encoder tools identified by device,
	// inode and content hash at load, so that a renamed copy still matches.
	EncoderBinaries []string
}

// Host names this machine in alerts: Hostname, which Load fills in from
// the system when the policy leaves it empty, or the system's name for a
// Config made without Load.
func (s Settings) Host() string {
	if s.Hostname != "" {
		return s.Hostname
	}
	h, _ := hostname()
	return h
}

// Audit is the audit block: how encwatch talks to the kernel audit
// subsystem. Its kernel-facing settings are audit.Settings, embedded: the
// type the kernel side opens with, so that nothing is copied on the way.
type Audit struct {
	// Mode is how records are read, one of input.Modes: "owner" (encwatch
	// is the audit daemon, holding the unicast netlink pid), "multicast"
	// (read-only beside auditd, on the netlink readlog group) or "audisp"
	// (auditd's dispatcher feeds records on standard input).
	Mode string
	// TamperInterval is how often the daemon checks the kernel status and
	// its rules, besides reacting at once to CONFIG_CHANGE records.
	TamperInterval time.Duration
	audit.Settings
	// EventTimeout completes an event whose closing record never came.
	EventTimeout time.Duration
	// MaxInFlight bounds the events being assembled at once.
	MaxInFlight int
}

// Metrics is the metrics block: where /metrics and /healthz listen.
type Metrics struct {
	// Address is HOST:PORT; "" switches the endpoint off. The default is
	// loopback only: nothing listens beyond it unless configured.
	Address string
	// ProbeSocket is the unix socket (mode 0600, root's) serving the same
	// endpoint to local probes (`encwatch status`, the service manager),
	// out of reach of any user's connections to Address; "" serves none.
	ProbeSocket string
}

// Defaults for what a policy leaves out.
const (
	DefaultEnvironment = "production"
	// The audit block's defaults are the audit package's.
	DefaultAuditMode    = input.DefaultMode
	DefaultBacklogLimit = audit.DefaultBacklogLimit
	DefaultRuleKey      = audit.DefaultRuleKey
	DefaultGatherWindow = audit.DefaultGatherWindow
	DefaultEventTimeout = audit.DefaultTimeout
	DefaultMaxInFlight  = audit.DefaultMaxInFlight
	// DefaultTamperInterval is how often the kernel status and rules are
	// polled.
	DefaultTamperInterval = 5 * time.Second
	// DefaultMetricsAddress is 9464, the port registered for Prometheus
	// exporters' OpenTelemetry default, on loopback. A registered block
	// may give a policy holding it another (Block.MetricsAddress).
	DefaultMetricsAddress = "127.0.0.1:9464"
	// DefaultProbeSocket is the agent's probe socket, in its unit's
	// RuntimeDirectory (Block.ProbeSocket gives another daemon its own).
	DefaultProbeSocket = "/run/encwatch/probe.sock"
)

// LoadOptions says how strict Load is about the files it reads.
type LoadOptions struct {
	// RequireRootOwned is the daemon's strict load. Like sshd's
	// StrictModes, it refuses a policy file, conf.d entry, conf.d directory,
	// any directory on their paths up to / or any symbolic link on the way
	// (its target is checked too) that is not owned by root or is writable
	// by group or others (a sticky directory such as /tmp is accepted on
	// the way): whoever can write the policy, or swap it, can switch
	// detection off. It also refuses a policy with no signature, which
	// would run, report healthy and detect nothing. The daemon sets it
	// (start and reload); tests and a replay of one's own copy do not.
	RequireRootOwned bool
}

// maxFileSize bounds a policy file; a real one is a few kilobytes.
const maxFileSize = 4 << 20

// Load reads the policy at path and every *.hcl file in the conf.d directory
// beside it, in lexical order (names starting with "." are skipped), as one
// policy. Problems with the policy are returned as *Error; failing to read a
// file is returned as it is, wrapped.
func Load(path string, opts LoadOptions) (*Config, error) {
	var files []source
	src, err := readPolicyFile(path, opts.RequireRootOwned)
	if err != nil {
		return nil, err
	}
	files = append(files, source{name: path, src: src})

	confd := filepath.Join(filepath.Dir(path), "conf.d")
	names, err := confDir(confd, opts.RequireRootOwned)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		src, err := readPolicyFile(name, opts.RequireRootOwned)
		if err != nil {
			return nil, err
		}
		files = append(files, source{name: name, src: src})
	}
	return load(path, files, true, opts.RequireRootOwned, nil)
}

// Parse loads a policy from src alone, as if read from filename, without
// conf.d and without permission checks: for tests, fuzzing and checking a
// policy piped in on standard input.
func Parse(filename string, src []byte) (*Config, error) {
	return load(filename, []source{{name: filename, src: src}}, false, false, nil)
}

// Error is a policy that failed to load: the diagnostics say what and where.
type Error struct {
	Diagnostics hcl.Diagnostics
}

// Error formats one line per problem: "file:line:col: message".
func (e *Error) Error() string {
	var b strings.Builder
	for i, d := range e.Diagnostics {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(formatDiagnostic(d))
	}
	return b.String()
}

func formatDiagnostic(d *hcl.Diagnostic) string {
	msg := d.Summary
	if d.Detail != "" {
		msg += ": " + d.Detail
	}
	// One problem, one line, whatever hcl put in its detail.
	msg = strings.Join(strings.Fields(msg), " ")
	switch {
	case d.Subject == nil:
		return msg
	case d.Subject.Start.Line == 0:
		return fmt.Sprintf("%s: %s", d.Subject.Filename, msg)
	default:
		return fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, msg)
	}
}

// hostname is os.Hostname, replaced in tests.
var hostname = os.Hostname
