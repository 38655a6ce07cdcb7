package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateReportsFileLineCol(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.hcl")
	src := "signature \"x\" {\n  improtance = \"high\"\n  executables = [\"base64\"]\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"validate", "--config", path}, &stdout, &stderr)
	if code, ok := err.(exitCode); !ok || code != 1 {
		t.Fatalf("validate bad policy: err = %v, want exit status 1", err)
	}
	want := path + `:2:3: unknown attribute "improtance"; did you mean "importance"?`
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("validate stderr = %q, want it to contain %q", stderr.String(), want)
	}
}

func TestValidateDefaultPolicy(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"validate", "../../config.hcl"}, &stdout, &stderr); err != nil {
		t.Fatalf("validate config.hcl: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "config.hcl: ok:") {
		t.Errorf("validate stdout = %q, want an ok line", stdout.String())
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &stdout, &stderr); err != nil || !strings.HasPrefix(stdout.String(), "encwatch ") {
		t.Errorf("version: err %v, stdout %q", err, stdout.String())
	}
	err := run(context.Background(), []string{"frobnicate"}, &stdout, &stderr)
	if code, ok := err.(exitCode); !ok || code != 2 || !strings.Contains(stderr.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: err %v, stderr %q", err, stderr.String())
	}
}
