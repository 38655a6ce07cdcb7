package config

import (
	"maps"
	"slices"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/encwatch/encwatch/internal/hclbody"
)

// Block describes a top-level block type another package decodes (the
// fleet's heartbeat and collect blocks, internal/fleet). That package
// registers it with RegisterBlock from an init function; a policy then may
// hold the block once, without labels, and Load keeps what Decode made of
// it in Config.Blocks.
type Block struct {
	// Type is the block's type, e.g. "collect".
	Type string
	// Decode reads the block's body, named "TYPE block" in messages whose
	// problems carry file:line:col, reports what else it holds (b.Done),
	// and returns the value kept in Config.Blocks.
	Decode func(b *hclbody.Body) any
	// MetricsAddress and ProbeSocket, when set, are the metrics block's
	// defaults in a policy holding this block: another daemon's (the
	// collector's), so that it and an agent on one host both start with
	// their defaults.
	MetricsAddress, ProbeSocket string
	// Forwards says a policy holding this block detects nothing by design
	// (the collector forwards what the agents raised): the strict load does
	// not refuse it for having no signature.
	Forwards bool
}

// blocks holds every registered top-level block type, by type. It is
// written only by RegisterBlock, from init functions.
var blocks = map[string]Block{}

// RegisterBlock adds a top-level block type. It is meant for init
// functions and panics on a duplicate or incomplete type, or one that
// takes a built-in block's name: a programming error.
func RegisterBlock(b Block) {
	if b.Type == "" || b.Decode == nil {
		panic("config: RegisterBlock: a block needs a type and Decode")
	}
	if _, dup := blocks[b.Type]; dup || slices.Contains(topBlocks, b.Type) {
		panic("config: RegisterBlock: duplicate block " + b.Type)
	}
	blocks[b.Type] = b
}

// block decodes blk, a block of a registered type k.
func (st *state) block(k Block, blk *hclsyntax.Block) {
	if first, dup := st.cfg.blockAt[k.Type]; dup {
		st.d.errorf(blk.TypeRange, "duplicate %s block; first defined at %s", blk.Type, at(first))
		return
	}
	if !st.d.labels(blk) {
		return
	}
	v := k.Decode(st.d.body(blk, blk.Type+" block").Body)
	if st.cfg.Blocks == nil {
		st.cfg.Blocks = make(map[string]any)
		st.cfg.blockAt = make(map[string]hcl.Range)
	}
	st.cfg.Blocks[k.Type] = v
	st.cfg.blockAt[k.Type] = blk.TypeRange
}

// blockTypes returns the types of the registered blocks cfg holds, sorted.
func (cfg *Config) blockTypes() []string { return slices.Sorted(maps.Keys(cfg.Blocks)) }

// Warner is implemented by sink settings (sink.Config.Settings) and by the
// values of registered blocks that a policy can let do what they should not
// without a reason, such as connect without credentials (insecure = true).
type Warner interface {
	// Warnings says what the settings allow; what names them, e.g.
	// `sink "bus"` or "collect block".
	Warnings(what string) []string
}

// Warnings are what a policy allows that it should not without a reason
// (see Warner), each with the file:line:col of its block. validate prints
// them; the daemons log them.
func Warnings(cfg *Config) []string {
	var out []string
	add := func(v any, rng hcl.Range, what string) {
		if w, ok := v.(Warner); ok {
			for _, msg := range w.Warnings(what) {
				out = append(out, at(rng)+": "+msg)
			}
		}
	}
	for _, s := range cfg.Sinks {
		add(s.Settings, s.Range, "sink "+strconv.Quote(s.Name))
	}
	for _, typ := range cfg.blockTypes() {
		add(cfg.Blocks[typ], cfg.blockAt[typ], typ+" block")
	}
	return out
}
