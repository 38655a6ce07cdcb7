package netlink

import (
	"errors"
	"fmt"
	"slices"

	"github.com/elastic/go-libaudit/v2/rule"
	"github.com/elastic/go-libaudit/v2/rule/flags"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/audit"
)

// execRule is one rule encwatch wants in the kernel.
type execRule struct {
	text  string // as ToCommandLine prints it, for comparison with the kernel's list
	wire  rule.WireFormat
	added bool // we added it, so Close removes it
}

// ruleSet is encwatch's execve rules under one key, kept in the kernel
// through a control socket. Owner and Multicast embed it.
type ruleSet struct {
	ctrl    *Control
	log     *logrus.Entry
	key     string
	exclude []string // record types excluded kernel-wide (exclude_records)
	rules   []execRule
}

func newRuleSet(ctrl *Control, log *logrus.Entry, key string, exclude ...string) (*ruleSet, error) {
	rules, err := buildRules(key, exclude...)
	if err != nil {
		return nil, err
	}
	return &ruleSet{ctrl: ctrl, log: log, key: key, exclude: exclude, rules: rules}, nil
}

// buildRules builds the execve/execveat rules for both syscall ABIs and an
// exclude rule per record type in exclude. Exclude rules take no key (the
// kernel's exclude list filters on the message type and the sender only);
// they are told apart by their text, and like the others removed on exit
// only if encwatch added them.
func buildRules(key string, exclude ...string) ([]execRule, error) {
	if err := audit.CheckRuleKey(key); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := audit.CheckExcludeRecords(exclude); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var lines []string
	for _, arch := range []string{"b64", "b32"} {
		lines = append(lines, fmt.Sprintf("-a always,exit -F arch=%s -S execve,execveat -k %s", arch, key))
	}
	for _, typ := range exclude {
		lines = append(lines, "-a always,exclude -F msgtype="+typ)
	}
	var out []execRule
	for _, line := range lines {
		r, err := flags.Parse(line)
		if err != nil {
			return nil, fmt.Errorf("audit: rule %q: %w", line, err)
		}
		wire, err := rule.Build(r)
		if err != nil {
			return nil, fmt.Errorf("audit: build rule %q: %w", line, err)
		}
		text, err := rule.ToCommandLine(wire, false)
		if err != nil {
			return nil, fmt.Errorf("audit: decode rule %q: %w", line, err)
		}
		out = append(out, execRule{text: text, wire: wire})
	}
	return out, nil
}

// RuleKey returns the key of encwatch's rules.
func (s *ruleSet) RuleKey() string { return s.key }

// OwnRules returns encwatch's rules as auditctl would print them, whether or
// not they are in the kernel now.
func (s *ruleSet) OwnRules() []string {
	out := make([]string, len(s.rules))
	for i, r := range s.rules {
		out[i] = r.text
	}
	return out
}

// VerifyRules reports how many of encwatch's rules are missing from the
// kernel (deleted by someone else, for instance).
func (s *ruleSet) VerifyRules() (missing int, err error) {
	have, err := s.ctrl.Rules()
	if err != nil {
		return 0, err
	}
	for _, r := range s.rules {
		if !slices.Contains(have, r.text) {
			missing++
		}
	}
	return missing, nil
}

// InstallRules adds whichever of encwatch's rules the kernel lacks. A rule
// the kernel already has (EEXIST: someone installed the identical rule) is
// left to its owner and not removed by Close.
func (s *ruleSet) InstallRules() error {
	for i := range s.rules {
		r := &s.rules[i]
		err := s.ctrl.sock.request(audit.MsgAddRule, r.wire, nil)
		switch {
		case err == nil:
			r.added = true
			s.log.WithField("rule", r.text).Debug("added audit rule")
		case errors.Is(err, unix.EEXIST):
			s.log.WithField("rule", r.text).Debug("audit rule already present")
		default:
			return fmt.Errorf("audit: add rule %q: %w", r.text, err)
		}
	}
	return nil
}

// removeRules deletes the rules s added.
func (s *ruleSet) removeRules() error {
	var errs []error
	for i := range s.rules {
		r := &s.rules[i]
		if !r.added {
			continue
		}
		// ENOENT: someone else already deleted it.
		if err := s.ctrl.sock.request(audit.MsgDelRule, r.wire, nil); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("audit: delete rule %q: %w", r.text, err))
			continue
		}
		r.added = false
	}
	return errors.Join(errs...)
}

// rekey switches to key and the exclude list: when either changed, the rules
// s added are removed (not re-installed: the caller does that).
func (s *ruleSet) rekey(key string, exclude ...string) error {
	if key == s.key && slices.Equal(exclude, s.exclude) {
		return nil
	}
	rules, err := buildRules(key, exclude...)
	if err != nil {
		return err
	}
	if err := s.removeRules(); err != nil {
		return err
	}
	s.key, s.exclude, s.rules = key, exclude, rules
	return nil
}
