package sink

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// UntrustedError says why a path the daemon reads or writes as root could
// be changed by someone other than root. It names the path, never the
// content of a file.
type UntrustedError struct {
	Path   string // the component at fault
	Reason string // e.g. "is writable by group or others (mode 0777)"
}

func (e *UntrustedError) Error() string { return e.Path + ": " + e.Reason }

// maxSymlinks bounds the symbolic links CheckTrustedPath follows: Linux's
// own limit (MAXSYMLINKS, include/linux/namei.h).
const maxSymlinks = 40

// CheckTrustedPath walks path from / as the kernel resolves it, following
// symbolic links, and checks that no one but root can change what it names,
// like sshd's StrictModes: every directory on the way and the final
// component must be owned by root and not writable by group or others, and
// every symbolic link on the way must be owned by root. A directory
// writable by others is accepted only with its sticky bit set (as /tmp):
// there no one but root can rename or remove the root-owned entry that the
// walk goes through next. It returns the resolved path (free of symbolic
// links, to open with O_NOFOLLOW) and its FileInfo. If the final component
// does not exist, the error wraps fs.ErrNotExist and everything above it
// has been checked.
func CheckTrustedPath(path string) (string, fs.FileInfo, error) {
	if !filepath.IsAbs(path) {
		return "", nil, &UntrustedError{Path: path, Reason: "is not an absolute path"}
	}
	cur := "/"
	fi, err := os.Lstat(cur)
	if err != nil {
		return "", nil, err
	}
	if err := checkOwnedBy(cur, fi, true); err != nil {
		return "", nil, err
	}
	rest := splitPath(path)
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err = os.Lstat(next)
		if err != nil {
			return "", nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if err := checkOwner(next, fi); err != nil {
				return "", nil, err
			}
			if links++; links > maxSymlinks {
				return "", nil, &UntrustedError{Path: path, Reason: "has too many levels of symbolic links"}
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", nil, err
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(splitPath(target), rest...)
			continue
		}
		if err := checkOwnedBy(next, fi, len(rest) > 0); err != nil {
			return "", nil, err
		}
		if len(rest) > 0 && !fi.IsDir() {
			return "", nil, &UntrustedError{Path: next, Reason: "is not a directory"}
		}
		cur = next
	}
	return cur, fi, nil
}

func splitPath(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
}

// checkOwnedBy checks one resolved component: owned by root, not writable
// by group or others unless it is a sticky directory on the way (passing).
func checkOwnedBy(path string, fi fs.FileInfo, passing bool) error {
	if err := checkOwner(path, fi); err != nil {
		return err
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 {
		return nil
	}
	if passing && fi.IsDir() && fi.Mode()&fs.ModeSticky != 0 {
		return nil
	}
	return &UntrustedError{Path: path, Reason: fmt.Sprintf("is writable by group or others (mode %04o)", perm)}
}

func checkOwner(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return &UntrustedError{Path: path, Reason: "has no owner the daemon can tell"}
	}
	if st.Uid != 0 {
		return &UntrustedError{Path: path, Reason: fmt.Sprintf("is owned by uid %d, not root", st.Uid)}
	}
	return nil
}

// CheckOwnedFile checks an opened file's FileInfo: owned by root and not
// writable by group or others; with secret, not readable by them either.
func CheckOwnedFile(path string, fi fs.FileInfo, secret bool) error {
	if err := checkOwnedBy(path, fi, false); err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); secret && perm&0o044 != 0 {
		return &UntrustedError{Path: path, Reason: fmt.Sprintf("is readable by group or others (mode %04o)", perm)}
	}
	return nil
}

// File size bounds: a token is a few dozen bytes and a PEM key a few KiB;
// a CA bundle may hold a whole system's roots (about 200 KiB).
const (
	maxSecretFile = 64 << 10
	maxPublicFile = 1 << 20
)

// readTrustedFile reads a file the daemon trusts for its configuration (a
// token, a key, a CA bundle): the path must pass CheckTrustedPath, the
// opened file be a regular file owned by root, not writable by group or
// others (nor readable, with secret), and at most maxSecretFile bytes
// (maxPublicFile when not secret).
// Errors name the file (what describes it), never its content.
func readTrustedFile(path, what string, secret bool) ([]byte, error) {
	real, _, err := CheckTrustedPath(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", what, &UntrustedError{Path: path, Reason: "is not a regular file"})
	}
	if err := CheckOwnedFile(path, fi, secret); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	limit := int64(maxPublicFile)
	if secret {
		limit = maxSecretFile
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w", what, &UntrustedError{Path: path, Reason: fmt.Sprintf("is larger than %d bytes", limit)})
	}
	return b, nil
}

// ReadSecretFile reads a secret a sink authenticates with (a token, a
// creds file, an nkey seed): whoever can read it can send as this host, and
// whoever can write it can redirect its alerts. readTrustedFile holds the
// rules every sink's secrets follow.
func ReadSecretFile(path string) ([]byte, error) {
	return readTrustedFile(path, "secret file", true)
}
