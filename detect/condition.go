package detect

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Conditions is what an exec must look like for a signature, a sequence step
// or an allow block to apply: values keyed by the HCL attribute of an entry
// of the table of conditions ("executables": []string{"base64"}, "mode":
// "decode"). Every condition that is set must hold; a list holds when any of
// its entries does. A nil or empty Conditions matches every exec. Each
// entry's Type says which Go type its value has.
type Conditions map[string]any

// ValueType is the Go type of a condition's value in Conditions, and the HCL
// type of its attribute.
type ValueType int

// Value types.
const (
	// Strings is a []string: a list of strings in HCL.
	Strings ValueType = iota
	// String is a string.
	String
	// Int is an int: a whole number within [Min, Max] in HCL.
	Int
	// Bool is a bool.
	Bool
	// Uint32s is a []uint32: a list of whole numbers (uids) in HCL.
	Uint32s
)

// ValueCheck is what every string of a condition's value must be.
type ValueCheck int

// Value checks.
const (
	// AnyString takes any string.
	AnyString ValueCheck = iota
	// FileName takes a basename: no directory, not "." or "..".
	FileName
	// Glob takes a path.Match pattern.
	Glob
	// Regex takes a regular expression (regexp syntax).
	Regex
	// OneOf takes one of the condition's Allowed words.
	OneOf
)

// Cost orders a condition's predicate among the others of a signature:
// cheaper ones run first, so that an exec that fails a field comparison
// never costs a regular expression, an ancestry lookup or a file hash.
type Cost int

// Costs, cheapest first.
const (
	// CostCompare compares a field of the event.
	CostCompare Cost = iota
	// CostScan looks names, flags or globs up in a list.
	CostScan
	// CostRegex runs a regular expression.
	CostRegex
	// CostAncestry looks the process's ancestors up (a cache, or /proc).
	CostAncestry
	// CostPayload decodes the inline blobs and code of the command line.
	CostPayload
	// CostIdentity identifies the executed file (device and inode, or a
	// content hash through the engine's Files).
	CostIdentity
)

// Condition is one entry of the table of conditions: everything the config
// package needs to decode it from HCL and this package needs to compile it.
type Condition struct {
	// Attr is the condition's name: its HCL attribute and its key in
	// Conditions.
	Attr string
	// Noun names one value in messages ("executable").
	Noun string
	// Type is the value's type.
	Type ValueType
	// Check is what each string of the value must be; Allowed lists the
	// words OneOf takes.
	Check   ValueCheck
	Allowed []string
	// Min and Max bound an Int. Zero means unset in Conditions, whatever
	// Min says.
	Min, Max int
	// NonEmpty refuses an empty list in a policy: the signature could
	// never match.
	NonEmpty bool
	// Needs names the condition this one modifies; alone it means nothing
	// and is refused.
	Needs string
	// Cost orders the predicate among the others.
	Cost Cost
	// Compile turns the value v (already checked against Type, Check,
	// Allowed, Min and Max) into a predicate; c holds the block's other
	// conditions, for a value that modifies another. A nil predicate asks
	// nothing of the exec (an empty list, false). Compile is nil for a
	// condition that only modifies the one it Needs.
	Compile func(v any, c Conditions) (*Predicate, error)
}

// Predicate is a compiled condition.
type Predicate struct {
	// Holds reports whether the exec meets the condition.
	Holds func(x *Exec) bool
	// Explain appends why the condition held to ms, for the alert; nil
	// when the condition gives no reason of its own (uid, success, ...).
	// It is called only when every condition of the block held, maybe
	// after other blocks' predicates ran, so it looks up nothing (an
	// ancestry, a file identity) that Holds did not.
	Explain func(x *Exec, ms []Match) []Match
}

// Table is a table of conditions, in the order in which match reasons are
// given. Builtin returns encwatch's own.
type Table []Condition

// Builtin returns a copy of the table of conditions encwatch's policies use.
func Builtin() Table { return slices.Clone(builtin) }

// Lookup returns the entry named attr.
func (t Table) Lookup(attr string) (*Condition, bool) {
	for i := range t {
		if t[i].Attr == attr {
			return &t[i], true
		}
	}
	return nil, false
}

// Attrs returns the attribute names of the table, in its order.
func (t Table) Attrs() []string {
	out := make([]string, len(t))
	for i := range t {
		out[i] = t[i].Attr
	}
	return out
}

// ConditionError says why a condition's value is refused.
type ConditionError struct {
	// Attr is the condition.
	Attr string
	// Index is the element of a list at fault, or -1 for the whole value.
	Index int
	// Value is the string at fault, when there is one.
	Value string
	// Check is the check the value failed (AnyString for other problems).
	Check ValueCheck
	// Err is the reason: the regexp or glob error, or a sentence.
	Err error

	noun string
}

