package config

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/hclbody"
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

// conditions decodes the condition attributes of b, as the table t declares
// them, and checks them with t: what this accepts, detect compiles. ok is
// false when something was reported.
func (b *body) conditions(t detect.Table) (c detect.Conditions, ok bool) {
	before := len(b.d.diags)
	c = detect.Conditions{}
	elems := make(map[string][]hcl.Range)
	for i := range t {
		if v, rngs, set := b.condition(&t[i]); set {
			c[t[i].Attr], elems[t[i].Attr] = v, rngs
		}
	}
	for _, err := range t.Check(c) {
		// A condition whose Needs failed to decode was reported already.
		if cond, ok := t.Lookup(err.Attr); ok && cond.Needs != "" && b.Syntax().Attributes[cond.Needs] != nil && c[cond.Needs] == nil {
			continue
		}
		b.conditionError(t, err, elems[err.Attr])
	}
	return c, len(b.d.diags) == before
}

// condition decodes the attribute of cond by its type; rngs are the ranges
// of a list's elements.
func (b *body) condition(cond *detect.Condition) (v any, rngs []hcl.Range, set bool) {
	name := cond.Attr
	switch cond.Type {
	case detect.Strings:
		var list []string
		if rngs, set = b.Strings(name, &list); set && cond.NonEmpty && len(list) == 0 {
			b.d.errorf(b.Syntax().Attributes[name].Expr.Range(), "%s is empty: the signature could never match", name)
		}
		return list, rngs, set
	case detect.String:
		var s string
		rng, set := b.String(name, &s)
		return s, []hcl.Range{rng}, set
	case detect.Int:
		n, set := b.Int(name, int64(cond.Min), int64(cond.Max))
		return int(n), nil, set
	case detect.Bool:
		var v bool
		return v, nil, b.Bool(name, &v)
	case detect.Uint32s:
		var ids []uint32
		set := b.uint32s(name, &ids)
		return ids, nil, set
	}
	panic("config: condition " + name + " has an unknown value type")
}

// conditionError reports err at the value (or element of it) at fault.
func (b *body) conditionError(t detect.Table, err *detect.ConditionError, elems []hcl.Range) {
	rng := b.DefRange()
	if a, ok := b.Syntax().Attributes[err.Attr]; ok {
		rng = a.Expr.Range()
	}
	if err.Index >= 0 && err.Index < len(elems) {
		rng = elems[err.Index]
	}
	cond, _ := t.Lookup(err.Attr)
	switch err.Check {
	case detect.FileName:
		b.d.errorf(rng, "%s %q must be a file name without a directory, e.g. \"base64\"", cond.Noun, err.Value)
	case detect.Glob:
		b.d.errorf(rng, "%s: bad glob %q: %v", err.Attr, err.Value, err.Err)
	case detect.Regex:
		b.d.errorf(rng, "%s: bad regular expression: %v", err.Attr, err.Err)
	case detect.OneOf:
		b.d.errorf(rng, "unknown %s %q%s", err.Attr, err.Value, didYouMean(err.Value, cond.Allowed, "use "+strings.Join(cond.Allowed, ", ")))
	default:
		b.d.errorf(rng, "%v", err)
	}
}

func (b *body) oneOf(name string, dst *string, allowed []string) {
	if rng, ok := b.String(name, dst); ok && !contains(allowed, *dst) {
		b.d.errorf(rng, "unknown %s %q%s", name, *dst, didYouMean(*dst, allowed, "use "+strings.Join(allowed, ", ")))
	}
}

