package main

// This file is the worked example of docs/architecture.md, "Seam: format":
// a format is one registration, and replay --format and every sink that
// takes a format accept it. The doc quotes it, and go test runs it.

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/doctest"
	"github.com/encwatch/encwatch/internal/sink"
)

// appendKV writes an alert as one key=value line, every value quoted so
// that no byte of the event can start another line or another key.
func appendKV(dst []byte, a *detect.Alert) []byte {
	dst = append(dst, "signature="...)
	dst = strconv.AppendQuote(dst, a.Signature.Name)
	dst = append(dst, " importance="...)
	dst = strconv.AppendQuote(dst, a.Signature.Importance.String())
	dst = append(dst, " host="...)
	dst = strconv.AppendQuote(dst, a.Host)
	if a.Event != nil {
		dst = append(dst, " exe="...)
		dst = strconv.AppendQuote(dst, a.Event.Exe)
	}
	return dst
}

func init() {
	sink.RegisterFormat(sink.FormatKind{
		Name:        "kv",
		ContentType: "text/plain; charset=utf-8",
		New:         func(sink.FormatOptions) sink.Format { return appendKV },
	})
}

// TestAddingAFormat: replay --format kv writes the example's lines, the
// help lists it, and a file sink of a policy takes format = "kv".
func TestAddingAFormat(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"replay", "--config", "../../config.hcl", "--format", "kv", rotated}, &stdout, &stderr); err != nil {
		t.Fatalf("replay --format kv: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 7 {
		t.Errorf("replay --format kv wrote %d lines, want 7:\n%s", len(lines), stdout.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `signature="`) || !strings.Contains(l, ` host="vm" exe="/`) {
			t.Errorf("replay --format kv line %q, want the kv format", l)
		}
	}
	stderr.Reset()
	_ = run(context.Background(), []string{"replay", "--help"}, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "|kv]") {
		t.Errorf("replay --help = %q, want kv among the formats", stderr.String())
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "alerts.kv")
	policy := filepath.Join(dir, "p.hcl")
	src := `sink "file" "kv" {
  path   = "` + out + `"
  format = "kv"
}
`
	if err := os.WriteFile(policy, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(policy, config.LoadOptions{})
	if err != nil {
		t.Fatalf("a file sink with format kv: %v", err)
	}
	sinks, err := sink.Build(cfg.Sinks, sink.BuildOptions{Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatalf("build the kv file sink: %v", err)
	}
	a := detect.Alert{Time: time.Unix(1, 0), Host: "h\nforged=1", Signature: detect.SignatureInfo{Name: "s", Importance: detect.High}}
	if err := sinks[0].Send(context.Background(), []detect.Alert{a}); err != nil {
		t.Fatal(err)
	}
	if err := sinks[0].Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := `signature="s" importance="high" host="h\nforged=1"` + "\n"; string(got) != want {
		t.Errorf("file sink wrote %q, want %q", got, want)
	}
}

// TestArchitectureDocQuotesTheFormatExample: the format seam of
// docs/architecture.md quotes this example verbatim.
func TestArchitectureDocQuotesTheFormatExample(t *testing.T) {
	doctest.Architecture(t, "Seam: format", "format_example_test.go")
}
