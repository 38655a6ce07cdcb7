package sink

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobody is the uid of the unprivileged user the tests hand files to.
const nobody = 65534

// TestTokenFileTrustAsRoot builds real files, directories and symlinks,
// some handed to nobody (which needs root), and reads each as a token.
func TestTokenFileTrustAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("TestTokenFileTrustAsRoot needs root: it chowns files to nobody")
	}
	const secret = "tok-9f8e7d"
	write := func(t *testing.T, path string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(secret+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		make func(t *testing.T, dir string) string // returns the token_file path
		want string                                // "" for accepted, else part of the error
	}{
		{"root 0600", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "tok")
			write(t, p, 0o600)
			return p
		}, ""},
		{"root 0400 through a root symlink", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "tok")
			write(t, p, 0o400)
			l := filepath.Join(dir, "link")
			if err := os.Symlink(p, l); err != nil {
				t.Fatal(err)
			}
			return l
		}, ""},
		{"readable by others", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "tok")
			write(t, p, 0o644)
			return p
		}, "is readable by group or others (mode 0644)"},
		{"readable by group", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "tok")
			write(t, p, 0o640)
			return p
		}, "is readable by group or others"},
		{"writable by others", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "tok")
			write(t, p, 0o602)
			return p
		}, "is writable by group or others"},
		{"owned by nobody", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "tok")
			write(t, p, 0o600)
			if err := os.Chown(p, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return p
		}, "is owned by uid 65534, not root"},
		{"symlink owned by nobody", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "tok")
			write(t, p, 0o600)
			l := filepath.Join(dir, "link")
			if err := os.Symlink(p, l); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(l, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return l
		}, "link: is owned by uid 65534"},
		{"in a directory writable by others", func(t *testing.T, dir string) string {
			sub := filepath.Join(dir, "open")
			if err := os.Mkdir(sub, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(sub, 0o777); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(sub, "tok")
			write(t, p, 0o600)
			return p
		}, "open: is writable by group or others (mode 0777)"},
		{"in a directory owned by nobody", func(t *testing.T, dir string) string {
			sub := filepath.Join(dir, "theirs")
			if err := os.Mkdir(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(sub, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(sub, "tok")
			write(t, p, 0o600)
			return p
		}, "theirs: is owned by uid 65534"},
		{"a directory", func(t *testing.T, dir string) string { return dir }, "is not a regular file"},
		{"a fifo", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, "is not a regular file"},
		{"too large", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "tok")
			if err := os.WriteFile(p, []byte(strings.Repeat(secret, 10000)), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, "is larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.make(t, t.TempDir())
			got, err := readToken(p, "")
			if tt.want == "" {
				if err != nil || got != secret {
					t.Errorf("readToken(%s) = %q, %v, want the token", p, got, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("readToken(%s) = %q, nil, want an error containing %q", p, got, tt.want)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || !strings.Contains(msg, "token file") || strings.Contains(msg, secret) {
				t.Errorf("readToken(%s) error = %q, want one naming the token file with %q and never its content", p, msg, tt.want)
			}
		})
	}
}

// TestCheckTrustedPathSticky: /tmp (sticky, writable by all) is accepted on
// the way, as nobody can replace a root-owned entry in it, but not as the
// final component.
func TestCheckTrustedPathSticky(t *testing.T) {
	dir := t.TempDir()
	sticky := filepath.Join(dir, "sticky")
	if err := os.Mkdir(sticky, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(sticky, "inner")
	if err := os.Mkdir(inner, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := CheckTrustedPath(inner); err != nil {
		t.Errorf("CheckTrustedPath(%s) = %v, want nil through a sticky directory", inner, err)
	}
	if _, _, err := CheckTrustedPath(sticky); err == nil {
		t.Errorf("CheckTrustedPath(%s) = nil, want an error for a final component writable by others", sticky)
	}
	if _, _, err := CheckTrustedPath("relative/path"); err == nil {
		t.Error("CheckTrustedPath(relative) = nil, want an error")
	}
}

func TestReadSecretFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("!!! SKIPPED: needs root (secret files must be root-owned)")
	}
	dir := t.TempDir()
	write := func(name string, mode os.FileMode, size int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, size), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok", 0o600, 10)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(ok, link); err != nil {
		t.Fatal(err)
	}
	notRoot := write("nobody", 0o600, 10)
	if err := os.Chown(notRoot, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"root 0600", ok, ""},
		{"root 0400", write("ro", 0o400, 10), ""},
		{"group readable", write("g", 0o640, 10), "readable by group or others"},
		{"world readable", write("w", 0o604, 10), "readable by group or others"},
		{"too big", write("big", 0o600, maxSecretFile+1), "larger than"},
		{"not root", notRoot, "not root"},
		{"root symlink to a root file", link, ""}, // every link on the way is checked like a directory
		{"directory", dir, "not a regular file"},
		{"missing", filepath.Join(dir, "none"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadSecretFile(tt.path)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ReadSecretFile(%s) = %v, want nil", tt.name, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("ReadSecretFile(%s) = %v, want an error with %q", tt.name, err, tt.want)
			}
		})
	}
}
