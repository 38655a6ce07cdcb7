package endpoint

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// listenTCP binds addr. A taken port is an error naming the address and,
// when /proc tells, who holds it.
func listenTCP(name, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s: address %s is already in use%s: %w", name, addr, PortHolder(addr), err)
		}
		return nil, fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	return ln, nil
}

// PortHolder names who listens on addr's TCP port, from /proc/net/tcp{,6}
// and the descriptors of /proc/*/fd, as " (held by pid N comm, uid U)";
// "" when it cannot tell.
func PortHolder(addr string) string {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return ""
	}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		uid, inode, ok := listeningSocket(f, uint16(port))
		if !ok {
			continue
		}
		if pid, comm, ok := socketOwner(inode); ok {
			return fmt.Sprintf(" (held by pid %d %s, uid %s)", pid, comm, uid)
		}
		return fmt.Sprintf(" (held by uid %s)", uid)
	}
	return ""
}

// listeningSocket finds the listening socket on port in a /proc/net/tcp
// table and returns its uid and inode.
func listeningSocket(table string, port uint16) (uid, inode string, ok bool) {
	b, err := os.ReadFile(table)
	if err != nil {
		return "", "", false
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) < 10 || f[3] != "0A" || !strings.HasSuffix(f[1], want) {
			continue
		}
		return f[7], f[9], true
	}
	return "", "", false
}

// socketOwner finds a process holding socket inode.
func socketOwner(inode string) (int, string, bool) {
	procs, _ := os.ReadDir("/proc")
	target := "socket:[" + inode + "]"
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + p.Name() + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name()); l == target {
				return pid, procComm(pid), true
			}
		}
	}
	return 0, "", false
}

// procComm is pid's command name, printable, or "".
func procComm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strconv.QuoteToASCII(strings.TrimSpace(string(b)))
}
