package config

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/encwatch/encwatch/detect"
)

// PolicyTest is a test block: a command line and the signatures it must and
// must not raise. `encwatch validate` runs them.
type PolicyTest struct {
	Name string
	// Pos is where the block starts, "file:line:col", for failure reports.
	Pos       string
	Argv      []string
	Parent    []string // nil: an interactive shell
	UID       uint32
	Cwd       string
	Expect    []string
	ExpectNot []string

	expectRanges []hcl.Range
}

// conditionAttrs are the attributes every condition body (signature, match,
// step, allow) takes; known so that a misspelling gets a suggestion.
var conditionAttrs = []string{
	"executables", "paths", "exe_regex", "any_flags", "all_flags", "no_flags", "args_regex",
	"min_args", "max_args", "mode", "parent_executables", "parent_regex", "ancestor_executables",
	"ancestor_depth", "uid", "auid", "login", "tty", "cwd", "success", "payload", "payload_encodings",
	"decode_calls", "renamed_encoder", "argv0_mismatch",
}

// conditions decodes the condition attributes of b into c.
func (b *body) conditions(c *detect.Conditions) {
	d := b.d
	if ranges, set := b.strings("executables", &c.Executables); set {
		if len(c.Executables) == 0 {
			d.errorf(b.b.Attributes["executables"].Expr.Range(), "executables is empty: the signature could never match")
		}
		for i, rng := range ranges {
			exe := c.Executables[i]
			if exe == "" || exe == "." || exe == ".." || strings.ContainsAny(exe, "/\x00") {
				d.errorf(rng, "executable %q must be a file name without a directory, e.g. \"base64\"", exe)
			}
		}
	}
	b.globs("paths", &c.Paths)
	b.regex("exe_regex", &c.ExeRegex)
	b.strings("any_flags", &c.AnyFlags)
	b.strings("all_flags", &c.AllFlags)
	b.strings("no_flags", &c.NoFlags)
	b.regex("args_regex", &c.ArgsRegex)
	if n, ok := b.integer("min_args", 0, math.MaxInt32); ok {
		c.MinArgs = int(n)
	}
	if n, ok := b.integer("max_args", 0, math.MaxInt32); ok {
		m := int(n)
		c.MaxArgs = &m
	}
	b.oneOf("mode", &c.Mode, detect.Modes)
	b.strings("parent_executables", &c.ParentExecutables)
	b.regex("parent_regex", &c.ParentRegex)
	b.strings("ancestor_executables", &c.AncestorExecutables)
	if n, ok := b.integer("ancestor_depth", 1, 64); ok {
		c.AncestorDepth = int(n)
	}
	b.uint32s("uid", &c.UIDs)
	b.uint32s("auid", &c.AUIDs)
	b.optBool("login", &c.Login)
	b.strings("tty", &c.TTYs)
	b.globs("cwd", &c.Cwd)
	b.optBool("success", &c.Success)
	b.listOf("payload", &c.Payload, detect.PayloadKinds)
	b.listOf("payload_encodings", &c.PayloadEncodings, detect.Encodings)
	b.listOf("decode_calls", &c.DecodeCalls, detect.DecodeCallEnc)
	b.boolean("renamed_encoder", &c.RenamedEncoder)
	b.boolean("argv0_mismatch", &c.Argv0Mismatch)
}

func (b *body) regex(name string, dst *string) {
	rng, ok := b.str(name, dst)
	if !ok {
		return
	}
	if _, err := regexp.Compile(*dst); err != nil {
		b.d.errorf(rng, "%s: bad regular expression: %v", name, err)
	}
}

func (b *body) globs(name string, dst *[]string) {
	ranges, _ := b.strings(name, dst)
	for i, rng := range ranges {
		if _, err := pathMatch((*dst)[i]); err != nil {
			b.d.errorf(rng, "%s: bad glob %q: %v", name, (*dst)[i], err)
		}
	}
}

func (b *body) oneOf(name string, dst *string, allowed []string) {
	if rng, ok := b.str(name, dst); ok && !contains(allowed, *dst) {
		b.d.errorf(rng, "unknown %s %q%s", name, *dst, didYouMean(*dst, allowed, "use "+strings.Join(allowed, ", ")))
	}
}

