package sink

import (
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Body decodes the attributes of one sink block (or of a block nested in
// it, such as tls or spool). Its schema is declared by reading it: every
// attribute a decoder asks for becomes known, and what the block holds
// beyond that is reported when decoding ends, with a "did you mean"
// suggestion for a misspelt name. Problems are collected as diagnostics
// carrying the file:line:col of the offending value, so that one run
// reports every one.
type Body struct {
	diags    *hcl.Diagnostics
	b        *hclsyntax.Body
	what     string // `sink "siem"`, for messages
	def      hcl.Range
	known    []string
	required []string
	blocks   []string // nested block types handled by the caller
}

func newBody(diags *hcl.Diagnostics, b *hclsyntax.Body, what string, def hcl.Range) *Body {
	return &Body{diags: diags, b: b, what: what, def: def}
}

// Errorf reports a problem at rng.
func (b *Body) Errorf(rng hcl.Range, format string, args ...any) {
	*b.diags = append(*b.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf(format, args...),
		Subject:  &rng,
	})
}

// Require makes the block invalid without attribute name.
func (b *Body) Require(name string) { b.required = append(b.required, name) }

// value returns the named attribute and its value; ok is false when it is
// absent, null or failed to evaluate (which is reported).
func (b *Body) value(name string) (a *hclsyntax.Attribute, v cty.Value, ok bool) {
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
	a, v, ok := b.value(name)
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

// Bool decodes a boolean attribute.
func (b *Body) Bool(name string, dst *bool) {
	a, v, ok := b.value(name)
	if !ok {
		return
	}
	if v.Type() != cty.Bool {
		b.Errorf(a.Expr.Range(), "%s must be a bool, got %s", name, v.Type().FriendlyName())
		return
	}
	*dst = v.True()
}

// Int decodes a whole number within [lo, hi].
func (b *Body) Int(name string, lo, hi int64) (int64, bool) {
	a, v, ok := b.value(name)
	if !ok {
		return 0, false
	}
	if v.Type() != cty.Number {
		b.Errorf(a.Expr.Range(), "%s must be a number, got %s", name, v.Type().FriendlyName())
		return 0, false
	}
	f := v.AsBigFloat()
	n, acc := f.Int64()
	if !f.IsInt() || acc != big.Exact || n < lo || n > hi {
		b.Errorf(a.Expr.Range(), "%s must be a whole number from %d to %d", name, lo, hi)
		return 0, false
	}
	return n, true
}

// Duration decodes a Go duration string ("20ms", "2s") within [lo, hi].
func (b *Body) Duration(name string, dst *time.Duration, lo, hi time.Duration) {
	var s string
	rng, ok := b.String(name, &s)
	if !ok {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		b.Errorf(rng, "bad duration %q for %s; write a number and a unit, e.g. \"20ms\" or \"2s\"", s, name)
		return
	}
	if d < lo || d > hi {
		b.Errorf(rng, "%s must be from %s to %s, got %s", name, lo, hi, d)
		return
	}
	*dst = d
}

// Word decodes a string attribute that must be one of words.
func (b *Body) Word(name string, dst *string, words ...string) {
	var v string
	rng, ok := b.String(name, &v)
	if !ok {
		return
	}
	if !slices.Contains(words, v) {
		b.Errorf(rng, "unknown %s %q%s", name, v, didYouMean(v, words))
		return
	}
	*dst = v
}

// AbsPath decodes an absolute file path.
func (b *Body) AbsPath(name string, dst *string) {
	var v string
	rng, ok := b.String(name, &v)
	if !ok {
		return
	}
	if !filepath.IsAbs(v) || strings.ContainsRune(v, 0) {
		b.Errorf(rng, "%s: path %q must be absolute", name, v)
		return
	}
	*dst = v
}

// FileMode decodes octal permission bits that do not let others write.
func (b *Body) FileMode(name string, dst *os.FileMode) {
	var v string
	rng, ok := b.String(name, &v)
	if !ok {
		return
	}
	m, err := strconv.ParseUint(v, 8, 32)
	switch {
	case err != nil || m > 0o777:
		b.Errorf(rng, "%s %q must be octal permission bits, e.g. \"0600\"", name, v)
	case m&0o002 != 0:
		// Anyone could rewrite the alert record.
		b.Errorf(rng, "%s %q must not let others write the alerts file", name, v)
	default:
		*dst = os.FileMode(m)
	}
}

// StringMap decodes an object of string values, such as HTTP headers.
func (b *Body) StringMap(name string, dst *map[string]string) {
	a, v, ok := b.value(name)
	if !ok {
		return
	}
	t := v.Type()
	if !t.IsObjectType() && !t.IsMapType() {
		b.Errorf(a.Expr.Range(), "%s must be an object of strings, e.g. { \"X-Env\" = \"prod\" }", name)
		return
	}
	out := make(map[string]string)
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		if ev.IsNull() || ev.Type() != cty.String {
			b.Errorf(a.Expr.Range(), "%s[%q] must be a string", name, k.AsString())
			return
		}
		out[k.AsString()] = ev.AsString()
	}
	*dst = out
}

// block returns the body of the nested block typ, if the block has one,
// and makes typ a known block. A second block of that type is reported.
func (b *Body) block(typ string) *Body {
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
		found = newBody(b.diags, nb.Body, fmt.Sprintf("%s block of %s", typ, b.what), nb.TypeRange)
	}
	return found
}

// done reports the attributes and blocks nobody asked for, and the
// required attributes that are missing.
func (b *Body) done() {
	var suggested []string
	for _, a := range sortedAttrs(b.b) {
		if slices.Contains(b.known, a.Name) {
			continue
		}
		if s := suggest(a.Name, b.known); s != "" {
			b.Errorf(a.NameRange, "unknown attribute %q; did you mean %q?", a.Name, s)
			suggested = append(suggested, s)
		} else if slices.Contains(b.blocks, a.Name) {
			b.Errorf(a.NameRange, "%q is a block, not an attribute: write %s { ... }", a.Name, a.Name)
		} else {
			b.Errorf(a.NameRange, "unknown attribute %q in %s", a.Name, b.what)
		}
	}
	for _, blk := range b.b.Blocks {
		switch {
		case slices.Contains(b.blocks, blk.Type):
		case suggest(blk.Type, b.blocks) != "":
			b.Errorf(blk.TypeRange, "unknown block %q; did you mean %q?", blk.Type, suggest(blk.Type, b.blocks))
		case slices.Contains(b.known, blk.Type):
			b.Errorf(blk.TypeRange, "%q is an attribute, not a block: write %s = ...", blk.Type, blk.Type)
		default:
			b.Errorf(blk.TypeRange, "unknown block %q in %s", blk.Type, b.what)
		}
	}
	for _, name := range b.required {
		// A misspelt required attribute was reported above, once is enough.
		if _, ok := b.b.Attributes[name]; !ok && !slices.Contains(suggested, name) {
			b.Errorf(b.def, "%s needs attribute %q", b.what, name)
		}
	}
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

// didYouMean is the end of a message about an unknown word: a suggestion,
// or the list of words.
func didYouMean(given string, words []string) string {
	if s := suggest(given, words); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return "; use " + strings.Join(words, ", ")
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