// Error says what is wrong in the words Compile's errors use.
func (e *ConditionError) Error() string {
	switch e.Check {
	case FileName:
		return fmt.Sprintf("%s %q is not a file name", e.noun, e.Value)
	case Glob:
		return fmt.Sprintf("bad glob %q: %v", e.Value, e.Err)
	case Regex:
		return fmt.Sprintf("bad regular expression %q: %v", e.Value, e.Err)
	case OneOf:
		return fmt.Sprintf("%s %q: %v", e.noun, e.Value, e.Err)
	}
	return e.Attr + " " + e.Err.Error()
}

// Unwrap returns the reason.
func (e *ConditionError) Unwrap() error { return e.Err }

var errNotFileName = errors.New("not a file name")

// CheckValue reports why s cannot be one string of e's value.
func (e *Condition) CheckValue(s string) error {
	switch e.Check {
	case FileName:
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
			return errNotFileName
		}
	case Glob:
		_, err := path.Match(s, "")
		return err
	case Regex:
		_, err := regexp.Compile(s)
		return err
	case OneOf:
		if !slices.Contains(e.Allowed, s) {
			return fmt.Errorf("want one of %s", strings.Join(e.Allowed, ", "))
		}
	}
	return nil
}

// Check reports every problem with c's values, in table order: unknown
// names, values of the wrong type or out of range, conditions set without
// the one they modify, and whatever an entry's Compile refuses. Conditions
// that Check passes compile.
func (t Table) Check(c Conditions) []*ConditionError {
	_, errs := t.compile(c)
	return errs
}

// Empty reports whether c asks nothing of an exec: no condition compiles to
// a predicate (or c is refused; Check says why).
func (t Table) Empty(c Conditions) bool {
	cc, errs := t.compile(c)
	return len(errs) == 0 && len(cc.checks) == 0
}

// check reports what is wrong with v as the value of e.
func (e *Condition) check(v any) *ConditionError {
	bad := func(i int, s string, err error) *ConditionError {
		ch := e.Check
		if i < 0 {
			ch = AnyString
		}
		return &ConditionError{Attr: e.Attr, Index: i, Value: s, Check: ch, Err: err, noun: e.Noun}
	}
	var strs []string
	switch e.Type {
	case Strings:
		l, ok := v.([]string)
		if !ok {
			return bad(-1, "", fmt.Errorf("must be a []string, got %T", v))
		}
		strs = l
	case String:
		s, ok := v.(string)
		if !ok {
			return bad(-1, "", fmt.Errorf("must be a string, got %T", v))
		}
		if s != "" {
			strs = []string{s}
		}
	case Int:
		n, ok := v.(int)
		if !ok {
			return bad(-1, "", fmt.Errorf("must be an int, got %T", v))
		}
		if n != 0 && (n < e.Min || n > e.Max) {
			return bad(-1, "", fmt.Errorf("must be from %d to %d, got %d", e.Min, e.Max, n))
		}
	case Bool:
		if _, ok := v.(bool); !ok {
			return bad(-1, "", fmt.Errorf("must be a bool, got %T", v))
		}
	case Uint32s:
		if _, ok := v.([]uint32); !ok {
			return bad(-1, "", fmt.Errorf("must be a []uint32, got %T", v))
		}
	}
	for i, s := range strs {
		if err := e.CheckValue(s); err != nil {
			return bad(i, s, err)
		}
	}
	return nil
}

// compile checks c and compiles it; on errors the cond is partial.
func (t Table) compile(c Conditions) (*cond, []*ConditionError) {
	cc := &cond{}
	var errs []*ConditionError
	for _, k := range slices.Sorted(maps.Keys(c)) {
		if _, ok := t.Lookup(k); !ok {
			errs = append(errs, &ConditionError{Attr: k, Index: -1, Err: errors.New("is not a condition")})
		}
	}
	for i := range t {
		e := &t[i]
		v, set := c[e.Attr]
		if !set {
			continue
		}
		if err := e.check(v); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, ok := c[e.Needs]; e.Needs != "" && !ok {
			errs = append(errs, &ConditionError{Attr: e.Attr, Index: -1,
				Err: fmt.Errorf("needs %s in the same block: alone it means nothing", e.Needs)})
			continue
		}
		if e.Compile == nil {
			continue
		}
		p, err := e.Compile(v, c)
		if err == nil && p != nil && p.Holds == nil {
			err = errors.New("compiles to a predicate without Holds")
		}
		if err != nil {
			errs = append(errs, &ConditionError{Attr: e.Attr, Index: -1, Err: err})
			continue
		}
		if p != nil {
			cc.checks = append(cc.checks, check{cost: e.Cost, Predicate: *p})
		}
	}
	for _, ch := range cc.checks {
		if ch.Explain != nil {
			cc.reasons = append(cc.reasons, ch)
		}
	}
	slices.SortStableFunc(cc.checks, func(a, b check) int { return cmp.Compare(a.cost, b.cost) })
	return cc, errs
}

// check is a predicate and its cost.
type check struct {
	cost Cost
	Predicate
}
