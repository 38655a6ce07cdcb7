package sink

import (
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/encwatch/encwatch/internal/hclbody"
)

// Body decodes the attributes of one sink block (or of a block nested in
// it, such as tls or spool). Its schema is declared by reading it: every
// attribute a decoder asks for becomes known, and what the block holds
// beyond that is reported when decoding ends, with a "did you mean"
// suggestion for a misspelt name. Problems are collected as diagnostics
// carrying the file:line:col of the offending value, so that one run
// reports every one. The decoders shared with the policy (String, Bool,
// Int, Duration, ...) come from hclbody.Body.
type Body struct {
	*hclbody.Body
}

func newBody(diags *hcl.Diagnostics, b *hclsyntax.Body, what string, def hcl.Range) *Body {
	return &Body{hclbody.New(diags, b, what, def)}
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
	a, v, ok := b.Value(name)
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
	nb := b.Block(typ)
	if nb == nil {
		return nil
	}
	return &Body{nb}
}

// didYouMean is the end of a message about an unknown word: a suggestion,
// or the list of words.
func didYouMean(given string, words []string) string {
	return hclbody.DidYouMean(given, words, "use "+strings.Join(words, ", "))
}
