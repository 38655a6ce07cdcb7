package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/hclbody"
	"github.com/encwatch/encwatch/internal/input"
	"github.com/encwatch/encwatch/internal/sink"
)

// Top-level block types the policy itself decodes; other packages add
// their own with RegisterBlock.
var topBlocks = []string{"settings", "audit", "metrics", "signature", "allow", "test", "sink"}

// state accumulates the policy across the files of one Load.
type state struct {
	d   decoder
	cfg Config

	settingsAt, auditAt, metricsAt *hcl.Range
	sigs                           []detect.SignatureSpec
	sigRanges                      []hcl.Range
	sigAt                          map[string]hcl.Range
	sinkAt                         map[string]hcl.Range

	allows         []detect.AllowSpec
	allowRanges    []hcl.Range
	allowSigRanges [][]hcl.Range
	allowAt        map[string]hcl.Range
	identify       bool
	// probeSet: the metrics block names its probe_socket.
	probeSet bool
	// requireSignatures refuses a policy without signatures (the daemon's
	// strict load).
	requireSignatures bool
	// table is the table of conditions signatures and allow blocks use.
	table detect.Table
}

// load decodes files as one policy whose conditions are those of table
// (nil: detect.Builtin()).
func load(path string, files []source, identify, requireSignatures bool, table detect.Table) (*Config, error) {
	if table == nil {
		table = detect.Builtin()
	}
	st := &state{
		cfg: Config{
			Path:     path,
			Settings: Settings{Environment: DefaultEnvironment},
			Audit: Audit{
				Mode: DefaultAuditMode,
				Settings: audit.Settings{
					Enabled:      true,
					BacklogLimit: DefaultBacklogLimit,
					RuleKey:      DefaultRuleKey,
					GatherWindow: DefaultGatherWindow,
				},
				EventTimeout:   DefaultEventTimeout,
				MaxInFlight:    DefaultMaxInFlight,
				TamperInterval: DefaultTamperInterval,
			},
			Metrics: Metrics{Address: DefaultMetricsAddress, ProbeSocket: DefaultProbeSocket},
		},
		sigAt:             make(map[string]hcl.Range),
		sinkAt:            make(map[string]hcl.Range),
		allowAt:           make(map[string]hcl.Range),
		identify:          identify,
		requireSignatures: requireSignatures,
		table:             table,
	}
	var bodies []*hclsyntax.Body
	for _, f := range files {
		if d := checkNesting(f.name, f.src); d != nil {
			st.d.diags = append(st.d.diags, d)
			continue
		}
		file, diags := hclsyntax.ParseConfig(f.src, f.name, hcl.InitialPos)
		st.d.diags = append(st.d.diags, diags...)
		if diags.HasErrors() || file == nil {
			continue
		}
		bodies = append(bodies, file.Body.(*hclsyntax.Body))
	}
	// A file that does not parse would only add confusing follow-on errors.
	if st.d.diags.HasErrors() {
		return nil, &Error{Diagnostics: st.d.diags}
	}
	for _, b := range bodies {
		st.file(b)
	}
	st.finish()
	if st.d.diags.HasErrors() {
		return nil, &Error{Diagnostics: st.d.diags}
	}
	return &st.cfg, nil
}

func (st *state) file(b *hclsyntax.Body) {
	d := &st.d
	for _, a := range hclbody.SortedAttrs(b) {
		if s := suggest(a.Name, topBlocks); s != "" {
			d.errorf(a.NameRange, "unknown attribute %q; did you mean the %q block?", a.Name, s)
		} else {
			d.errorf(a.NameRange, "unknown attribute %q: the top level holds only %s blocks", a.Name, strings.Join(topBlocks, ", "))
		}
	}
	for _, blk := range b.Blocks {
		switch blk.Type {
		case "settings":
			if st.once(blk, &st.settingsAt) {
				st.settings(blk)
			}
		case "audit":
			if st.once(blk, &st.auditAt) {
				st.audit(blk)
			}
		case "metrics":
			if st.once(blk, &st.metricsAt) {
				st.metrics(blk)
			}
		case "signature":
			st.signature(blk)
		case "allow":
			st.allow(blk)
		case "test":
			st.test(blk)
		case "sink":
			st.sink(blk)
		default:
			if k, ok := blocks[blk.Type]; ok {
				st.block(k, blk)
				continue
			}
			d.unknownBlock(blk, "the top level", topBlocks, nil)
		}
	}
}

// once checks that blk, a block that may appear once in the whole policy,
// has not appeared before, and has no labels.
func (st *state) once(blk *hclsyntax.Block, first **hcl.Range) bool {
	if *first != nil {
		st.d.errorf(blk.TypeRange, "duplicate %s block; first defined at %s", blk.Type, at(**first))
		return false
	}
	r := blk.TypeRange
	*first = &r
	return st.d.labels(blk)
}

