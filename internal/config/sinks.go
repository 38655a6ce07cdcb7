package config

import (
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/encwatch/encwatch/internal/sink"
)

// sink decodes a `sink "TYPE" "NAME" { … }` block. The sink package owns
// the types and their attributes (sink.DecodeBlock); this checks only what
// concerns the policy as a whole: the labels and that names are unique.
func (st *state) sink(blk *hclsyntax.Block) {
	if !st.d.labels(blk, "type", "name") {
		return
	}
	name := blk.Labels[1]
	if !isWord(name, 128, true) {
		st.d.errorf(blk.LabelRanges[1], "sink name %q must be letters, digits, \"-\", \"_\" or \".\"", name)
	}
	if first, dup := st.sinkAt[name]; dup {
		st.d.errorf(blk.LabelRanges[1], "duplicate sink %q; first defined at %s", name, at(first))
		return
	}
	st.sinkAt[name] = blk.LabelRanges[1]
	c, diags := sink.DecodeBlock(blk)
	st.d.diags = append(st.d.diags, diags...)
	if !diags.HasErrors() {
		st.cfg.Sinks = append(st.cfg.Sinks, c)
	}
}
