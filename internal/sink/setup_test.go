package sink

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// decodeSinks decodes the sink blocks of src, failing t on any diagnostic.
func decodeSinks(t *testing.T, src string) []Config {
	t.Helper()
	cfgs, diags := parseSinks(src)
	if diags.HasErrors() {
		t.Fatalf("decode:\n%s\n%v", src, diags)
	}
	return cfgs
}

// parseSinks decodes the sink blocks of src as internal/config does.
func parseSinks(src string) ([]Config, hcl.Diagnostics) {
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	var cfgs []Config
	for _, blk := range f.Body.(*hclsyntax.Body).Blocks {
		c, d := DecodeBlock(blk)
		diags = append(diags, d...)
		cfgs = append(cfgs, c)
	}
	return cfgs, diags
}

func mustFormat(t *testing.T, name string) Format {
	t.Helper()
	f, err := NewFormat(name, "dev")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// formats are the formats by name, with version "dev", for the tests that
// run every one.
var formats = func() map[string]Format {
	m := map[string]Format{}
	for _, name := range formatNames {
		f, err := NewFormat(name, "dev")
		if err != nil {
			panic(err)
		}
		m[name] = f
	}
	return m
}()