// uint32s decodes a list of whole numbers (uids).
func (b *body) uint32s(name string, dst *[]uint32) bool {
	a, v, ok := b.Value(name)
	if !ok {
		return false
	}
	t := v.Type()
	if !t.IsTupleType() && !t.IsListType() {
		b.d.errorf(a.Expr.Range(), "%s must be a list of numbers, e.g. [0, 1000]", name)
		return false
	}
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		if ev.IsNull() || ev.Type() != cty.Number {
			b.d.errorf(a.Expr.Range(), "%s must be a list of numbers, e.g. [0, 1000]", name)
			return false
		}
		f := ev.AsBigFloat()
		n, acc := f.Int64()
		if !f.IsInt() || acc != 0 || n < 0 || n > math.MaxUint32 {
			b.d.errorf(a.Expr.Range(), "%s must hold whole numbers from 0 to 4294967295", name)
			return false
		}
		*dst = append(*dst, uint32(n))
	}
	return true
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
	st.signatureInfo(b, &spec)
	var condsOK bool
	spec.Conditions, condsOK = b.conditions(st.table)
	st.signatureBlocks(blk, &spec, what)
	b.Done(signatureBlocks...)
	if condsOK && st.table.Empty(spec.Conditions) && len(spec.Any) == 0 && spec.Sequence == nil {
		st.d.errorf(blk.TypeRange, "%s has no conditions: give executables, paths, exe_regex, match blocks or a sequence", what)
	}
	st.sigs = append(st.sigs, spec)
	st.sigRanges = append(st.sigRanges, blk.LabelRanges[0])
}

// signatureInfo decodes what a signature says about itself.
func (st *state) signatureInfo(b *body, spec *detect.SignatureSpec) {
	b.String("description", &spec.Description)
	b.String("category", &spec.Category)
	b.String("method", &spec.Method)
	var imp string
	b.Require("importance")
	if rng, ok := b.String("importance", &imp); ok {
		if v, ok := detect.ParseImportance(imp); ok {
			spec.Importance = v
		} else {
			st.d.errorf(rng, "unknown importance %q%s", imp, didYouMean(imp, importances(), "use info, low, medium, high or critical"))
		}
	}
	mitre, _ := b.Strings("mitre", &spec.MITRE)
	for i, rng := range mitre {
		if !isMITRE(spec.MITRE[i]) {
			st.d.errorf(rng, "MITRE ATT&CK id %q must look like T1027 or T1027.010", spec.MITRE[i])
		}
	}
}

// signatureBlocks decodes the blocks of a signature (signatureBlocks).
func (st *state) signatureBlocks(blk *hclsyntax.Block, spec *detect.SignatureSpec, what string) {
	hasConds := hasAnyAttr(blk.Body, st.table.Attrs())
	seqs := 0
	for _, inner := range blk.Body.Blocks {
		switch inner.Type {
		case "match":
			if !st.d.labels(inner) {
				continue
			}
			spec.Any = append(spec.Any, st.conditionBlock(inner, "match block of "+what))
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
			st.signatureActions(inner, spec)
		}
	}
}

// conditionBlock decodes a block that holds only conditions (match, step);
// what names it in messages.
func (st *state) conditionBlock(blk *hclsyntax.Block, what string) detect.Conditions {
	b := st.d.body(blk, what)
	c, ok := b.conditions(st.table)
	b.Done()
	if ok && st.table.Empty(c) {
		st.d.errorf(blk.TypeRange, "%s has no conditions", what)
	}
	return c
}

func (st *state) sequence(blk *hclsyntax.Block, what string) *detect.SequenceSpec {
	if !st.d.labels(blk) {
		return nil
	}
	b := st.d.body(blk, "sequence of "+what)
	q := &detect.SequenceSpec{By: "parent", Within: 3 * time.Second}
	b.oneOf("by", &q.By, []string{"parent", "session", "lineage"})
	b.Duration("within", &q.Within, time.Millisecond, time.Hour)
	b.Bool("ordered", &q.Ordered)
	for _, inner := range blk.Body.Blocks {
		if inner.Type != "step" || !st.d.labels(inner, "name") {
			continue
		}
		step := detect.StepSpec{Name: inner.Labels[0]}
		step.Conditions = st.conditionBlock(inner, fmt.Sprintf("step %q of %s", inner.Labels[0], what))
		q.Steps = append(q.Steps, step)
	}
	if len(q.Steps) == 2 {
		st.sequencePipe(b, q, what)
	}
	b.Done("step")
	if len(q.Steps) != 2 {
		st.d.errorf(blk.TypeRange, "sequence of %s needs 2 step blocks, got %d", what, len(q.Steps))
		return nil
	}
	return q
}

