package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/encwatch/encwatch/internal/hclbody"
)

// forwardProbeSocket is the probe socket of a policy holding a forward
// block.
const forwardProbeSocket = "/run/forward/probe.sock"

// forward is a registered block as internal/fleet's collect block is: a
// policy holding it belongs to another daemon, with its own metrics
// defaults, that forwards and so needs no signature.
type forward struct{ insecure bool }

func (f *forward) Warnings(what string) []string {
	if !f.insecure {
		return nil
	}
	return []string{what + ": insecure = true"}
}

func init() {
	RegisterBlock(Block{
		Type: "forward",
		Decode: func(b *hclbody.Body) any {
			f := &forward{}
			b.Bool("insecure", &f.insecure)
			b.Done()
			return f
		},
		MetricsAddress: "127.0.0.1:9999", ProbeSocket: forwardProbeSocket,
		Forwards: true,
	})
}

// TestRegisteredBlock decodes a registered block into Config.Blocks, and
// refuses a second one, labels and unknown attributes, file:line:col.
func TestRegisteredBlock(t *testing.T) {
	cfg, err := Parse("p.hcl", []byte("forward {\n  insecure = true\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := cfg.Blocks["forward"].(*forward); !ok || !f.insecure {
		t.Errorf(`Blocks["forward"] = %#v, want insecure`, cfg.Blocks["forward"])
	}
	none, err := Parse("p.hcl", []byte(oneSignature))
	if err != nil {
		t.Fatal(err)
	}
	if none.Blocks != nil {
		t.Errorf("Blocks of a policy without one = %v, want nil", none.Blocks)
	}
	for _, tt := range []struct{ name, src, want string }{
		{"duplicate", "forward {}\nforward {}\n", `p.hcl:2:1: duplicate forward block; first defined at p.hcl:1:1`},
		{"label", `forward "x" {}`, `p.hcl:1:9: forward block takes no labels`},
		{"misspelt", "forward {\n  insecur = true\n}\n", `p.hcl:2:3: unknown attribute "insecur"; did you mean "insecure"?`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.hcl", []byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) = %v, want an error with %q", tt.src, err, tt.want)
			}
		})
	}
}

// TestRegisteredBlockMetricsDefault: a policy holding a block with its own
// metrics defaults gets them, unless its metrics block says otherwise.
func TestRegisteredBlockMetricsDefault(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"agent", oneSignature, DefaultMetricsAddress},
		{"forwarder", "forward {}\n", "127.0.0.1:9999"},
		{"forwarder set", "forward {}\nmetrics {\n  address = \"127.0.0.1:7777\"\n}\n", "127.0.0.1:7777"},
		{"forwarder off", "forward {}\nmetrics {\n  address = \"\"\n}\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("p.hcl", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Metrics.Address; got != tc.want {
				t.Errorf("Metrics.Address = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestWarningsOfBlocks: Warnings gives what a registered block's value
// says, at its block.
func TestWarningsOfBlocks(t *testing.T) {
	cfg, err := Parse("p.hcl", []byte(oneSignature+"forward {\n  insecure = true\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Warnings(cfg), []string{"p.hcl:5:1: forward block: insecure = true"}; !slices.Equal(got, want) {
		t.Errorf("Warnings = %q, want %q", got, want)
	}
	quiet, err := Parse("p.hcl", []byte("forward {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := Warnings(quiet); len(got) != 0 {
		t.Errorf("Warnings = %q, want none", got)
	}
}
