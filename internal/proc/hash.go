package proc

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/detect"
)

// Errors of a lookup; counted, never returned to detection.
var (
	errDeadline   = errors.New("file read past its deadline")
	errNotTheFile = errors.New("not the regular file the record names")
	errNoRoot     = errors.New("no process root to open the file through")
)

// openFlags open a file the daemon reads on an event's behalf: read only;
// O_NONBLOCK so that a FIFO swapped in does not wait for a writer and a
// lease does not stall the open for lease-break-time (fs/locks.c answers
// EWOULDBLOCK instead); O_NOCTTY so that a terminal never becomes ours.
const openFlags = unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

// hashChunk is what one read hashes between deadline checks.
const hashChunk = 256 << 10

// identify reads ref for job j: through /proc/PID/exe when that is the
// file, else by its path under the process's root, then its parent's, a
// known ancestor's or init's (the process has often exited: an encoder
// run lasts milliseconds).
func (i *Identifier) identify(j *Job, ref fileRef, deadline time.Time) (fileResult, error) {
	r := fileResult{key: ref.key}
	f, st, err := i.open(j, ref)
	if err != nil {
		return r, err
	}
	defer f.Close()
	// A deleted file (read through /proc/PID/exe) is not kept: its
	// inode number is free for the next file created.
	r.stable = st.Uid == 0 && st.Mode&0o022 == 0 && st.Nlink > 0
	r.mode = st.Mode
	ck := contentKey{dev: st.Dev, ino: st.Ino, size: st.Size, ctime: st.Ctim.Nano()}
	i.mu.Lock()
	id, hit := i.content[ck]
	i.mu.Unlock()
	if hit {
		r.id = id
		return r, nil
	}
	if r.id, err = readFileID(f, st.Size, j.sizes, deadline); err != nil {
		return r, err
	}
	i.read.Add(1)
	i.mu.Lock()
	if len(i.content) >= i.maxEntries {
		clear(i.content)
	}
	i.content[ck] = r.id
	i.mu.Unlock()
	return r, nil
}

// open returns ref opened read-only and verified: a regular file, with the
// record's device and inode when it has them.
func (i *Identifier) open(j *Job, ref fileRef) (*os.File, *unix.Stat_t, error) {
	if ref.key.ino != 0 {
		// A magic link: O_NOFOLLOW would refuse it (ELOOP), and it needs
		// none, since no path is walked.
		i.opened.Add(1)
		if f, st, err := openVerified(unix.AT_FDCWD, i.procPath(j.pid, "exe"), openFlags, 0, ref.key); err == nil {
			return f, st, nil
		}
		// A program run through a descriptor (fexecve, or exec of
		// /proc/PID/fd/N): the process that holds the descriptor
		// usually outlives a short-lived program, and its descriptor is
		// a magic link to the very file. The record's device and inode
		// decide, as for exe.
		if holder, fd, ok := descriptorPath(ref.path, j.pid); ok {
			i.opened.Add(1)
			if f, st, err := openHeld(i.procPath(holder, "fd/"+fd), ref.key); err == nil {
				return f, st, nil
			}
		}
	}
	names := []string{ref.path}
	if ref.key.ino != 0 && j.exe != "" && j.exe != ref.path {
		names = append(names, j.exe) // exe is the resolved name, without symbolic links
	}
	// The answer, when no root has the file, is the most telling failure:
	// another file at its path, then a path that could not be opened,
	// then a path found nowhere, then no root to look in at all.
	var last error = errNoRoot
	for _, pid := range j.roots {
		f, st, err := i.openInRoot(pid, names, ref.key)
		if err == nil {
			return f, st, nil
		}
		if failureRank(err) > failureRank(last) {
			last = err
		}
	}
	return nil, nil, last
}

// descriptorPath reports whether name runs a program through a descriptor
// ("/proc/PID/fd/N", "/proc/self/fd/N", "/dev/fd/N"), and which process
// holds it: PID, or pid (the exec'ing process) for self and /dev/fd.
func descriptorPath(name string, pid int) (holder int, fd string, ok bool) {
	var who string
	switch {
	case strings.HasPrefix(name, "/dev/fd/"):
		who, fd = "self", strings.TrimPrefix(name, "/dev/fd/")
	case strings.HasPrefix(name, "/proc/"):
		var rest string
		who, rest, ok = strings.Cut(strings.TrimPrefix(name, "/proc/"), "/")
		if !ok || !strings.HasPrefix(rest, "fd/") {
			return 0, "", false
		}
		fd = strings.TrimPrefix(rest, "fd/")
	default:
		return 0, "", false
	}
	if n, err := strconv.Atoi(fd); err != nil || n < 0 {
		return 0, "", false
	}
	switch who {
	case "self", "thread-self":
		return pid, fd, pid > 0
	}
	n, err := strconv.Atoi(who)
	if err != nil || n <= 0 {
		return 0, "", false
	}
	return n, fd, true
}

