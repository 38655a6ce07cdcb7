package config

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/encwatch/encwatch/internal/hclbody"
)

// decoder collects diagnostics while a policy is decoded, so that one run
// reports every problem rather than the first.
type decoder struct {
	diags hcl.Diagnostics
}

func (d *decoder) errorf(rng hcl.Range, format string, args ...any) {
	hclbody.Errorf(&d.diags, rng, format, args...)
}

// body decodes one block body with hclbody.Body (the decoders the sink
// blocks use too), its problems collected by d.
type body struct {
	*hclbody.Body
	d *decoder
}

// body starts decoding the body of blk; what names it in messages.
func (d *decoder) body(blk *hclsyntax.Block, what string) *body {
	return &body{Body: hclbody.New(&d.diags, blk.Body, what, blk.TypeRange), d: d}
}

func (b *body) uint32(name string, dst *uint32) bool {
	n, ok := b.Int(name, 0, math.MaxUint32)
	if ok {
		*dst = uint32(n)
	}
	return ok
}

func (d *decoder) unknownBlock(blk *hclsyntax.Block, where string, blocks, attrs []string) {
	hclbody.UnknownBlock(&d.diags, blk, where, blocks, attrs)
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

func suggest(given string, candidates []string) string { return hclbody.Suggest(given, candidates) }

func contains(list []string, s string) bool { return slices.Contains(list, s) }

// at formats a position for "first defined at" messages.
func at(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
