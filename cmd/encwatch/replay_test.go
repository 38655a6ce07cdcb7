package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/encwatch/encwatch/internal/daemon"
)

const rotated = "../../testdata/replay-rotated"

// TestReplayProgressOnTerminal runs replay with stderr on a pseudo-terminal:
// the progress line is drawn and erased, and the summary follows.
func TestReplayProgressOnTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(ptmx) // ends with EIO once tty is closed
		got <- string(b)
	}()
	var stdout bytes.Buffer
	err = run(context.Background(), []string{"replay", "--config", "../../config.hcl", rotated}, &stdout, tty)
	tty.Close()
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	out := <-got
	if !strings.Contains(out, "\r\x1b[Kreplay: ") || !strings.Contains(out, " records, ") {
		t.Errorf("terminal output %q, want a progress line", out)
	}
	i := strings.LastIndex(out, "\r\x1b[K")
	if i < 0 || !strings.HasPrefix(out[i+len("\r\x1b[K"):], "replay summary") {
		t.Errorf("terminal output %q, want the progress line erased before the summary", out)
	}
	if strings.Count(stdout.String(), "\n") < 7 {
		t.Errorf("stdout = %q, want the alerts", stdout.String())
	}
}

// TestReplayNoProgressOnPipe runs replay with stderr a pipe: no progress
// line, no escape sequence, and the summary.
func TestReplayNoProgressOnPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		got <- string(b)
	}()
	err = run(context.Background(), []string{"replay", "--config", "../../config.hcl", "--format", "text", rotated}, io.Discard, w)
	w.Close()
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	out := <-got
	if strings.ContainsAny(out, "\r\x1b") || strings.Contains(out, "replay: ") {
		t.Errorf("stderr on a pipe = %q, want no progress line", out)
	}
	for _, want := range []string{"replay summary", "records     ", "alerts      7", "data_encoder_exec (high)", "hosts", "top parents", "malformed   0 lines", "time span"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary %q lacks %q", out, want)
		}
	}
}

// TestReplayFormats replays with every format: text blocks without colour
// (stdout is not a terminal), and one line per alert for the sink formats.
func TestReplayFormats(t *testing.T) {
	for _, format := range []string{"text", "json", "ecs", "ocsf", "cef", "leef"} {
		t.Run(format, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), []string{"replay", "--config", "../../config.hcl", "--format", format, rotated}, &stdout, &stderr); err != nil {
				t.Fatalf("replay: %v\n%s", err, stderr.String())
			}
			out := stdout.String()
			switch format {
			case "text":
				if strings.Count(out, "\n\n") != 7 || strings.Contains(out, "\x1b") {
					t.Errorf("text output %q, want 7 blocks, no colour", out)
				}
				for _, want := range []string{"HIGH  data_encoder_exec", "  command  /usr/bin/base64 --decode /tmp/", "  command  /bin/sh -c 'echo ZWNobyBoZWxsbwo= | base64 -d | sh'", "  ancestry /bin/sh -c", "└─ base64 -d  (pid ", `decoded  base64, 11 bytes, shell: "echo hello`} {
					if !strings.Contains(out, want) {
						t.Errorf("text output lacks %q:\n%s", want, out)
					}
				}
			default:
				if n := strings.Count(out, "\n"); n != 7 {
					t.Errorf("%s output has %d lines, want 7:\n%s", format, n, out)
				}
			}
		})
	}
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"replay", "--config", "../../config.hcl", "--format", "yaml", rotated}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--format") {
		t.Errorf("--format yaml: %v, want an error", err)
	}
}

func TestProgressText(t *testing.T) {
	p := daemon.ReplayProgress{BytesRead: 25e6, BytesTotal: 100e6, Records: 1234, Alert: 5, Elapsed: 5 * time.Second}
	want := "replay: 25.0 MB of 100.0 MB (25%), 1234 records, 5 alerts, 5.0 MB/s, ETA 15s"
	if got := progressText(p); got != want {
		t.Errorf("progressText = %q, want %q", got, want)
	}
}

func TestParseWhen(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"@1795946963", time.Unix(1795946963, 0)},
		{"2026-11-29T10:00:00Z", time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)},
		{"2026-11-29 10:00:00", time.Date(2026, 11, 29, 10, 0, 0, 0, time.Local)},
		{"2026-11-29", time.Date(2026, 11, 29, 0, 0, 0, 0, time.Local)},
	}
	for _, tt := range tests {
		if got, err := parseWhen(tt.in); err != nil || !got.Equal(tt.want) {
			t.Errorf("parseWhen(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	if _, err := parseWhen("yesterday"); err == nil {
		t.Errorf("parseWhen(yesterday) = nil error, want one")
	}
}

// TestReplayAusearchText replays ausearch's output with one event's EXECVE
// record removed: the summary counts the separators apart from malformed
// lines, and the text alert says its command came from the proctitle.
func TestReplayAusearchText(t *testing.T) {
	src, err := os.ReadFile("../../testdata/ausearch/replay-audit.ausearch")
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.SplitAfter(string(src), "\n") {
		if !strings.HasPrefix(l, "type=EXECVE msg=audit(1795759259.157:6)") {
			kept = append(kept, l)
		}
	}
	path := filepath.Join(t.TempDir(), "ticket.txt")
	if err := os.WriteFile(path, []byte(strings.Join(kept, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"replay", "--config", "../../config.hcl", "--format", "text", path}, &stdout, &stderr); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	if want := "command  /usr/bin/base64 --decode /etc/hostname  (from proctitle)"; !strings.Contains(stdout.String(), want) {
		t.Errorf("text output lacks %q:\n%s", want, stdout.String())
	}
	for _, want := range []string{"not audit   24 lines (24 ausearch separators, 0 syslog lines of other programs)", "malformed   0 lines"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stderr.String())
		}
	}
}