func (st *state) settings(blk *hclsyntax.Block) {
	b := st.d.body(blk, "settings block")
	s := &st.cfg.Settings
	if rng, ok := b.String("environment", &s.Environment); ok && !isWord(s.Environment, 64, false) {
		st.d.errorf(rng, "environment %q must be one word of lowercase letters, digits, \"-\" or \"_\" (ci, staging, production or your own)", s.Environment)
	}
	if rng, ok := b.String("hostname", &s.Hostname); ok && strings.ContainsFunc(s.Hostname, isSpaceOrControl) {
		st.d.errorf(rng, "hostname %q must not contain spaces or control characters", s.Hostname)
	}
	if n, ok := b.Int("ancestry_depth", 1, 64); ok {
		s.AncestryDepth = int(n)
	}
	// The safety cap on new alerts per source (a user on a host) and minute (detect/throttle.go).
	if n, ok := b.Int("alert_cap_per_minute", 1, int64(maxAlertCap)); ok {
		s.AlertCap = int(n)
	}
	if ranges, ok := b.Strings("encoder_binaries", &s.EncoderBinaries); ok {
		for i, rng := range ranges {
			if msg := hclbody.CheckAbsPath(s.EncoderBinaries[i]); msg != "" {
				st.d.errorf(rng, "encoder_binaries: %s", msg)
			}
		}
	}
	b.Done()
}

// maxTamperWait bounds how long a deleted rule or a disabled audit may go
// unnoticed when no CONFIG_CHANGE record reports it.
const maxTamperWait = 10 * time.Minute

// maxAlertCap bounds settings.alert_cap_per_minute.
const maxAlertCap = 10_000_000

// metrics decodes the metrics block. An empty address switches the TCP
// endpoint off, an empty probe_socket the local probe socket.
func (st *state) metrics(blk *hclsyntax.Block) {
	b := st.d.body(blk, "metrics block")
	m := &st.cfg.Metrics
	if rng, ok := b.String("address", &m.Address); ok && m.Address != "" {
		if _, _, err := net.SplitHostPort(m.Address); err != nil {
			st.d.errorf(rng, "address %q must be HOST:PORT, e.g. \"127.0.0.1:9464\"", m.Address)
		}
	}
	if rng, ok := b.String("probe_socket", &m.ProbeSocket); ok {
		st.probeSet = true
		if m.ProbeSocket != "" && !filepath.IsAbs(m.ProbeSocket) {
			st.d.errorf(rng, "probe_socket %q must be an absolute path, e.g. %q", m.ProbeSocket, DefaultProbeSocket)
		}
	}
	b.Done()
}

// audit decodes the audit block. Every kernel-facing setting is checked by
// the audit package's own validator, the one `encwatch run` applies again
// before it touches the kernel; this decoder only reads HCL types.
func (st *state) audit(blk *hclsyntax.Block) {
	b := st.d.body(blk, "audit block")
	a := &st.cfg.Audit
	if rng, ok := b.String("mode", &a.Mode); ok {
		if err := input.CheckMode(a.Mode); err != nil {
			st.d.errorf(rng, "%v%s", err, suggestion(a.Mode, input.Modes()))
		}
	}
	b.Bool("install_rules", &a.InstallRules)
	b.Duration("tamper_interval", &a.TamperInterval, 100*time.Millisecond, maxTamperWait)
	b.Bool("enabled", &a.Enabled)
	if n, ok := b.CheckedInt("backlog_limit", audit.CheckBacklogLimit); ok {
		a.BacklogLimit = uint32(n)
	}
	if n, ok := b.CheckedInt("backlog_wait_time", audit.CheckBacklogWaitTime); ok {
		w := uint32(n)
		a.BacklogWaitTime = &w
	}
	if n, ok := b.CheckedInt("rate_limit", audit.CheckRateLimit); ok {
		a.RateLimit = uint32(n)
	}
	if rng, ok := b.String("failure", &a.Failure); ok {
		if _, err := audit.ParseFailure(a.Failure); err != nil {
			st.d.errorf(rng, "%v%s", err, suggestion(a.Failure, audit.FailureModes()))
		}
	}
	if rng, ok := b.String("rule_key", &a.RuleKey); ok {
		if err := audit.CheckRuleKey(a.RuleKey); err != nil {
			st.d.errorf(rng, "%v", err)
		}
	}
	b.CheckedDuration("gather_window", &a.GatherWindow, audit.CheckGatherWindow)
	if rngs, ok := b.Strings("exclude_records", &a.ExcludeRecords); ok {
		// The first element that makes the list invalid is the one named.
		for i := range a.ExcludeRecords {
			if err := audit.CheckExcludeRecords(a.ExcludeRecords[:i+1]); err != nil {
				st.d.errorf(rngs[i], "%v", err)
				break
			}
		}
	}
	b.CheckedDuration("event_timeout", &a.EventTimeout, audit.CheckEventTimeout)
	if n, ok := b.CheckedInt("max_in_flight", audit.CheckMaxInFlight); ok {
		a.MaxInFlight = int(n)
	}
	b.Done()
}

