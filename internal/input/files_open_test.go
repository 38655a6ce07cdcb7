package input

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestXzFirstDict reads the LZMA2 dictionary of xz's own output and
// tolerates what is not a block header.
func TestXzFirstDict(t *testing.T) {
	plain := filepath.Join(t.TempDir(), "p")
	if err := os.WriteFile(plain, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dict string
		want uint64
	}{{"64KiB", 64 << 10}, {"1MiB", 1 << 20}, {"3MiB", 3 << 20}, {"256MiB", 256 << 20}} {
		out, err := exec.Command("xz", "-c", "--lzma2=dict="+tc.dict, plain).Output()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := xzFirstDict(bufioReader(out))
		if !ok || got != tc.want {
			t.Errorf("dict=%s: xzFirstDict = %d, %v; want %d", tc.dict, got, ok, tc.want)
		}
	}
	for _, junk := range [][]byte{nil, []byte("short"), append(make([]byte, 12), 0xff, 1, 2)} {
		if _, ok := xzFirstDict(bufioReader(junk)); ok {
			t.Errorf("xzFirstDict(%x) told a dictionary", junk)
		}
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
