package config

import (
	"fmt"
	"math"
	"math/big"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// decoder collects diagnostics while a policy is decoded, so that one run
// reports every problem rather than the first.
type decoder struct {
	diags hcl.Diagnostics
}

func (d *decoder) errorf(rng hcl.Range, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf(format, args...),
		Subject:  &rng,
	})
}

// body decodes one block body. Its schema is declared by reading it: every
// attribute asked for becomes known, and done reports whatever the body
// holds beyond that, with a suggestion for a misspelt name.
type body struct {
	d     *decoder
	b     *hclsyntax.Body
	what  string // `signature "enc"`, for messages
	def   hcl.Range
	known []string
	// required are the attributes that must be present, checked by done.
	required []string
}

// body starts decoding the body of blk; what names it in messages.
func (d *decoder) body(blk *hclsyntax.Block, what string) *body {
	return &body{d: d, b: blk.Body, what: what, def: blk.TypeRange}
}

// value returns the named attribute and its value; ok is false when it is
// absent, null or failed to evaluate (which is reported).
func (b *body) value(name string) (a *hclsyntax.Attribute, v cty.Value, ok bool) {
	b.known = append(b.known, name)
	a, present := b.b.Attributes[name]
	if !present {
		return nil, cty.NilVal, false
	}
	// No variables and no functions: a policy is plain data.
	v, diags := a.Expr.Value(nil)
	b.d.diags = append(b.d.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return a, v, false
	}
	if !v.IsWhollyKnown() {
		b.d.errorf(a.Expr.Range(), "%s must be a constant", name)
		return a, v, false
	}
	return a, v, true
}

// require makes done report name if the body lacks it.
func (b *body) require(name string) {
	b.required = append(b.required, name)
}

// str decodes a string attribute into dst; it returns the value's range and
// whether the attribute was set.
func (b *body) str(name string, dst *string) (hcl.Range, bool) {
	a, v, ok := b.value(name)
	if !ok {
		return hcl.Range{}, false
	}
	if v.Type() != cty.String {
		b.d.errorf(a.Expr.Range(), "%s must be a string, got %s", name, v.Type().FriendlyName())
		return hcl.Range{}, false
	}
	*dst = v.AsString()
	return a.Expr.Range(), true
}

// boolean decodes a bool attribute into dst and reports whether it was set.
func (b *body) boolean(name string, dst *bool) bool {
	a, v, ok := b.value(name)
	if !ok {
		return false
	}
	if v.Type() != cty.Bool {
		b.d.errorf(a.Expr.Range(), "%s must be a bool, got %s", name, v.Type().FriendlyName())
		return false
	}
	*dst = v.True()
	return true
}

// integer decodes a whole number within [lo, hi].
func (b *body) integer(name string, lo, hi int64) (int64, bool) {
	a, v, ok := b.value(name)
	if !ok {
		return 0, false
	}
	if v.Type() != cty.Number {
		b.d.errorf(a.Expr.Range(), "%s must be a number, got %s", name, v.Type().FriendlyName())
		return 0, false
	}
	f := v.AsBigFloat()
	n, acc := f.Int64()
	if !f.IsInt() || acc != big.Exact || n < lo || n > hi {
		b.d.errorf(a.Expr.Range(), "%s must be a whole number from %d to %d", name, lo, hi)
		return 0, false
	}
	return n, true
}

func (b *body) uint32(name string, dst *uint32) bool {
	n, ok := b.integer(name, 0, math.MaxUint32)
	if ok {
		*dst = uint32(n)
	}
	return ok
}

// duration decodes a Go duration string ("20ms", "2s") within [lo, hi].
func (b *body) duration(name string, dst *time.Duration, lo, hi time.Duration) {
	var s string
	rng, ok := b.str(name, &s)
	if !ok {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		b.d.errorf(rng, "bad duration %q for %s; write a number and a unit, e.g. \"20ms\" or \"2s\"", s, name)
		return
	}
	if d < lo || d > hi {
		b.d.errorf(rng, "%s must be from %s to %s, got %s", name, lo, hi, d)
		return
	}
	*dst = d
}

