package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/encwatch/encwatch/internal/config"
	_ "github.com/encwatch/encwatch/internal/fleet" // the nats sink of docs/sinks.md
)

// TestDocsHCLParses checks that every hcl example in the docs is valid HCL
// syntax, so that a reader who copies one starts from something that parses.
func TestDocsHCLParses(t *testing.T) {
	for _, doc := range []string{"../../README.md", "../../docs/policy.md", "../../docs/sinks.md", "../../docs/packaging.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		blocks := strings.Split(string(b), "```hcl\n")
		for i, blk := range blocks[1:] {
			src, _, ok := strings.Cut(blk, "```")
			if !ok {
				t.Errorf("%s: hcl example %d is not closed", doc, i+1)
				continue
			}
			if _, diags := hclsyntax.ParseConfig([]byte(src), doc, hcl.InitialPos); diags.HasErrors() {
				t.Errorf("%s: hcl example %d does not parse: %v\n%s", doc, i+1, diags, src)
				continue
			}
			// README's policy and each sink example (not the TYPE/NAME template)
			// must also load as a policy.
			if (strings.HasPrefix(src, "sink \"") || strings.HasSuffix(doc, "README.md")) && !strings.Contains(src, "\"TYPE\"") {
				if _, err := config.Parse(doc, []byte(src)); err != nil {
					t.Errorf("%s: sink example %d does not load: %v\n%s", doc, i+1, err, src)
				}
			}
		}
	}
}