func (b *body) listOf(name string, dst *[]string, allowed []string) {
	ranges, _ := b.strings(name, dst)
	for i, rng := range ranges {
		if v := (*dst)[i]; !contains(allowed, v) {
			b.d.errorf(rng, "unknown %s %q%s", name, v, didYouMean(v, allowed, "use "+strings.Join(allowed, ", ")))
		}
	}
}

func (b *body) optBool(name string, dst **bool) {
	if _, present := b.b.Attributes[name]; !present {
		b.known = append(b.known, name)
		return
	}
	var v bool
	b.boolean(name, &v)
	*dst = &v
}

// uint32s decodes a list of whole numbers (uids).
func (b *body) uint32s(name string, dst *[]uint32) {
	a, v, ok := b.value(name)
	if !ok {
		return
	}
	t := v.Type()
	if !t.IsTupleType() && !t.IsListType() {
		b.d.errorf(a.Expr.Range(), "%s must be a list of numbers, e.g. [0, 1000]", name)
		return
	}
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		if ev.IsNull() || ev.Type() != cty.Number {
			b.d.errorf(a.Expr.Range(), "%s must be a list of numbers, e.g. [0, 1000]", name)
			return
		}
		f := ev.AsBigFloat()
		n, acc := f.Int64()
		if !f.IsInt() || acc != 0 || n < 0 || n > math.MaxUint32 {
			b.d.errorf(a.Expr.Range(), "%s must hold whole numbers from 0 to 4294967295", name)
			return
		}
		*dst = append(*dst, uint32(n))
	}
}

// signatureBlocks are the blocks a signature body holds.
var signatureBlocks = []string{"match", "sequence", "throttle", "actions"}

func (st *state) signature(blk *hclsyntax.Block) {
	if !st.d.labels(blk, "name") {
		return
	}
	name := blk.Labels[0]
	if !isWord(name, 128, true) {
		st.d.errorf(blk.LabelRanges[0], "signature name %q must be letters, digits, \"-\", \"_\" or \".\"", name)
	}
	if first, dup := st.sigAt[name]; dup {
		st.d.errorf(blk.LabelRanges[0], "duplicate signature %q; first defined at %s", name, at(first))
		return
	}
	st.sigAt[name] = blk.LabelRanges[0]

	what := fmt.Sprintf("signature %q", name)
	b := st.d.body(blk, what)
	spec := detect.SignatureSpec{Name: name}
	b.str("description", &spec.Description)
	b.str("category", &spec.Category)
	b.str("method", &spec.Method)
	var imp string
	b.require("importance")
	if rng, ok := b.str("importance", &imp); ok {
		if v, ok := detect.ParseImportance(imp); ok {
			spec.Importance = v
		} else {
			st.d.errorf(rng, "unknown importance %q%s", imp, didYouMean(imp, importances(), "use info, low, medium, high or critical"))
		}
	}
	mitre, _ := b.strings("mitre", &spec.MITRE)
	for i, rng := range mitre {
		if !isMITRE(spec.MITRE[i]) {
			st.d.errorf(rng, "MITRE ATT&CK id %q must look like T1027 or T1027.010", spec.MITRE[i])
		}
	}
	b.conditions(&spec.Conditions)
	hasConds := false
	for _, a := range conditionAttrs {
		if _, ok := blk.Body.Attributes[a]; ok {
			hasConds = true
		}
	}
	seqs := 0
	for _, inner := range blk.Body.Blocks {
		switch inner.Type {
		case "match":
			if !st.d.labels(inner) {
				continue
			}
			mb := st.d.body(inner, "match block of "+what)
			var c detect.Conditions
			mb.conditions(&c)
			mb.done()
			spec.Any = append(spec.Any, c)
		case "sequence":
			if seqs++; seqs > 1 {
				st.d.errorf(inner.TypeRange, "%s has more than one sequence block", what)
				continue
			}
			if hasConds {
				st.d.errorf(inner.TypeRange, "%s: a sequence signature takes its conditions in its step blocks, not beside them", what)
			}
			spec.Sequence = st.sequence(inner, what)
		case "throttle":
			if th, ok := st.throttle(inner, what); ok {
				spec.Throttles = append(spec.Throttles, th)
			}
		case "actions":
			st.signatureActions(inner, &spec)
		}
	}
	b.done(signatureBlocks...)
	if !hasConds && len(spec.Any) == 0 && spec.Sequence == nil {
		st.d.errorf(blk.TypeRange, "%s has no conditions: give executables, paths, exe_regex, match blocks or a sequence", what)
	}
	st.sigs = append(st.sigs, spec)
	st.sigRanges = append(st.sigRanges, blk.LabelRanges[0])
}

