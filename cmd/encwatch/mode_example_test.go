package main

// This file is the worked example of docs/architecture.md, "Seam: input": a
// mode is one registration, and `encwatch run --mode`, `validate` and the
// help take it with no other change. The doc quotes it, and go test runs
// it.

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/internal/doctest"
	"github.com/encwatch/encwatch/internal/input"
)

// fakeInput yields the events it was given, as an input that reads events
// rather than audit records (eBPF, a laurel or journald reader) would: no
// record, no assembler. It has no capability: the daemon runs no kernel
// supervisor and no canary for it.
type fakeInput struct{ events []*audit.Event }

func (f *fakeInput) Events(context.Context, input.StreamOptions) (input.Stream, error) {
	ready := make(chan struct{}, 1)
	ready <- struct{}{}
	close(ready) // one batch, then the end: the daemon stops
	return &fakeStream{events: f.events, ready: ready}, nil
}

func (f *fakeInput) Close() error { return nil }

// fakeStream hands out its events at the first Read.
type fakeStream struct {
	events []*audit.Event
	ready  chan struct{}
}

func (s *fakeStream) Ready() <-chan struct{} { return s.ready }

func (s *fakeStream) Read(emit func(*audit.Event)) (bool, error) {
	for _, ev := range s.events {
		emit(ev)
	}
	s.events = nil
	return false, nil
}

func (s *fakeStream) Expire(time.Time, func(*audit.Event)) {}
func (s *fakeStream) Flush(func(*audit.Event))             {}
func (s *fakeStream) Err() error                           { return nil }
func (s *fakeStream) Close() error                         { return nil }

func init() {
	input.Register(input.Kind{
		Name: "fake",
		Help: "events a test made",
		Open: func(input.Config) (input.Input, error) {
			return &fakeInput{events: []*audit.Event{{
				Time: time.Unix(1795759259, 0), Serial: 7, Syscall: 59, Success: true, PID: 4242, PPID: 1,
				Comm: "base64", Exe: "/usr/bin/base64", Argc: 2, Argv: []string{"base64", "-d"},
			}}}, nil
		},
	})
}

// TestAddingAMode runs `encwatch run --mode fake` to the end of the fake
// input's events, checks its alert in the policy's file sink, and has
// `validate` accept the mode in a policy and the help list it.
func TestAddingAMode(t *testing.T) {
	rootOnly(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "alerts.jsonl")
	policy := filepath.Join(dir, "p.hcl")
	writePolicy(t, policy, encSignature+`
audit {
  mode = "fake"
}
metrics {
  address = ""
}
sink "file" "alerts" {
  path = "`+out+`"
}
`)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"validate", policy}, &stdout, &stderr); err != nil {
		t.Fatalf("validate a policy of mode fake: %v\n%s", err, stderr.String())
	}
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"run", "--config", policy, "--mode", "fake", "--log-format", "json"}, &stdout, &stderr)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run --mode fake: %v\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("run --mode fake did not end with its input; logs:\n%s", stderr.String())
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(got), "\n"); n != 1 || !strings.Contains(string(got), `"exe":"/usr/bin/base64"`) || !strings.Contains(string(got), `"name":"enc"`) {
		t.Errorf("alerts = %q, want the one enc alert of the fake event", got)
	}
	if !strings.Contains(stderr.String(), `"mode":"fake"`) {
		t.Errorf("logs do not name the mode:\n%s", stderr.String())
	}

	stderr.Reset()
	_ = run(context.Background(), []string{"run", "--help"}, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "fake (events a test made)") {
		t.Errorf("run --help = %q, want the fake mode listed", stderr.String())
	}
}

// TestArchitectureDocQuotesTheInputExample: the input seam of
// docs/architecture.md quotes this example verbatim.
func TestArchitectureDocQuotesTheInputExample(t *testing.T) {
	doctest.Architecture(t, "Seam: input", "mode_example_test.go")
}
