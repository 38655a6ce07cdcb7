package proc

import (
	"path/filepath"
	"strconv"
	"strings"
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
