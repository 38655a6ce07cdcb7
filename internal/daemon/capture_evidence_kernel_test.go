package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// evidenceDir holds the logs a responder is handed (testdata/README.md):
// the raw capture TestKernelCaptureEvidence writes, and the forms derived
// from it (EXECVE lines alone, ausearch -i, laurel JSON).
const evidenceDir = "../../testdata/evidence"

// TestKernelCaptureEvidence needs root and the kernel audit subsystem, and
// runs only with -capture: it records real execs of a CTF write-up's kind
// (openssl enc -a of a flag file, a base64 decode, a decode piped to sh)
// as auditd log lines into testdata/evidence/capture.log.
func TestKernelCaptureEvidence(t *testing.T) {
	if !*capture {
		t.Skip("generates testdata/evidence/capture.log; run with -capture as root")
	}
	out := captureRecords(t)
	www := filepath.Join(t.TempDir(), "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatal(err)
	}
	flag := filepath.Join(www, "FLAG.txt")
	if err := os.WriteFile(flag, []byte("CTF{replay-me}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b64 := filepath.Join(www, "note.b64")
	if err := os.WriteFile(b64, []byte("aGVsbG8K\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmds := [][]string{
		{"/usr/bin/openssl", "enc", "-aes-256-cbc", "-a", "-salt", "-pbkdf2", "-pass", "pass:ctf", "-in", flag, "-out", flag + ".enc"},
		{"/usr/bin/base64", "--decode", b64},
		{"/bin/sh", "-c", "echo ZWNobyBoZWxsbwo= | base64 -d | sh"},
	}
	want := 5 // openssl, base64, and sh with its base64 and sh
	for _, c := range cmds {
		if b, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("run %v: %v: %s", c, err, b)
		}
	}
	lines := collectLines(t, out, want)
	if err := writeCompressed(filepath.Join(evidenceDir, "capture.log"), "", lines); err != nil {
		t.Fatal(err)
	}
}