func (st *state) sequence(blk *hclsyntax.Block, what string) *detect.SequenceSpec {
	if !st.d.labels(blk) {
		return nil
	}
	b := st.d.body(blk, "sequence of "+what)
	q := &detect.SequenceSpec{By: "parent", Within: 3 * time.Second}
	b.oneOf("by", &q.By, []string{"parent", "session"})
	b.duration("within", &q.Within, time.Millisecond, time.Hour)
	b.boolean("ordered", &q.Ordered)
	for _, inner := range blk.Body.Blocks {
		if inner.Type != "step" || !st.d.labels(inner, "name") {
			continue
		}
		sb := st.d.body(inner, fmt.Sprintf("step %q of %s", inner.Labels[0], what))
		step := detect.StepSpec{Name: inner.Labels[0]}
		sb.conditions(&step.Conditions)
		sb.done()
		q.Steps = append(q.Steps, step)
	}
	b.done("step")
	if len(q.Steps) != 2 {
		st.d.errorf(blk.TypeRange, "sequence of %s needs 2 step blocks, got %d", what, len(q.Steps))
		return nil
	}
	return q
}

var throttlePers = []string{"parent_pid", "parent_exe", "ancestry", "host"}

func (st *state) throttle(blk *hclsyntax.Block, what string) (detect.ThrottleSpec, bool) {
	if !st.d.labels(blk) {
		return detect.ThrottleSpec{}, false
	}
	b := st.d.body(blk, "throttle of "+what)
	th := detect.ThrottleSpec{}
	b.require("per")
	b.require("window")
	b.oneOf("per", &th.Per, throttlePers)
	// max is how many identical repeats are raised before the rest
	// coalesce; a new command is always raised (detect/throttle.go).
	th.Max = 1
	if n, ok := b.integer("max", 1, math.MaxInt32); ok {
		th.Max = int(n)
	}
	b.duration("window", &th.Window, time.Second, 24*time.Hour)
	b.done()
	return th, th.Per != "" && th.Window > 0
}

// signatureActions decodes an actions block into spec: unlabelled, the
// actions for every mode; labelled with a mode (`actions "encode" { ... }`),
// the actions for alerts of that process.mode.
func (st *state) signatureActions(blk *hclsyntax.Block, spec *detect.SignatureSpec) {
	if len(blk.Labels) == 0 {
		spec.Actions = st.actions(blk)
		return
	}
	if !st.d.labels(blk, "mode") {
		return
	}
	mode := blk.Labels[0]
	if !contains(detect.AlertModes, mode) {
		st.d.errorf(blk.LabelRanges[0], "unknown mode %q for actions%s", mode, didYouMean(mode, detect.AlertModes, "use "+strings.Join(detect.AlertModes, ", ")))
		return
	}
	if _, dup := spec.ModeActions[mode]; dup {
		st.d.errorf(blk.LabelRanges[0], "duplicate actions %q block", mode)
		return
	}
	if spec.ModeActions == nil {
		spec.ModeActions = make(map[string]map[string][]string)
	}
	spec.ModeActions[mode] = st.actions(blk)
}

// actions decodes `actions { default = [...] production = [...] }`: any
// environment word, each a list of strings.
func (st *state) actions(blk *hclsyntax.Block) map[string][]string {
	b := st.d.body(blk, "actions block")
	out := make(map[string][]string)
	for _, a := range sortedAttrs(blk.Body) {
		if !isWord(a.Name, 64, false) {
			st.d.errorf(a.NameRange, "environment %q must be one word of lowercase letters, digits, \"-\" or \"_\"", a.Name)
			continue
		}
		var list []string
		if _, ok := b.strings(a.Name, &list); ok {
			out[a.Name] = list
		}
	}
	b.done()
	return out
}

