package proc

import (
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxCgroup bounds what is read of /proc/PID/cgroup.
const maxCgroup = 16 << 10

// ContainerID returns the id of the container process pid runs in, read from
// /proc/PID/cgroup under root, or "" for a process on the host or one that
// is gone.
func ContainerID(root string, pid int) string {
	b, err := readBounded(filepath.Join(root, strconv.Itoa(pid), "cgroup"), maxCgroup)
	if err != nil {
		return ""
	}
	return ParseCgroupContainerID(b)
}

// ParseCgroupContainerID finds a container id in /proc/PID/cgroup: the
// 64-hex-digit name that Docker, containerd, CRI-O and Podman give a
// container's cgroup ("/docker/ID", "docker-ID.scope",
// "cri-containerd-ID.scope", "crio-ID.scope", "libpod-ID.scope",
// "/kubepods/.../ID").
func ParseCgroupContainerID(b []byte) string {
	for line := range strings.SplitSeq(string(b), "\n") {
		// hierarchy-ID:controllers:path
		_, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		_, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		segs := strings.Split(path, "/")
		for i := len(segs) - 1; i >= 0; i-- {
			seg := strings.TrimSuffix(segs[i], ".scope")
			if j := strings.LastIndexAny(seg, "-:"); j >= 0 {
				seg = seg[j+1:]
			}
			if isContainerID(seg) {
				return seg
			}
		}
	}
	return ""
}

func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// maxContainers bounds the processes Containers remembers, each with a
// pidfd open.
const maxContainers = 128

// Containers finds the container of a process for the alerts' enrichment,
// and remembers it for a process that lives on: the parent of an alerting
// process stands in for it once it has exited, and the same parent (a
// shell, a CI runner) raises alert after alert. A remembered process is
// held by a pidfd, so its answer is given again only while that very
// process lives, never for another that took its pid.
//
// The checks of a remembered process (pidfd_open, pidfd_send_signal with
// no signal) never block, so they are raw system calls: the runtime's
// monitor thread is neither woken nor made to take the processor away
// (docs/architecture.md, the pipeline without wake-ups). Only a process not yet known
// costs a read of /proc/PID/cgroup.
//
// A Containers is for one goroutine: the detection stage's.
type Containers struct {
	root  string
	known map[int]knownContainer
	// noPidfd is set when the kernel has no pidfd_open (before Linux 5.3):
	// every lookup then reads /proc, as ContainerID does.
	noPidfd bool
}

type knownContainer struct {
	pidfd int
	id    string
}

// NewContainers looks processes up under root, normally "/proc".
func NewContainers(root string) *Containers {
	return &Containers{root: root, known: make(map[int]knownContainer)}
}

// Of returns the container of process pid: "" for a process on the host or
// one that is gone.
func (c *Containers) Of(pid int) string {
	if k, ok := c.known[pid]; ok {
		if pidfdAlive(k.pidfd) {
			return k.id
		}
		c.forget(pid, k)
	}
	if c.noPidfd || pid <= 0 {
		return ContainerID(c.root, pid)
	}
	fd, errno := pidfdOpen(pid)
	switch {
	case errno == unix.ESRCH:
		return ""
	case errno == unix.ENOSYS:
		c.noPidfd = true
		return ContainerID(c.root, pid)
	case errno != 0: // out of descriptors: look, but do not remember
		return ContainerID(c.root, pid)
	}
	id := ContainerID(c.root, pid)
	// The pid named this process when the pidfd was opened; alive after the
	// read, it named the same process during the read too.
	if !pidfdAlive(fd) {
		unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
		return ""
	}
	if len(c.known) >= maxContainers {
		c.sweep()
	}
	c.known[pid] = knownContainer{pidfd: fd, id: id}
	return id
}

// Len is how many processes are remembered.
func (c *Containers) Len() int { return len(c.known) }

// Close forgets every process and closes their pidfds.
func (c *Containers) Close() {
	for pid, k := range c.known {
		c.forget(pid, k)
	}
}

func (c *Containers) forget(pid int, k knownContainer) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(k.pidfd), 0, 0)
	delete(c.known, pid)
}

// sweep makes room: it forgets the processes that have exited, then live
// ones until a quarter of the bound is free, so that a user who keeps many
// alerting processes alive costs one sweep per quarter of the bound, not
// one per alert.
func (c *Containers) sweep() {
	for pid, k := range c.known {
		if !pidfdAlive(k.pidfd) {
			c.forget(pid, k)
		}
	}
	for pid, k := range c.known {
		if len(c.known) <= maxContainers*3/4 {
			return
		}
		c.forget(pid, k)
	}
}

func pidfdOpen(pid int) (int, unix.Errno) {
	fd, _, errno := unix.RawSyscall(unix.SYS_PIDFD_OPEN, uintptr(pid), 0, 0) // always close-on-exec
	return int(fd), errno
}

// pidfdAlive reports whether the process of pidfd has not exited (a zombie
// still holds its pid, and counts as alive).
func pidfdAlive(fd int) bool {
	_, _, errno := unix.RawSyscall6(unix.SYS_PIDFD_SEND_SIGNAL, uintptr(fd), 0, 0, 0, 0, 0)
	return errno == 0 || errno == unix.EPERM
}
