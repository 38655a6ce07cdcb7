package proc

import (
	"time"

	"golang.org/x/sys/unix"

	"bytes"
	"encoding/binary"
	"github.com/encwatch/encwatch/detect"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// elf64 builds a minimal little-endian ELF64 file with one PT_NOTE segment
// holding notes.
func elf64(notes []byte) []byte {
	const phoff = 64
	b := make([]byte, phoff+56)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = elfClass64, elfData2LSB, 1
	le := binary.LittleEndian
	le.PutUint64(b[32:], phoff)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[56:], 1)
	ph := b[phoff:]
	le.PutUint32(ph, ptNote)
	le.PutUint64(ph[8:], uint64(len(b)))
	le.PutUint64(ph[32:], uint64(len(notes)))
	return append(b, notes...)
}

// note encodes one ELF note (name NUL-terminated, both padded to 4).
func note(name string, typ uint32, desc []byte) []byte {
	var b []byte
	le := binary.LittleEndian
	b = le.AppendUint32(b, uint32(len(name)+1))
	b = le.AppendUint32(b, uint32(len(desc)))
	b = le.AppendUint32(b, typ)
	b = append(b, name...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	b = append(b, desc...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestReadBuildID(t *testing.T) {
	id := []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	abiTag := note("GNU", 1, []byte{0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0})
	tests := []struct {
		name string
		file []byte
		want string // "" for an error
	}{
		{"build id", elf64(note("GNU", ntGNUBuildID, id)), "deadbeef0102030405060708090a0b0c0d0e0f10"},
		{"after the ABI tag note", elf64(append(abiTag, note("GNU", ntGNUBuildID, id)...)), "deadbeef0102030405060708090a0b0c0d0e0f10"},
		{"appended bytes", append(elf64(note("GNU", ntGNUBuildID, id)), "trailing junk"...), "deadbeef0102030405060708090a0b0c0d0e0f10"},
		{"other owner", elf64(note("Go", ntGNUBuildID, id)), ""},
		{"only ABI tag", elf64(abiTag), ""},
		{"descsz past the end", elf64(note("GNU", ntGNUBuildID, id)[:20]), ""},
		{"not ELF", []byte("#!/bin/sh\necho hi\n"), ""},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadBuildID(bytes.NewReader(tt.file))
			if tt.want == "" {
				if err == nil {
					t.Errorf("ReadBuildID = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ReadBuildID = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

// TestBuildIDSurvivesCopy copies a real system binary under another name with
// bytes appended (its size and SHA-256 change): the build id stays.
func TestBuildIDSurvivesCopy(t *testing.T) {
	const orig = "/usr/bin/base64"
	b, err := os.ReadFile(orig)
	if err != nil {
		t.Skipf("no %s on this machine: %v", orig, err)
	}
	copyPath := filepath.Join(t.TempDir(), "innocent")
	if err := os.WriteFile(copyPath, append(b, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	want := fileID(t, orig, nil).BuildID
	if len(want) < 32 || strings.Trim(want, "0123456789abcdef") != "" {
		t.Fatalf("build id of %s = %q, want a hex build id", orig, want)
	}
	if got := fileID(t, copyPath, nil).BuildID; got != want {
		t.Errorf("build id of a copy with a byte appended = %q, want %q", got, want)
	}
	if got := fileID(t, "/etc/passwd", nil).BuildID; got != "" {
		t.Errorf("build id of /etc/passwd = %q, want none", got)
	}
}

// fileID opens path as a worker does (any regular file) and reads its ids.
func fileID(t *testing.T, path string, sizes []int64) detect.FileID {
	t.Helper()
	f, st, err := openVerified(unix.AT_FDCWD, path, openFlags|unix.O_NOFOLLOW, 0, fileKey{})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	id, err := readFileID(f, st.Size, sizes, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return id
}

// FuzzReadBuildID feeds arbitrary bytes as an executable: the parser must not
// panic, and a build id it returns is bounded hex.
func FuzzReadBuildID(f *testing.F) {
	f.Add(elf64(note("GNU", ntGNUBuildID, []byte{1, 2, 3, 4})))
	f.Add([]byte("\x7fELF\x01\x02\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ReadBuildID(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(id) == 0 || len(id) > 2*maxBuildID || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("ReadBuildID = %q, want bounded lowercase hex", id)
		}
	})
}

// TestOpenRefusesSwappable: a FIFO is not opened for reading (it would
// block), a final symbolic link is not followed (it could be swapped between
// calls), and a regular file with another inode than the record's is not
// read.
func TestOpenRefusesSwappable(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("/usr/bin/base64", link); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/usr/bin/base64", &st); err != nil {
		t.Skipf("no /usr/bin/base64: %v", err)
	}
	other := fileKey{dev: AuditDev(st.Dev), ino: st.Ino + 1}
	for _, tt := range []struct {
		path string
		key  fileKey
	}{
		{fifo, fileKey{}}, {link, fileKey{}}, {filepath.Join(dir, "missing"), fileKey{}}, {"/usr/bin/base64", other},
	} {
		done := make(chan error, 1)
		go func() {
			f, _, err := openVerified(unix.AT_FDCWD, tt.path, openFlags|unix.O_NOFOLLOW, 0, tt.key)
			if err == nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("openVerified(%s, %+v) succeeded, want refused", tt.path, tt.key)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("openVerified(%s) blocked", tt.path)
		}
	}
}
