package sink_test

// This file is the worked example of docs/development.md, "Adding a sink
// type": the doc quotes it, and go test runs it.

import (
	"context"
	"github.com/encwatch/encwatch/internal/doctest"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/detect"
	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/sink"
)

// MemorySettings are what a `sink "memory" "NAME" { … }` block says.
type MemorySettings struct {
	Prefix string // put before every line
	Max    int    // keep at most this many lines; 0 means 100
}

// Memory keeps the last alerts it was sent, one formatted line each.
//
// Concurrency: Send and Close are called from one goroutine (the sink's
// delivery worker), Close after the last Send; Lines from any goroutine.
type Memory struct {
	name   string
	s      MemorySettings
	format sink.Format

	mu    sync.Mutex
	lines []string
}

var _ sink.Sink = (*Memory)(nil)

// Name returns the sink's configured name.
func (m *Memory) Name() string { return m.name }

// Send renders each alert with the sink's format and keeps the line.
func (m *Memory) Send(_ context.Context, alerts []detect.Alert) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range alerts {
		m.lines = append(m.lines, m.s.Prefix+string(m.format(nil, &alerts[i])))
	}
	if n := len(m.lines) - m.s.Max; n > 0 {
		m.lines = m.lines[n:]
	}
	return nil
}

// Close releases nothing.
func (m *Memory) Close() error { return nil }

// Lines returns the lines kept.
func (m *Memory) Lines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.lines...)
}

// memories are the Memory sinks built, by name, for the test to look at.
var memories sync.Map

func init() {
	sink.Register(sink.Kind[MemorySettings]{
		Name:       "memory",
		FormatAttr: "format", // format = "json" | "ecs" | "ocsf" | "cef" | "leef"
		Decode: func(b *sink.Body, s *MemorySettings) {
			b.Require("prefix")
			b.String("prefix", &s.Prefix)
			if n, ok := b.Int("max", 1, 10000); ok {
				s.Max = int(n)
			}
		},
		New: func(s *MemorySettings, env sink.Env) (sink.Sink, error) {
			if s.Max == 0 {
				s.Max = 100
			}
			m := &Memory{name: env.Name, s: *s, format: env.Format}
			memories.Store(env.Name, m)
			return m, nil
		},
	})
}

func TestAddingASinkType(t *testing.T) {
	cfg, err := config.Parse("policy.hcl", []byte(`
sink "memory" "recent" {
  prefix         = "encwatch: "
  format         = "cef"
  max            = 2
  min_importance = "high"
}
`))
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	sinks, err := sink.Build(cfg.Sinks, sink.BuildOptions{Log: logrus.NewEntry(log), Version: "1.4.0"})
	if err != nil {
		t.Fatal(err)
	}
	r := sink.NewRouter(logrus.NewEntry(log), sinks, sink.RouterOptions{})
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	for i, imp := range []detect.Importance{detect.High, detect.Low, detect.Critical, detect.High} {
		r.Deliver(detect.Alert{ID: string(rune('a' + i)), Signature: detect.SignatureInfo{Name: "enc", Importance: imp}})
	}
	r.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	v, _ := memories.Load("recent")
	lines := v.(*Memory).Lines()
	if len(lines) != 2 {
		t.Fatalf("kept %d lines, want max = 2: %q", len(lines), lines)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "encwatch: CEF:0|encwatch|encwatch|1.4.0|enc|") {
			t.Errorf("line = %q, want the prefix and a CEF header with the version", l)
		}
	}
	if st := r.Stats()[0]; st.Filtered != 1 || st.Sent != 3 {
		t.Errorf("stats = %+v, want 1 filtered (low), 3 sent", st)
	}
}

func TestAddingASinkTypeDiagnostics(t *testing.T) {
	tests := []struct {
		src  string
		want string
	}{
		{`sink "memory" "m" { prefx = "x" }`,
			`policy.hcl:1:21: unknown attribute "prefx"; did you mean "prefix"?`},
		{`sink "memory" "m" {}`,
			`policy.hcl:1:1: sink "m" needs attribute "prefix"`},
		{"sink \"memory\" \"m\" {\n  prefix = \"x\"\n  max    = 0\n}",
			`policy.hcl:3:12: max must be a whole number from 1 to 10000`},
		{`sink "memry" "m" {}`,
			`policy.hcl:1:6: unknown sink type "memry"; did you mean "memory"?`},
	}
	for _, tt := range tests {
		_, err := config.Parse("policy.hcl", []byte(tt.src))
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) = %v, want %s", tt.src, err, tt.want)
		}
	}
}

// TestDevelopmentDocQuotesTheExample: every Go block of "Adding a sink
// type" in docs/development.md is quoted verbatim from this file.
func TestDevelopmentDocQuotesTheExample(t *testing.T) {
	doctest.Quoted(t, "Adding a sink type", "example_type_test.go")
}

// TestArchitectureDocQuotesTheExample: the sink type seam of
// docs/architecture.md quotes this example verbatim.
func TestArchitectureDocQuotesTheExample(t *testing.T) {
	doctest.Architecture(t, "Seam: sink type", "example_type_test.go")
}
