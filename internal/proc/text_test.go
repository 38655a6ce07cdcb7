package proc

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// textOf is the code fingerprint of path as a worker reads it: asked for
// its executable segments' size, readFileID hashes them.
func textOf(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_, total, err := ExecSegments(f)
	f.Close()
	if err != nil {
		return ""
	}
	return fileID(t, path, []int64{total}).Text
}

// TestExecSegmentsSurviveDoctoredCopies measures the executable-code
// fingerprint against copies of base64 doctored the ways a user hides a
// renamed encoder from build-id and whole-file matching: the build id
// flipped or removed, symbols stripped, bytes appended. Each keeps the
// fingerprint; a byte changed inside the code does not (content cannot
// match a program whose code differs, nor a recompiled one).
func TestExecSegmentsSurviveDoctoredCopies(t *testing.T) {
	const src = "/usr/bin/base64"
	if _, err := os.Stat(src); err != nil {
		t.Skipf("no %s: %v", src, err)
	}
	want := textOf(t, src)
	if want == "" {
		t.Fatalf("%s: no executable segment", src)
	}
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	wantBuildID := fileID(t, src, nil).BuildID
	dir := t.TempDir()
	tool := func(t *testing.T, name string, args ...string) {
		t.Helper()
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("no %s: %v", name, err)
		}
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	for _, tt := range []struct {
		name     string
		make     func(t *testing.T, dst string)
		sameCode bool
	}{
		{"build id flipped", func(t *testing.T, dst string) {
			b := append([]byte(nil), orig...)
			id, _ := hex.DecodeString(wantBuildID)
			i := bytes.Index(b, id)
			if i < 0 {
				t.Fatal("build id bytes not found")
			}
			b[i] ^= 0xff
			os.WriteFile(dst, b, 0o755)
		}, true},
		{"build id removed", func(t *testing.T, dst string) {
			tool(t, "objcopy", "--remove-section", ".note.gnu.build-id", src, dst)
		}, true},
		{"stripped", func(t *testing.T, dst string) { tool(t, "strip", "-s", "-o", dst, src) }, true},
		{"stripped of everything strip can", func(t *testing.T, dst string) {
			tool(t, "strip", "--strip-all", "--remove-section=.comment", "--remove-section=.note.gnu.build-id", "-o", dst, src)
		}, true},
		{"bytes appended", func(t *testing.T, dst string) {
			os.WriteFile(dst, append(append([]byte(nil), orig...), "padding"...), 0o755)
		}, true},
		{"one code byte changed", func(t *testing.T, dst string) {
			f, _ := os.Open(src)
			segs, _, _ := ExecSegments(f)
			f.Close()
			b := append([]byte(nil), orig...)
			b[segs[0].Off+segs[0].Size-1] ^= 0xff // the last byte of the code
			os.WriteFile(dst, b, 0o755)
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst := filepath.Join(dir, "kitty")
			os.Remove(dst)
			tt.make(t, dst)
			bid := fileID(t, dst, nil).BuildID
			got := textOf(t, dst)
			t.Logf("build id %s (original %t), code fingerprint kept: %t", bid, bid == wantBuildID, got == want)
			if (got == want) != tt.sameCode {
				t.Errorf("fingerprint of the copy kept = %t, want %t", got == want, tt.sameCode)
			}
		})
	}
}
