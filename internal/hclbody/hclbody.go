// Package hclbody decodes the attributes of one HCL block body into Go
// values, collecting every problem as a diagnostic at the position of the
// offending value. Both the policy (internal/config) and the sink blocks
// (internal/sink) are decoded with it, so that a misspelt name or a value
// of the wrong type is reported in the same words wherever it is written.
package hclbody

import (
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Body decodes one block body. Its schema is declared by reading it: every
// attribute a decoder asks for becomes known, and Done reports whatever the
// body holds beyond that, with a "did you mean" suggestion for a misspelt
// name.
type Body struct {
	diags    *hcl.Diagnostics
	b        *hclsyntax.Body
	what     string // `sink "siem"`, for messages
	def      hcl.Range
	known    []string
	required []string
	blocks   []string // nested block types handled by the caller
}

// New starts decoding b, whose problems are appended to diags; what names
// the block in messages and def is where it is defined.
func New(diags *hcl.Diagnostics, b *hclsyntax.Body, what string, def hcl.Range) *Body {
	return &Body{diags: diags, b: b, what: what, def: def}
}

// Syntax returns the body being decoded.
func (b *Body) Syntax() *hclsyntax.Body { return b.b }

// What returns the name of the block in messages.
func (b *Body) What() string { return b.what }

// DefRange returns where the block is defined.
func (b *Body) DefRange() hcl.Range { return b.def }

// Errorf reports a problem at rng.
func (b *Body) Errorf(rng hcl.Range, format string, args ...any) {
	Errorf(b.diags, rng, format, args...)
}

// Errorf appends an error diagnostic at rng to diags.
func Errorf(diags *hcl.Diagnostics, rng hcl.Range, format string, args ...any) {
	*diags = append(*diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf(format, args...),
		Subject:  &rng,
	})
}

// Require makes Done report name if the body lacks it.
func (b *Body) Require(name string) { b.required = append(b.required, name) }

// Value returns the named attribute and its value; ok is false when it is
// absent, null or failed to evaluate (which is reported).
func (b *Body) Value(name string) (a *hclsyntax.Attribute, v cty.Value, ok bool) {
	b.known = append(b.known, name)
	a, present := b.b.Attributes[name]
	if !present {
		return nil, cty.NilVal, false
	}
	// No variables and no functions: a policy is plain data.
	v, diags := a.Expr.Value(nil)
	*b.diags = append(*b.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return a, v, false
	}
	if !v.IsWhollyKnown() {
		b.Errorf(a.Expr.Range(), "%s must be a constant", name)
		return a, v, false
	}
	return a, v, true
}

// String decodes a string attribute into dst; it returns the value's range
// and whether the attribute was set.
func (b *Body) String(name string, dst *string) (hcl.Range, bool) {
	a, v, ok := b.Value(name)
	if !ok {
		return hcl.Range{}, false
	}
	if v.Type() != cty.String {
		b.Errorf(a.Expr.Range(), "%s must be a string, got %s", name, v.Type().FriendlyName())
		return hcl.Range{}, false
	}
	*dst = v.AsString()
	return a.Expr.Range(), true
}

// AbsPath decodes an absolute file path.
func (b *Body) AbsPath(name string, dst *string) {
	var v string
	rng, ok := b.String(name, &v)
	if !ok {
		return
	}
	if msg := CheckAbsPath(v); msg != "" {
		b.Errorf(rng, "%s: %s", name, msg)
		return
	}
	*dst = v
}

// Bool decodes a bool attribute into dst and reports whether it was set.
func (b *Body) Bool(name string, dst *bool) bool {
	a, v, ok := b.Value(name)
	if !ok {
		return false
	}
	if v.Type() != cty.Bool {
		b.Errorf(a.Expr.Range(), "%s must be a bool, got %s", name, v.Type().FriendlyName())
		return false
	}
	*dst = v.True()
	return true
}

// number decodes a numeric attribute; n is its value when it is a whole
// number that fits an int64, and whole says whether it is.
func (b *Body) number(name string) (rng hcl.Range, n int64, whole, ok bool) {
	a, v, ok := b.Value(name)
	if !ok {
		return hcl.Range{}, 0, false, false
	}
	if v.Type() != cty.Number {
		b.Errorf(a.Expr.Range(), "%s must be a number, got %s", name, v.Type().FriendlyName())
		return hcl.Range{}, 0, false, false
	}
	f := v.AsBigFloat()
	n, acc := f.Int64()
	return a.Expr.Range(), n, f.IsInt() && acc == big.Exact, true
}

// Int decodes a whole number within [lo, hi].
func (b *Body) Int(name string, lo, hi int64) (int64, bool) {
	rng, n, whole, ok := b.number(name)
	if !ok {
		return 0, false
	}
	if !whole || n < lo || n > hi {
		b.Errorf(rng, "%s must be a whole number from %d to %d", name, lo, hi)
		return 0, false
	}
	return n, true
}

// CheckedInt decodes a whole number and checks it with check, the
// validator of the package that owns the setting.
func (b *Body) CheckedInt(name string, check func(int64) error) (int64, bool) {
	rng, n, whole, ok := b.number(name)
	if !ok {
		return 0, false
	}
	if !whole {
		b.Errorf(rng, "%s must be a whole number", name)
		return 0, false
	}
	if err := check(n); err != nil {
		b.Errorf(rng, "%v", err)
		return 0, false
	}
	return n, true
}

