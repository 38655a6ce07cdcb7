package fleet

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/encwatch/encwatch/internal/config"
)

func TestHeartbeatAndCollectBlocks(t *testing.T) {
	cfg, err := config.Parse("p.hcl", []byte(`
heartbeat {
  interval = "30s"
  sinks    = ["bus"]
}
collect {
  urls         = ["nats://a:4222", "tls://b:4222"]
  consumer     = "siem"
  silent_after = "2m"
  batch        = 100
  ack_wait     = "1m"
  token_file   = "/etc/encwatch/collect/token"
  tls {
    ca_file = "/etc/encwatch/ca.pem"
  }
}
`))
	if err != nil {
		t.Fatal(err)
	}
	if h := HeartbeatOf(cfg); h == nil || h.Interval != 30*time.Second || !slices.Equal(h.Sinks, []string{"bus"}) {
		t.Errorf("HeartbeatOf = %+v, want 30s to [bus]", h)
	}
	c := CollectOf(cfg)
	if c == nil {
		t.Fatal("CollectOf = nil")
	}
	if !slices.Equal(c.URLs, []string{"nats://a:4222", "tls://b:4222"}) || c.Stream != "ENCWATCH" || c.Consumer != "siem" ||
		c.SilentAfter != 2*time.Minute || c.Batch != 100 || c.AckWait != time.Minute || c.MaxAckPending != DefaultMaxAckPending ||
		c.Auth.TokenFile != "/etc/encwatch/collect/token" || c.TLS.CAFile != "/etc/encwatch/ca.pem" {
		t.Errorf("Collect = %+v", c)
	}
	none, err := config.Parse("p.hcl", []byte(`heartbeat {}`))
	if err != nil {
		t.Fatal(err)
	}
	if h, c := HeartbeatOf(none), CollectOf(none); h.Interval != time.Minute || h.Sinks != nil || c != nil {
		t.Errorf("defaults: heartbeat %+v, collect %+v; want 60s to every sink, no collect", h, c)
	}
}

func TestCollectDiagnostics(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"no url", `collect {}`, `p.hcl:1:1: collect block needs attribute "url"`},
		{"bad url", "collect {\n  url = \"http://h\"\n}", `p.hcl:2:9: url "http://h" must be a nats:// or tls:// URL`},
		{"password", "collect {\n  url = \"nats://u:p@h:4222\"\n}", `p.hcl:2:9: url must not carry credentials; use creds_file, nkey_file or token_file`},
		{"bad consumer", "collect {\n  url = \"nats://h:4222\"\n  consumer = \"a.b\"\n}", `p.hcl:3:14: consumer "a.b" must be letters, digits, "-" or "_"`},
		{"relative secret", "collect {\n  url = \"nats://h:4222\"\n  creds_file = \"x.creds\"\n}", `p.hcl:3:16: creds_file:`},
		{"misspelt", "collect {\n  url = \"nats://h:4222\"\n  silent_afer = \"1m\"\n}", `p.hcl:3:3: unknown attribute "silent_afer"; did you mean "silent_after"?`},
		{"duplicate", "collect {\n  url = \"nats://h:4222\"\n}\ncollect {\n  url = \"nats://h:4222\"\n}", `p.hcl:4:1: duplicate collect block; first defined at p.hcl:1:1`},
		{"no credentials", "collect {\n  url = \"nats://127.0.0.1:4222\"\n}", `p.hcl:1:1: collect block: no credentials (creds_file, nkey_file or token_file)`},
		{"plain off loopback", "collect {\n  url = \"nats://nats1.example.com:4222\"\n  nkey_file = \"/etc/encwatch/collect/nats.nk\"\n}", `p.hcl:1:1: collect block: url "nats://nats1.example.com:4222" reaches a server off loopback without TLS`},
		{"bad host subject", "collect {\n  url = \"nats://127.0.0.1:4222\"\n  insecure = true\n  host_subject = \"a.b\"\n}", `p.hcl:4:18: host_subject "a.b": must hold {host} once`},
		{"bounds", "collect {\n  url = \"nats://127.0.0.1:4222\"\n  insecure = true\n  min_interval = \"1m\"\n  max_interval = \"1s\"\n}", `max_interval 1s is below min_interval 1m0s`},
		{"heartbeat too fast", "heartbeat {\n  interval = \"1ms\"\n}", `p.hcl:2:14: interval must be from 100ms to 24h0m0s, got 1ms`},
		{"heartbeat label", `heartbeat "x" {}`, `p.hcl:1:11:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("p.hcl", []byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("config.Parse(%q) = %v, want an error with %q", tt.src, err, tt.want)
			}
		})
	}
}

// TestFleetDocHCLLoads loads every hcl example of docs/fleet.md as a policy.
func TestFleetDocHCLLoads(t *testing.T) {
	b, err := os.ReadFile("../../docs/fleet.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(b), "```hcl\n")
	if len(blocks) < 3 {
		t.Fatalf("docs/fleet.md has %d hcl examples, want the agent's and the collector's", len(blocks)-1)
	}
	for i, blk := range blocks[1:] {
		src, _, _ := strings.Cut(blk, "```")
		if _, diags := hclsyntax.ParseConfig([]byte(src), "fleet.md", hcl.InitialPos); diags.HasErrors() {
			t.Errorf("example %d does not parse: %v", i+1, diags)
			continue
		}
		if _, err := config.Parse("docs/fleet.md", []byte(src)); err != nil {
			t.Errorf("example %d does not load: %v\n%s", i+1, err, src)
		}
	}
}