// suggestion returns "; did you mean "x"?" for a close candidate, else "".
func suggestion(given string, candidates []string) string {
	if s := suggest(given, candidates); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return ""
}

// finish fills in what needs every file (defaults that depend on the
// machine, the compiled policy).
func (st *state) finish() {
	cfg := &st.cfg
	if cfg.Settings.Hostname == "" {
		if h, err := hostname(); err == nil {
			cfg.Settings.Hostname = h
		}
	}
	forwards := false
	for _, typ := range cfg.blockTypes() {
		k := blocks[typ]
		if k.MetricsAddress != "" && st.metricsAt == nil {
			// A collector often shares a host with an agent, which has
			// the default port: two daemons on one port would refuse to
			// start.
			cfg.Metrics.Address = k.MetricsAddress
		}
		if k.ProbeSocket != "" && !st.probeSet {
			cfg.Metrics.ProbeSocket = k.ProbeSocket
		}
		forwards = forwards || k.Forwards
	}
	if len(cfg.Sinks) == 0 {
		// Alerts must go somewhere: journald reads standard output.
		cfg.Sinks = []sink.Config{{Type: "stdout", Name: "console", Common: sink.Common{Format: "json"}}}
	}
	if len(st.sigs) == 0 && st.requireSignatures && !forwards {
		// An empty policy (or one swapped for an empty file) would run,
		// report healthy and detect nothing. A policy with a block that
		// forwards (a collector's collect block) detects nothing by
		// design.
		st.d.diags = append(st.d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "the policy has no signature blocks: it would detect nothing; refusing it",
			Subject:  &hcl.Range{Filename: cfg.Path},
		})
		return
	}
	st.checkTests()
	if st.d.diags.HasErrors() {
		return
	}
	if st.identify {
		cfg.Encoders, cfg.EncoderProblems = identifyEncoders(cfg.Settings.EncoderBinaries)
	}
	p, err := detect.Compile(detect.PolicySpec{
		Environment:   cfg.Settings.Environment,
		AncestryDepth: cfg.Settings.AncestryDepth,
		AlertCap:      cfg.Settings.AlertCap,
		Signatures:    st.sigs,
		Allows:        st.allows,
		Encoders:      cfg.Encoders,
		Table:         st.table,
	})
	if err != nil {
		// The checks above should have caught it; say where anyway.
		st.compileError(err)
		return
	}
	cfg.Policy = p
}

func (st *state) compileError(err error) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var se *detect.SignatureError
		if errors.As(e, &se) && se.Index < len(st.sigRanges) {
			st.d.errorf(st.sigRanges[se.Index], "%v", se)
			continue
		}
		var ae *detect.AllowError
		if errors.As(e, &ae) && ae.Index < len(st.allowRanges) {
			st.d.errorf(st.allowRanges[ae.Index], "%v", ae)
			continue
		}
		st.d.diags = append(st.d.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: e.Error(), Subject: &hcl.Range{Filename: st.cfg.Path}})
	}
}

// didYouMean returns "; did you mean "x"?" for a close candidate, else
// "; " + otherwise.
func didYouMean(given string, candidates []string, otherwise string) string {
	return hclbody.DidYouMean(given, candidates, otherwise)
}

func importances() []string {
	var out []string
	for i := detect.Info; i <= detect.Critical; i++ {
		out = append(out, i.String())
	}
	return out
}

// isWord reports whether s is 1 to max characters of lowercase letters,
// digits, "-" and "_" (and, if names, uppercase letters and ".").
func isWord(s string, max int, names bool) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
		case names && (r >= 'A' && r <= 'Z' || r == '.'):
		default:
			return false
		}
	}
	return true
}

// isMITRE reports whether s is an ATT&CK technique id: T1234 or T1234.567.
func isMITRE(s string) bool {
	digits := func(s string) bool {
		for _, r := range s {
			if r < '0' || r > '9' {
				return false
			}
		}
		return true
	}
	base, sub, hasSub := strings.Cut(s, ".")
	if len(base) != 5 || base[0] != 'T' || !digits(base[1:]) {
		return false
	}
	return !hasSub || len(sub) == 3 && digits(sub)
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}