// duration decodes a Go duration string.
func (b *Body) duration(name string) (hcl.Range, time.Duration, bool) {
	var s string
	rng, ok := b.String(name, &s)
	if !ok {
		return rng, 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		b.Errorf(rng, "bad duration %q for %s; write a number and a unit, e.g. \"20ms\" or \"2s\"", s, name)
		return rng, 0, false
	}
	return rng, d, true
}

// Duration decodes a Go duration string ("20ms", "2s") within [lo, hi].
func (b *Body) Duration(name string, dst *time.Duration, lo, hi time.Duration) {
	rng, d, ok := b.duration(name)
	if !ok {
		return
	}
	if d < lo || d > hi {
		b.Errorf(rng, "%s must be from %s to %s, got %s", name, lo, hi, d)
		return
	}
	*dst = d
}

// CheckedDuration decodes a Go duration string ("20ms", "2s") and checks
// it with check, the validator of the package that owns the setting.
func (b *Body) CheckedDuration(name string, dst *time.Duration, check func(time.Duration) error) {
	rng, d, ok := b.duration(name)
	if !ok {
		return
	}
	if err := check(d); err != nil {
		b.Errorf(rng, "%v", err)
		return
	}
	*dst = d
}

// Strings decodes a list of strings; it returns the range of each element,
// for messages about one of them, and whether the attribute was set.
func (b *Body) Strings(name string, dst *[]string) ([]hcl.Range, bool) {
	a, v, ok := b.Value(name)
	if !ok {
		return nil, false
	}
	t := v.Type()
	if !t.IsTupleType() && !t.IsListType() && !t.IsSetType() {
		b.Errorf(a.Expr.Range(), "%s must be a list of strings, got %s", name, t.FriendlyName())
		return nil, false
	}
	var elems []hclsyntax.Expression
	if tuple, isTuple := a.Expr.(*hclsyntax.TupleConsExpr); isTuple {
		elems = tuple.Exprs
	}
	var out []string
	var ranges []hcl.Range
	i := 0
	bad := false
	for it := v.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		rng := a.Expr.Range()
		if i < len(elems) {
			rng = elems[i].Range()
		}
		if ev.IsNull() || ev.Type() != cty.String {
			b.Errorf(rng, "%s must be a list of strings, got %s at index %d", name, ev.Type().FriendlyName(), i)
			bad = true
			continue
		}
		out = append(out, ev.AsString())
		ranges = append(ranges, rng)
	}
	if bad {
		return nil, false
	}
	*dst = out
	return ranges, true
}

// Nested starts decoding blk, a block nested in b's body that the caller
// handles itself, its problems collected with b's; what names it in
// messages.
func (b *Body) Nested(blk *hclsyntax.Block, what string) *Body {
	return New(b.diags, blk.Body, what, blk.TypeRange)
}

// Block returns the body of the nested block typ, if the block has one,
// and makes typ a known block. A second block of that type is reported.
func (b *Body) Block(typ string) *Body {
	b.blocks = append(b.blocks, typ)
	var found *Body
	for _, nb := range b.b.Blocks {
		if nb.Type != typ {
			continue
		}
		if found != nil {
			b.Errorf(nb.TypeRange, "more than one %s block in %s", typ, b.what)
			continue
		}
		if len(nb.Labels) > 0 {
			b.Errorf(nb.LabelRanges[0], "%s block takes no labels", typ)
			continue
		}
		found = New(b.diags, nb.Body, fmt.Sprintf("%s block of %s", typ, b.what), nb.TypeRange)
	}
	return found
}

// Done reports the attributes and blocks nobody asked for, and the
// required attributes that are missing. blocks lists the nested block
// types the caller handles itself, beyond those asked for with Block.
func (b *Body) Done(blocks ...string) {
	blocks = append(slices.Clone(b.blocks), blocks...)
	var suggested []string
	for _, a := range SortedAttrs(b.b) {
		if slices.Contains(b.known, a.Name) {
			continue
		}
		if s := Suggest(a.Name, b.known); s != "" {
			b.Errorf(a.NameRange, "unknown attribute %q; did you mean %q?", a.Name, s)
			suggested = append(suggested, s)
		} else if slices.Contains(blocks, a.Name) {
			b.Errorf(a.NameRange, "%q is a block, not an attribute: write %s { ... }", a.Name, a.Name)
		} else {
			b.Errorf(a.NameRange, "unknown attribute %q in %s", a.Name, b.what)
		}
	}
	for _, blk := range b.b.Blocks {
		if !slices.Contains(blocks, blk.Type) {
			UnknownBlock(b.diags, blk, b.what, blocks, b.known)
		}
	}
	for _, name := range b.required {
		// A misspelt required attribute was reported above, once is enough.
		if _, ok := b.b.Attributes[name]; !ok && !slices.Contains(suggested, name) {
			b.Errorf(b.def, "%s needs attribute %q", b.what, name)
		}
	}
}

// UnknownBlock reports blk, which is not one of blocks, found in where:
// with a suggestion for a misspelt block type, or as an attribute written
// as a block when attrs holds its type.
func UnknownBlock(diags *hcl.Diagnostics, blk *hclsyntax.Block, where string, blocks, attrs []string) {
	switch {
	case Suggest(blk.Type, blocks) != "":
		Errorf(diags, blk.TypeRange, "unknown block %q; did you mean %q?", blk.Type, Suggest(blk.Type, blocks))
	case slices.Contains(attrs, blk.Type):
		Errorf(diags, blk.TypeRange, "%q is an attribute, not a block: write %s = ...", blk.Type, blk.Type)
	default:
		Errorf(diags, blk.TypeRange, "unknown block %q in %s", blk.Type, where)
	}
}