// failureRank orders the failures of open: see there.
func failureRank(err error) int {
	switch {
	case err == errNotTheFile:
		return 3
	case err == errNoRoot:
		return 0
	case errors.Is(err, unix.ENOENT):
		return 1
	}
	return 2
}

// unreadReason says, in an alert's words, why a file was not identified.
func unreadReason(err error) string {
	switch {
	case err == errDeadline:
		return "not read within the deadline"
	case err == errNotTheFile:
		return "another file stood at its path when it was read"
	case err == errNoRoot:
		return "its process, its parent and the ancestors known were gone when it was read"
	case errors.Is(err, unix.ENOENT):
		return "it was gone, and its process too, when it was read"
	}
	return "it could not be opened (" + err.Error() + ")"
}

// openInRoot opens the first of names that is the file, as process pid
// sees it: resolved inside /proc/PID/root (RESOLVE_IN_ROOT: an absolute
// symbolic link stays in the process's root), no magic links, no final
// symbolic link. It returns the most telling failure (failureRank).
func (i *Identifier) openInRoot(pid int, names []string, key fileKey) (*os.File, *unix.Stat_t, error) {
	i.opened.Add(1)
	root, err := unix.Open(i.procPath(pid, "root"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, errNoRoot // gone, or not ours to look through
	}
	defer unix.Close(root)
	var last error = errNoRoot
	for _, name := range names {
		if !strings.HasPrefix(name, "/") {
			err = errNotTheFile
		} else {
			i.opened.Add(1)
			var f *os.File
			var st *unix.Stat_t
			f, st, err = openVerified(root, strings.TrimLeft(name, "/"), openFlags|unix.O_NOFOLLOW,
				unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS, key)
			if err == nil {
				return f, st, nil
			}
		}
		if failureRank(err) > failureRank(last) {
			last = err
		}
	}
	return nil, nil, last
}

// openHeld opens the file another process's descriptor link names,
// without opening anything else: the holder may have swapped the
// descriptor for a device, whose open alone can act (a tape rewinds, a
// modem hangs up). An O_PATH descriptor opens nothing; only once fstat shows
// the record's regular file is it reopened for reading, through our own
// descriptor table, and checked again.
func openHeld(link string, key fileKey) (*os.File, *unix.Stat_t, error) {
	pfd, err := unix.Open(link, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || key.ino == 0 || st.Ino != key.ino || AuditDev(st.Dev) != key.dev {
		return nil, nil, errNotTheFile
	}
	return openVerified(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(pfd), openFlags, 0, key)
}

// openVerified opens path (relative to dir) with flags and resolve
// (openat2), and keeps the descriptor only when fstat shows a regular file
// with key's device and inode (any regular file when key has no inode).
func openVerified(dir int, path string, flags int, resolve uint64, key fileKey) (*os.File, *unix.Stat_t, error) {
	fd, err := unix.Openat2(dir, path, &unix.OpenHow{Flags: uint64(flags), Resolve: resolve})
	if err != nil {
		return nil, nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || key.ino != 0 && (st.Ino != key.ino || AuditDev(st.Dev) != key.dev) {
		unix.Close(fd)
		return nil, nil, errNotTheFile
	}
	return os.NewFile(uintptr(fd), path), &st, nil
}

// readFileID reads the build id of f; when its size is one of sizes
// (sorted), its SHA-256; when the size of its executable segments is, their
// SHA-256 (Text). It gives up at deadline.
func readFileID(f *os.File, size int64, sizes []int64, deadline time.Time) (detect.FileID, error) {
	var id detect.FileID
	id.BuildID, _ = ReadBuildID(f) // "" for a file without one
	buf := make([]byte, hashChunk)
	if segs, total, err := ExecSegments(f); err == nil && total <= size {
		if _, found := slices.BinarySearch(sizes, total); found {
			s := sha256.New()
			for _, seg := range segs {
				if err := hashRange(s, f, buf, seg.Off, seg.Size, deadline); err != nil {
					return detect.FileID{}, err
				}
			}
			id.Text = hex.EncodeToString(s.Sum(nil))
		}
	}
	if _, found := slices.BinarySearch(sizes, size); !found {
		return id, nil
	}
	s := sha256.New()
	// The size was checked; a file growing meanwhile is cut at it.
	if err := hashRange(s, f, buf, 0, size, deadline); err != nil {
		return detect.FileID{}, err
	}
	id.SHA256 = hex.EncodeToString(s.Sum(nil))
	return id, nil
}

// hashRange writes n bytes of f from off to h, a chunk of buf at a time,
// giving up at deadline; a file shorter than that is not the file.
func hashRange(h io.Writer, f io.ReaderAt, buf []byte, off, n int64, deadline time.Time) error {
	for end := off + n; off < end; {
		if time.Now().After(deadline) {
			return errDeadline
		}
		m, err := f.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		h.Write(buf[:m])
		off += int64(m)
		if err == io.EOF && off < end || err != nil && err != io.EOF {
			return errNotTheFile
		}
	}
	return nil
}