// sequencePipe decodes a sequence's pipe = "from | to" and the
// unpiped_importance it needs into q.Pipe.
func (st *state) sequencePipe(b *body, q *detect.SequenceSpec, what string) {
	var pipe, unpiped string
	pipeRng, hasPipe := b.String("pipe", &pipe)
	unpRng, hasUnpiped := b.String("unpiped_importance", &unpiped)
	switch {
	case !hasPipe && !hasUnpiped:
		return
	case !hasPipe:
		st.d.errorf(unpRng, "unpiped_importance in the sequence of %s needs a pipe = \"%s | %s\"", what, q.Steps[0].Name, q.Steps[1].Name)
		return
	case !hasUnpiped:
		st.d.errorf(pipeRng, "the pipe of the sequence of %s needs an unpiped_importance: the importance when its steps share no pipe", what)
		return
	}
	from, to, ok := strings.Cut(pipe, "|")
	from, to = strings.TrimSpace(from), strings.TrimSpace(to)
	names := []string{q.Steps[0].Name, q.Steps[1].Name}
	if !ok || from == to || !contains(names, from) || !contains(names, to) {
		st.d.errorf(pipeRng, "pipe %q of the sequence of %s: want \"%s | %s\" or \"%s | %s\", the step that writes first", pipe, what, names[0], names[1], names[1], names[0])
		return
	}
	imp, ok := detect.ParseImportance(unpiped)
	if !ok {
		st.d.errorf(unpRng, "unknown importance %q%s", unpiped, didYouMean(unpiped, importances(), "use info, low, medium, high or critical"))
		return
	}
	q.Pipe = &detect.PipeSpec{From: from, To: to, Unpiped: imp}
}

var throttlePers = []string{"parent_pid", "parent_exe", "ancestry", "host"}

func (st *state) throttle(blk *hclsyntax.Block, what string) (detect.ThrottleSpec, bool) {
	if !st.d.labels(blk) {
		return detect.ThrottleSpec{}, false
	}
	b := st.d.body(blk, "throttle of "+what)
	th := detect.ThrottleSpec{}
	b.Require("per")
	b.Require("window")
	b.oneOf("per", &th.Per, throttlePers)
	// max is how many identical repeats are raised before the rest
	// coalesce; a new command is always raised (detect/throttle.go).
	th.Max = 1
	if n, ok := b.Int("max", 1, math.MaxInt32); ok {
		th.Max = int(n)
	}
	b.Duration("window", &th.Window, time.Second, 24*time.Hour)
	b.Done()
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
	for _, a := range hclbody.SortedAttrs(blk.Body) {
		if !isWord(a.Name, 64, false) {
			st.d.errorf(a.NameRange, "environment %q must be one word of lowercase letters, digits, \"-\" or \"_\"", a.Name)
			continue
		}
		var list []string
		if _, ok := b.Strings(a.Name, &list); ok {
			out[a.Name] = list
		}
	}
	b.Done()
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
	b.Require("reason")
	if rng, ok := b.String("reason", &spec.Reason); ok && strings.TrimSpace(spec.Reason) == "" {
		st.d.errorf(rng, "reason must say why the exec is allowed")
	}
	sigRanges, _ := b.Strings("signatures", &spec.Signatures)
	var condsOK bool
	spec.Conditions, condsOK = b.conditions(st.table)
	b.Done()
	if condsOK && st.table.Empty(spec.Conditions) {
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
	b.String("cwd", &t.Cwd)
	t.expectRanges, _ = b.Strings("expect", &t.Expect)
	notRanges, _ := b.Strings("expect_not", &t.ExpectNot)
	t.expectRanges = append(t.expectRanges, notRanges...)
	b.Done()
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
	rng, isStr := b.String(strName, &line)
	_, isList := b.Strings(listName, &argv)
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
			b.d.errorf(b.Syntax().Attributes[listName].Expr.Range(), "%s is empty", listName)
		}
		return argv
	case required:
		b.d.errorf(b.DefRange(), "%s needs attribute %q (or %q)", what, strName, listName)
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
