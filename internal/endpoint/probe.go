package endpoint

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// fileID identifies a file by device and inode.
type fileID struct{ dev, ino uint64 }

func statID(fi os.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{uint64(st.Dev), st.Ino}
	}
	return fileID{}
}

// listenProbe binds the probe socket at path, mode 0600, owned by this
// process's user. The socket is bound under a private temporary name and
// renamed into place once its mode is set, so that it is never reachable
// with a looser mode. A socket at path that answers is another daemon's:
// ErrProbeInUse, naming its pid; one that does not is stale and replaced.
// Anything else at path is left alone and refused.
func listenProbe(path string) (net.Listener, fileID, error) {
	dir := filepath.Dir(path)
	if err := checkProbeDir(dir); err != nil {
		return nil, fileID{}, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fileID{}, fmt.Errorf("probe socket %s: a %s is there, not a socket; not replaced", path, fi.Mode().Type())
		}
		c, err := net.DialTimeout("unix", path, 500*time.Millisecond)
		if err == nil {
			holder := ""
			if cred, ok := peerCred(c.(*net.UnixConn)); ok {
				holder = " (held by " + describePID(cred.Pid) + ")"
			}
			c.Close()
			return nil, fileID{}, fmt.Errorf("%w: %s answers%s", ErrProbeInUse, path, holder)
		}
	}
	tmp, err := os.MkdirTemp(dir, ".probe-")
	if err != nil {
		return nil, fileID{}, fmt.Errorf("probe socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	tmpSock := filepath.Join(tmp, "s")
	ln, err := net.Listen("unix", tmpSock)
	if err != nil {
		return nil, fileID{}, fmt.Errorf("probe socket %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	// Close must not unlink the temporary name (gone after the rename) nor
	// the final one (Close removes it itself, if still ours).
	ul.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, fileID, error) {
		ul.Close()
		return nil, fileID{}, fmt.Errorf("probe socket %s: %w", path, err)
	}
	if err := os.Chmod(tmpSock, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmpSock, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return ul, statID(fi), nil
}

// checkProbeDir creates dir 0755 if missing and refuses one that is a
// symlink, is not owned by this process's user or root, or is writable by
// group or others: whoever can write there could replace the socket.
func checkProbeDir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("probe socket directory %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("probe socket directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("probe socket directory %s: not a directory (%s)", dir, fi.Mode().Type())
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("probe socket directory %s: no owner", dir)
	}
	if uid := uint32(os.Geteuid()); st.Uid != uid && st.Uid != 0 {
		return fmt.Errorf("probe socket directory %s: owned by uid %d, want %d or root", dir, st.Uid, uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("probe socket directory %s: mode %04o is writable by group or others", dir, fi.Mode().Perm())
	}
	return nil
}

// removeProbe removes the socket at path if it is still the one bound
// (id): a later daemon's socket stays.
func removeProbe(path string, id fileID) {
	fi, err := os.Lstat(path)
	if err != nil || statID(fi) != id {
		return
	}
	os.Remove(path)
}