func (st *state) allow(blk *hclsyntax.Block) {
	if !st.d.labels(blk, "name") {
		return
	}
	name := blk.Labels[0]
	if first, dup := st.allowAt[name]; dup {
		st.d.errorf(blk.LabelRanges[0], "duplicate allow %q; first defined at %s", name, at(first))
		return
	}
	st.allowAt[name] = blk.LabelRanges[0]
	what := fmt.Sprintf("allow %q", name)
	b := st.d.body(blk, what)
	spec := detect.AllowSpec{Name: name}
	b.require("reason")
	if rng, ok := b.str("reason", &spec.Reason); ok && strings.TrimSpace(spec.Reason) == "" {
		st.d.errorf(rng, "reason must say why the exec is allowed")
	}
	sigRanges, _ := b.strings("signatures", &spec.Signatures)
	b.conditions(&spec.Conditions)
	b.done()
	if spec.Conditions.Executables == nil && !hasAnyAttr(blk.Body, conditionAttrs) {
		st.d.errorf(blk.TypeRange, "%s has no conditions: it would suppress every alert", what)
	}
	st.allows = append(st.allows, spec)
	st.allowRanges = append(st.allowRanges, blk.LabelRanges[0])
	st.allowSigRanges = append(st.allowSigRanges, sigRanges)
}

func hasAnyAttr(b *hclsyntax.Body, names []string) bool {
	for _, n := range names {
		if _, ok := b.Attributes[n]; ok {
			return true
		}
	}
	return false
}

func (st *state) test(blk *hclsyntax.Block) {
	if !st.d.labels(blk, "name") {
		return
	}
	name := blk.Labels[0]
	what := fmt.Sprintf("test %q", name)
	b := st.d.body(blk, what)
	t := PolicyTest{Name: name, Pos: at(blk.TypeRange)}
	t.Argv = b.commandLine("command", "argv", what, true)
	t.Parent = b.commandLine("parent", "parent_argv", what, false)
	b.uint32("uid", &t.UID)
	b.str("cwd", &t.Cwd)
	t.expectRanges, _ = b.strings("expect", &t.Expect)
	notRanges, _ := b.strings("expect_not", &t.ExpectNot)
	t.expectRanges = append(t.expectRanges, notRanges...)
	b.done()
	if _, ok := blk.Body.Attributes["expect"]; !ok {
		if _, ok := blk.Body.Attributes["expect_not"]; !ok {
			st.d.errorf(blk.TypeRange, "%s needs expect or expect_not", what)
		}
	}
	st.cfg.Tests = append(st.cfg.Tests, t)
}

// commandLine decodes a command line given as a string (strName, split as a
// shell would) or as a list (listName).
func (b *body) commandLine(strName, listName, what string, required bool) []string {
	var line string
	var argv []string
	rng, isStr := b.str(strName, &line)
	_, isList := b.strings(listName, &argv)
	switch {
	case isStr && isList:
		b.d.errorf(rng, "%s: give %s or %s, not both", what, strName, listName)
	case isStr:
		out, err := detect.SplitCommand(line)
		if err != nil {
			b.d.errorf(rng, "%s: %v", strName, err)
		}
		return out
	case isList:
		if len(argv) == 0 {
			b.d.errorf(b.b.Attributes[listName].Expr.Range(), "%s is empty", listName)
		}
		return argv
	case required:
		b.d.errorf(b.def, "%s needs attribute %q (or %q)", what, strName, listName)
	}
	return nil
}

// checkTests checks that test blocks name signatures that exist.
func (st *state) checkTests() {
	names := slices.Collect(func(yield func(string) bool) {
		for _, s := range st.sigs {
			if !yield(s.Name) {
				return
			}
		}
	})
	for _, t := range st.cfg.Tests {
		for i, name := range append(slices.Clone(t.Expect), t.ExpectNot...) {
			if !contains(names, name) && i < len(t.expectRanges) {
				st.d.errorf(t.expectRanges[i], "unknown signature %q%s", name, didYouMean(name, names, "no signature has that name"))
			}
		}
	}
	for i, a := range st.allows {
		for j, name := range a.Signatures {
			if !contains(names, name) && j < len(st.allowSigRanges[i]) {
				st.d.errorf(st.allowSigRanges[i][j], "unknown signature %q%s", name, didYouMean(name, names, "no signature has that name"))
			}
		}
	}
}

func pathMatch(glob string) (bool, error) { return path.Match(glob, "") }