// TestCollectInsecure: insecure = true lets a collector reach a server
// without credentials or TLS, and Warnings says so; credentials, or TLS
// off loopback, need no such word.
func TestCollectInsecure(t *testing.T) {
	cfg, err := config.Parse("p.hcl", []byte("collect {\n  url = \"nats://nats1.example.com:4222\"\n  insecure = true\n}\nsink \"nats\" \"bus\" {\n  url = \"nats://nats1.example.com:4222\"\n  insecure = true\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := config.Warnings(cfg)
	if len(w) != 2 || !strings.Contains(w[0], `sink "bus": insecure = true`) || !strings.Contains(w[1], "collect block: insecure = true") {
		t.Errorf("Warnings = %q, want one for the sink and one for the collect block", w)
	}
	ok, err := config.Parse("p.hcl", []byte("collect {\n  url = \"tls://nats1.example.com:4222\"\n  nkey_file = \"/etc/encwatch/collect/nats.nk\"\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := config.Warnings(ok); len(w) != 0 {
		t.Errorf("Warnings of a collector with an nkey over TLS = %q, want none", w)
	}
}

// TestCollectorMetricsDefault: a collector and an agent on one host both
// start with their default metrics addresses, and an explicit address
// (or "" for none) is kept.
func TestCollectorMetricsDefault(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"agent", `signature "s" {
  importance  = "high"
  executables = ["base64"]
}`, config.DefaultMetricsAddress},
		{"collector", `collect {
  urls     = ["nats://127.0.0.1:4222"]
  insecure = true
}`, DefaultMetricsAddress},
		{"collector set", `collect {
  urls     = ["nats://127.0.0.1:4222"]
  insecure = true
}
metrics {
  address = "127.0.0.1:9999"
}`, "127.0.0.1:9999"},
		{"collector off", `collect {
  urls     = ["nats://127.0.0.1:4222"]
  insecure = true
}
metrics {
  address = ""
}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("p.hcl", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Metrics.Address; got != tc.want {
				t.Errorf("Metrics.Address = %q, want %q", got, tc.want)
			}
		})
	}
	if config.DefaultMetricsAddress == DefaultMetricsAddress {
		t.Errorf("agent and collector share the default metrics address %s", DefaultMetricsAddress)
	}
}

// TestCollectorProbeSocket: a collector's policy has its own probe socket
// by default, and keeps one it names.
func TestCollectorProbeSocket(t *testing.T) {
	const collect = `collect {
  urls     = ["nats://127.0.0.1:4222"]
  insecure = true
}
`
	for _, tc := range []struct{ name, src, want string }{
		{"collector default", collect, DefaultProbeSocket},
		{"collector set", collect + "metrics {\n  probe_socket = \"/run/x/p.sock\"\n}\n", "/run/x/p.sock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("p.hcl", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Metrics.ProbeSocket; got != tc.want {
				t.Errorf("Metrics.ProbeSocket = %q, want %q", got, tc.want)
			}
		})
	}
	if config.DefaultProbeSocket == DefaultProbeSocket {
		t.Errorf("agent and collector share the default probe socket")
	}
}

// TestCollectorNeedsNoSignaturesAsRoot: the daemons' strict load refuses a policy
// without signatures, but a collector's forwards what the agents raised.
func TestCollectorNeedsNoSignaturesAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("!!! SKIPPED: needs root (the strict load wants root-owned files)")
	}
	p := filepath.Join(t.TempDir(), "config.hcl")
	if err := os.WriteFile(p, []byte("collect {\n  url = \"nats://127.0.0.1:4222\"\n  insecure = true\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(p, config.LoadOptions{RequireRootOwned: true}); err != nil {
		t.Errorf("Load(%s) = %v, want no error", p, err)
	}
}
