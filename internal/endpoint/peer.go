package endpoint

import (
	"encoding/binary"
	"fmt"
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// clientKey names the client of c for the per-client cap: "uid:N" when
// the kernel tells whose socket the other end is (a unix socket's
// SO_PEERCRED; a loopback TCP connection's peer socket, found with
// sock_diag), else "ip:ADDR" (a remote client, or a lookup that failed).
// On loopback every user shares the address, so without the uid one user
// could fill the cap for all.
func clientKey(c net.Conn) string {
	switch c := c.(type) {
	case *net.UnixConn:
		if cred, ok := peerCred(c); ok {
			return "uid:" + strconv.FormatUint(uint64(cred.Uid), 10)
		}
		return "unix"
	case *net.TCPConn:
		remote, _ := c.RemoteAddr().(*net.TCPAddr)
		local, _ := c.LocalAddr().(*net.TCPAddr)
		if remote == nil || local == nil {
			return "ip:?"
		}
		if remote.IP.IsLoopback() || remote.IP.Equal(local.IP) {
			if uid, ok := tcpPeerUID(remote, local); ok {
				return "uid:" + strconv.FormatUint(uint64(uid), 10)
			}
		}
		return "ip:" + remote.IP.String()
	}
	return "?"
}

// peerCred is the credentials of the process at the other end of c, from
// SO_PEERCRED (socket(7)).
func peerCred(c *net.UnixConn) (*unix.Ucred, bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, false
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return nil, false
	}
	return cred, true
}

// sock_diag request and reply layouts (linux/inet_diag.h).
const (
	inetDiagReqV2Len = 56 // family, protocol, ext, pad, states, inet_diag_sockid
	inetDiagSockID   = 8  // offset of the sockid in the request
	inetDiagUIDOff   = 64 // offset of idiag_uid in struct inet_diag_msg
	inetDiagNoCookie = ^uint32(0)
	nlmsgHdrLen      = 16
)

// tcpPeerUID asks the kernel (NETLINK_SOCK_DIAG, an exact lookup by
// address and port: no privilege, no table scan) for the uid that owns
// the local TCP socket at remote, connected to local: the client's end of
// a loopback connection.
func tcpPeerUID(remote, local *net.TCPAddr) (uint32, bool) {
	family := unix.AF_INET6
	src, dst := remote.IP.To16(), local.IP.To16()
	if r4, l4 := remote.IP.To4(), local.IP.To4(); r4 != nil && l4 != nil {
		family, src, dst = unix.AF_INET, r4, l4
	}
	req := make([]byte, nlmsgHdrLen+inetDiagReqV2Len)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:], 1) // seq
	r := req[nlmsgHdrLen:]
	r[0] = byte(family)
	r[1] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(r[4:], ^uint32(0)) // every state
	id := r[inetDiagSockID:]
	binary.BigEndian.PutUint16(id[0:], uint16(remote.Port)) // the peer socket's own port
	binary.BigEndian.PutUint16(id[2:], uint16(local.Port))
	copy(id[4:20], src)
	copy(id[20:36], dst)
	binary.NativeEndian.PutUint32(id[40:], inetDiagNoCookie)
	binary.NativeEndian.PutUint32(id[44:], inetDiagNoCookie)

	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Usec: 200_000}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, false
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, false
	}
	return parseDiagReply(buf[:n])
}

// parseDiagReply reads idiag_uid from a sock_diag reply; an error reply or
// a short one is no answer.
func parseDiagReply(b []byte) (uint32, bool) {
	if len(b) < nlmsgHdrLen {
		return 0, false
	}
	l := binary.NativeEndian.Uint32(b[0:])
	typ := binary.NativeEndian.Uint16(b[4:])
	if typ != unix.SOCK_DIAG_BY_FAMILY || int(l) > len(b) || l < nlmsgHdrLen+inetDiagUIDOff+4 {
		return 0, false
	}
	return binary.NativeEndian.Uint32(b[nlmsgHdrLen+inetDiagUIDOff:]), true
}

// describePID names a process for an error: "pid N comm".
func describePID(pid int32) string {
	return fmt.Sprintf("pid %d %s", pid, procComm(int(pid)))
}