// strings decodes a list of strings; it returns the range of each element,
// for messages about one of them, and whether the attribute was set.
func (b *body) strings(name string, dst *[]string) ([]hcl.Range, bool) {
	a, v, ok := b.value(name)
	if !ok {
		return nil, false
	}
	t := v.Type()
	if !t.IsTupleType() && !t.IsListType() && !t.IsSetType() {
		b.d.errorf(a.Expr.Range(), "%s must be a list of strings, got %s", name, t.FriendlyName())
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
			b.d.errorf(rng, "%s must be a list of strings, got %s at index %d", name, ev.Type().FriendlyName(), i)
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

// done reports the attributes and blocks nobody asked for. blocks lists the
// nested block types the caller handles itself.
func (b *body) done(blocks ...string) {
	var suggested []string
	for _, a := range sortedAttrs(b.b) {
		if contains(b.known, a.Name) {
			continue
		}
		if s := suggest(a.Name, b.known); s != "" {
			b.d.errorf(a.NameRange, "unknown attribute %q; did you mean %q?", a.Name, s)
			suggested = append(suggested, s)
		} else if contains(blocks, a.Name) {
			b.d.errorf(a.NameRange, "%q is a block, not an attribute: write %s { ... }", a.Name, a.Name)
		} else {
			b.d.errorf(a.NameRange, "unknown attribute %q in %s", a.Name, b.what)
		}
	}
	for _, blk := range b.b.Blocks {
		if !contains(blocks, blk.Type) {
			b.d.unknownBlock(blk, b.what, blocks, b.known)
		}
	}
	for _, name := range b.required {
		// A misspelt required attribute was reported above, once is enough.
		if _, ok := b.b.Attributes[name]; !ok && !contains(suggested, name) {
			b.d.errorf(b.def, "%s needs attribute %q", b.what, name)
		}
	}
}

func (d *decoder) unknownBlock(blk *hclsyntax.Block, where string, blocks, attrs []string) {
	switch {
	case suggest(blk.Type, blocks) != "":
		d.errorf(blk.TypeRange, "unknown block %q; did you mean %q?", blk.Type, suggest(blk.Type, blocks))
	case contains(attrs, blk.Type):
		d.errorf(blk.TypeRange, "%q is an attribute, not a block: write %s = ...", blk.Type, blk.Type)
	default:
		d.errorf(blk.TypeRange, "unknown block %q in %s", blk.Type, where)
	}
}

// labels checks that blk has the labels named by want ("name" and the like),
// and reports otherwise.
func (d *decoder) labels(blk *hclsyntax.Block, want ...string) bool {
	if len(blk.Labels) == len(want) {
		return true
	}
	rng := blk.TypeRange
	if len(blk.Labels) > len(want) {
		rng = blk.LabelRanges[len(want)]
	}
	switch len(want) {
	case 0:
		d.errorf(rng, "%s block takes no labels", blk.Type)
	case 1:
		d.errorf(rng, "%s block needs 1 label, its %s, got %d", blk.Type, want[0], len(blk.Labels))
	default:
		d.errorf(rng, "%s block needs %d labels, %s, got %d", blk.Type, len(want), strings.Join(want, " and "), len(blk.Labels))
	}
	return false
}

// suggest returns the candidate closest to given, if it is close enough to
// be a misspelling (the same threshold as hcl's own suggestions).
func suggest(given string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

// at formats a position for "first defined at" messages.
func at(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// sortedAttrs returns b's attributes in source order, so that messages come
// out in the order a reader meets them.
func sortedAttrs(b *hclsyntax.Body) []*hclsyntax.Attribute {
	attrs := make([]*hclsyntax.Attribute, 0, len(b.Attributes))
	for _, a := range b.Attributes {
		attrs = append(attrs, a)
	}
	slices.SortFunc(attrs, func(x, y *hclsyntax.Attribute) int { return x.NameRange.Start.Byte - y.NameRange.Start.Byte })
	return attrs
}

// checkAbsPath returns a message when s is not an absolute path, else "".
func checkAbsPath(s string) string {
	if !filepath.IsAbs(s) || strings.ContainsRune(s, 0) {
		return fmt.Sprintf("path %q must be absolute", s)
	}
	return ""
}
