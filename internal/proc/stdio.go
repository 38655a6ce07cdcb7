package proc

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/encwatch/encwatch/detect"
)

// maxLinkName bounds a descriptor's link target kept for an alert; the
// kernel's own bound is PATH_MAX.
const maxLinkName = 256

// Descriptors reads processes' standard streams from the proc filesystem:
// detect.Descriptors, for the pipe evidence of sequences.
//
// It reads the link /proc/PID/fd/N (readlink) and never the file behind it:
// readlink asks the kernel for the name of an open file, so a descriptor on
// a FUSE file or a stalled network mount costs what any other does, where
// stat would ask its filesystem and wait for it.
type Descriptors struct{ root string }

// NewDescriptors returns Descriptors reading root ("/proc" unless a test
// says otherwise).
func NewDescriptors(root string) *Descriptors {
	if root == "" {
		root = "/proc"
	}
	return &Descriptors{root: root}
}

// Stdio returns what pid's descriptors 0 and 1 refer to. With comm set, a
// process whose comm differs (the pid was reused, or it exec'd since) is not
// read, and neither is one whose comm changes while it is read.
func (d *Descriptors) Stdio(pid int, comm string) detect.Stdio {
	if pid <= 0 {
		return detect.Stdio{}
	}
	dir := d.root + "/" + strconv.Itoa(pid)
	if comm != "" && !d.hasComm(dir, comm) {
		return detect.Stdio{}
	}
	s := detect.Stdio{In: readStream(dir + "/fd/0"), Out: readStream(dir + "/fd/1")}
	if comm != "" && !d.hasComm(dir, comm) {
		return detect.Stdio{}
	}
	return s
}

// hasComm reports whether the process at dir has the command name comm.
func (d *Descriptors) hasComm(dir, comm string) bool {
	b, err := readBounded(dir+"/comm", 64)
	return err == nil && string(bytes.TrimSuffix(b, []byte{'\n'})) == comm
}

// FD returns what pid's descriptor fd refers to, as Stdio does.
func (d *Descriptors) FD(pid int, comm string, fd int) detect.Stream {
	if pid <= 0 || fd < 0 {
		return detect.Stream{}
	}
	dir := d.root + "/" + strconv.Itoa(pid)
	if comm != "" && !d.hasComm(dir, comm) {
		return detect.Stream{}
	}
	s := readStream(dir + "/fd/" + strconv.Itoa(fd))
	if comm != "" && !d.hasComm(dir, comm) {
		return detect.Stream{}
	}
	return s
}

// Children returns at most max children of pid's main thread, from
// /proc/PID/task/PID/children, and whether they are all of them; nil and
// false when the kernel has no such file.
func (d *Descriptors) Children(pid int, max int) ([]int, bool) {
	if pid <= 0 || max <= 0 {
		return nil, false
	}
	p := strconv.Itoa(pid)
	// One pid more than asked tells whether there were more.
	b, err := readBounded(d.root+"/"+p+"/task/"+p+"/children", int64(max+1)*12)
	if err == io.EOF {
		return nil, true // no children
	}
	if err != nil {
		return nil, false
	}
	kids := ParseChildren(b, max+1)
	if len(kids) > max || int64(len(b)) >= int64(max+1)*12 {
		return kids[:min(len(kids), max)], false
	}
	return kids, true
}

// Holds reports whether pid holds s open on a descriptor other than 1 and
// 2, reading at most max of its descriptors, and whether it read them all.
func (d *Descriptors) Holds(pid int, s detect.Stream, max int) (held, complete bool) {
	if pid <= 0 || s.Kind != detect.StreamPipe && s.Kind != detect.StreamSocket {
		return false, false
	}
	dir := d.root + "/" + strconv.Itoa(pid) + "/fd"
	f, err := os.Open(dir)
	if err != nil {
		return false, false
	}
	defer f.Close()
	names, err := f.Readdirnames(max + 1)
	if err != nil && err != io.EOF {
		return false, false
	}
	complete = len(names) <= max
	for i, n := range names {
		if i == max {
			break
		}
		if n == "1" || n == "2" {
			continue
		}
		got := readStream(dir + "/" + n)
		if got.Kind == s.Kind && got.Ino == s.Ino {
			return true, true
		}
	}
	return false, complete
}

// ParseChildren parses /proc/PID/task/TID/children: pids separated by
// spaces. A truncated last pid, or anything that is not a pid, is left out.
func ParseChildren(b []byte, max int) []int {
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if len(out) >= max {
			break
		}
		if n, err := strconv.Atoi(f); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

func readStream(path string) detect.Stream {
	var buf [maxLinkName + 1]byte
	for {
		n, err := syscall.Readlink(path, buf[:])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil || n <= 0:
			return detect.Stream{}
		}
		return ParseStream(buf[:n])
	}
}

// ParseStream reads a descriptor's link target: "pipe:[INODE]" and
// "socket:[INODE]" by inode, anything else (a path, "anon_inode:[...]")
// by name, cut at maxLinkName bytes.
func ParseStream(b []byte) detect.Stream {
	for _, k := range [...]struct {
		prefix string
		kind   detect.StreamKind
	}{{"pipe:[", detect.StreamPipe}, {"socket:[", detect.StreamSocket}} {
		if rest, ok := bytes.CutPrefix(b, []byte(k.prefix)); ok {
			if num, ok := bytes.CutSuffix(rest, []byte{']'}); ok {
				if ino, err := strconv.ParseUint(string(num), 10, 64); err == nil {
					return detect.Stream{Kind: k.kind, Ino: ino}
				}
			}
		}
	}
	if len(b) > maxLinkName {
		b = b[:maxLinkName]
	}
	return detect.Stream{Kind: detect.StreamOther, Name: string(b)}
}
