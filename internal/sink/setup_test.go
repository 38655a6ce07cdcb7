package sink

import (
	"fmt"
	"slices"
	"strings"
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
	f, err := NewFormat(name, FormatOptions{Version: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// allFormats are the formats by name, with version "dev", for the tests that
// run every one.
var allFormats = func() map[string]Format {
	m := map[string]Format{}
	for _, name := range Formats() {
		f, err := NewFormat(name, FormatOptions{Version: "dev"})
		if err != nil {
			panic(err)
		}
		m[name] = f
	}
	return m
}()

func TestDecodeBlockDiagnostics(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"unknown type", `sink "kafak" "k" {}`, []string{`test.hcl:1:6: unknown sink type "kafak"; use ` + strings.Join(Types(), ", ")}},
		{"misspelt type", `sink "webhok" "k" {}`, []string{`test.hcl:1:6: unknown sink type "webhok"; did you mean "webhook"?`}},
		{"misspelt attribute", "sink \"syslog\" \"s\" {\n  address = \"udp://h:514\"\n  facilty = 3\n}", []string{
			`test.hcl:3:3: unknown attribute "facilty"; did you mean "facility"?`}},
		{"payload of stdout", "sink \"stdout\" \"s\" {\n  payload = \"json\"\n}", []string{
			`test.hcl:2:3: unknown attribute "payload" in sink "s"`}},
		{"tls on a file", "sink \"file\" \"f\" {\n  path = \"/x\"\n  tls {}\n}", []string{
			`test.hcl:3:3: unknown block "tls" in sink "f"`}},
		{"misspelt spool", "sink \"stdout\" \"s\" {\n  spol {}\n}", []string{
			`test.hcl:2:3: unknown block "spol"; did you mean "spool"?`}},
		{"spool as attribute", "sink \"stdout\" \"s\" {\n  spool = 1\n}", []string{
			`test.hcl:2:3: "spool" is a block, not an attribute: write spool { ... }`}},
		{"half a client cert", "sink \"webhook\" \"w\" {\n  url = \"https://h/\"\n  tls { cert_file = \"/c\" }\n}", []string{
			`test.hcl:3:3: tls block of sink "w" needs both cert_file and key_file, or neither`}},
		{"two spools", "sink \"stdout\" \"s\" {\n  spool { dir = \"/a\" }\n  spool { dir = \"/b\" }\n}", []string{
			`test.hcl:3:3: more than one spool block in sink "s"`}},
		{"spool without dir", "sink \"stdout\" \"s\" {\n  spool {}\n}", []string{
			`test.hcl:2:3: spool block of sink "s" needs attribute "dir"`}},
		{"bad values", "sink \"splunk\" \"s\" {\n  url = \"ftp://h\"\n  payload = \"jsn\"\n  splunk_ack = \"yes\"\n  min_importance = \"hihg\"\n}", []string{
			`test.hcl:3:13: unknown payload "jsn"; did you mean "json"?`,
			`test.hcl:2:9: url "ftp://h" must be an http:// or https:// URL`,
			`test.hcl:4:16: splunk_ack must be a bool, got string`,
			`test.hcl:5:20: unknown importance "hihg"; did you mean "high"?`,
		}},
		{"credentials in url", "sink \"elasticsearch\" \"e\" {\n  url = \"https://u:p@h/\"\n}", []string{
			`test.hcl:2:9: url must not carry credentials; use token_file or token_env`}},
		{"bad address", "sink \"syslog\" \"s\" {\n  address = \"tcp://h\"\n}", []string{
			`test.hcl:2:13: address "tcp://h" needs a port`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := parseSinks(tt.src)
			var got []string
			for _, d := range diags {
				got = append(got, fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, d.Summary))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("diagnostics =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestHTTPTypes builds each HTTP receiver under its own type and under the
// `sink "http"` spelling of earlier releases, which must make the same sink.
func TestHTTPTypes(t *testing.T) {
	tests := []struct {
		name, src string
		want      Sink
	}{
		{"webhook", `sink "webhook" "w" { url = "http://h/hook" }`, &Webhook{}},
		{"http webhook", `sink "http" "w" { url = "http://h/hook" }`, &Webhook{}},
		{"splunk", `sink "splunk" "s" { url = "http://h:8088" }`, &Splunk{}},
		{"http splunk_hec", "sink \"http\" \"s\" {\n  url = \"http://h:8088\"\n  kind = \"splunk_hec\"\n}", &Splunk{}},
		{"elasticsearch", `sink "elasticsearch" "e" { url = "http://h:9200" }`, &Elasticsearch{}},
		{"http elasticsearch", "sink \"http\" \"e\" {\n  url = \"http://h:9200\"\n  kind = \"elasticsearch\"\n}", &Elasticsearch{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sinks, err := Build(decodeSinks(t, tt.src), BuildOptions{Log: discardLog()})
			if err != nil {
				t.Fatal(err)
			}
			defer sinks[0].Close()
			if got, want := fmt.Sprintf("%T", sinks[0]), fmt.Sprintf("%T", tt.want); got != want {
				t.Errorf("built a %s, want a %s", got, want)
			}
		})
	}
	if _, err := Build(decodeSinks(t, "sink \"elasticsearch\" \"e\" {\n  url = \"http://h:9200\"\n  payload = \"cef\"\n}"), BuildOptions{Log: discardLog()}); err == nil {
		t.Error("Build(elasticsearch with a CEF payload) = nil error, want one")
	}
}

// TestFormatVersion: the version given to Build is what the formats report.
func TestFormatVersion(t *testing.T) {
	a := testAlert()
	for name, want := range map[string]string{
		"cef":  "CEF:0|encwatch|encwatch|9.9.9|",
		"leef": "LEEF:2.0|encwatch|encwatch|9.9.9|",
		"ecs":  `"observer":{"product":"encwatch","vendor":"encwatch","version":"9.9.9"}`,
		"ocsf": `"version":"9.9.9"`,
	} {
		f, err := NewFormat(name, FormatOptions{Version: "9.9.9"})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(f(nil, &a)); !strings.Contains(got, want) {
			t.Errorf("%s = %s, want it to hold %s", name, got, want)
		}
	}
}
