package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"
	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/audit"
)

// maxMessage is the largest datagram the kernel sends on an audit socket: a
// netlink header plus MAX_AUDIT_MESSAGE_LENGTH (8970, include/linux/audit.h),
// rounded up.
const maxMessage = 9216

// replyTimeout bounds how long a control request waits for its ACK. The
// kernel answers synchronously, so only a wedged kernel takes this long.
const replyTimeout = 5 * time.Second

// socket is a NETLINK_AUDIT socket that keeps its descriptor reachable (the
// data path needs it for poll and recvmmsg). send and receive are not safe
// for concurrent use; Close may be called once from any goroutine.
type socket struct {
	fd     int
	portID uint32
	seq    atomic.Uint32
	buf    []byte // receive buffer of the control path

	closeOnce sync.Once
	closeErr  error
}

// nlgrpReadlog is AUDIT_NLGRP_READLOG, include/uapi/linux/audit.h: the
// netlink multicast group on which the kernel copies every record it sends
// to the audit daemon, whoever that is. Joining it takes CAP_AUDIT_READ.
const nlgrpReadlog = 1

// openSocket opens and binds a NETLINK_AUDIT socket: every socket of this
// package is opened here. groups is the multicast group to join, 0 for a
// unicast socket (control, or the registered owner's data socket).
func openSocket(group uint32) (*socket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
			return nil, fmt.Errorf("open netlink audit socket: kernel has no audit support: %w", err)
		}
		return nil, fmt.Errorf("open netlink audit socket: %w", err)
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	if group != 0 {
		sa.Groups = 1 << (group - 1)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		switch {
		case group != 0 && errors.Is(err, unix.EPERM):
			return nil, fmt.Errorf("join audit multicast group: %w (needs CAP_AUDIT_READ)", err)
		case group != 0:
			return nil, fmt.Errorf("join audit multicast group: %w", err)
		}
		return nil, fmt.Errorf("bind netlink audit socket: %w", err)
	}
	name, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink audit socket name: %w", err)
	}
	nl, ok := name.(*unix.SockaddrNetlink)
	if !ok {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink audit socket name: unexpected address %T", name)
	}
	return &socket{fd: fd, portID: nl.Pid, buf: make([]byte, maxMessage)}, nil
}

// setReceiveBuffer sizes the socket receive buffer. SO_RCVBUFFORCE (root,
// CAP_NET_ADMIN) ignores net.core.rmem_max; SO_RCVBUF is capped by it.
func (s *socket) setReceiveBuffer(n int) error {
	if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); err == nil {
		return nil
	}
	if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n); err != nil {
		return fmt.Errorf("set receive buffer: %w", err)
	}
	return nil
}

// send sends one message to the kernel and returns its sequence number.
func (s *socket) send(typ, flags uint16, data []byte) (uint32, error) {
	seq := s.seq.Add(1)
	b := make([]byte, unix.NLMSG_HDRLEN+len(data))
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	binary.NativeEndian.PutUint32(b[12:], s.portID)
	copy(b[unix.NLMSG_HDRLEN:], data)
	for {
		err := unix.Sendto(s.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return seq, err
	}
}

// receive reads one datagram without waiting and returns the message it
// holds. Datagrams that did not come from the kernel (portid 0) are refused:
// any local process may send to a netlink socket. data aliases the socket's
// buffer until the next receive.
func (s *socket) receive() (h syscall.NlMsghdr, data []byte, err error) {
	n, from, err := unix.Recvfrom(s.fd, s.buf, unix.MSG_DONTWAIT)
	if err != nil {
		return h, nil, err
	}
	if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
		return h, nil, errors.New("netlink message not from the kernel")
	}
	h, data, ok := parseMessage(s.buf[:n])
	if !ok {
		return h, nil, fmt.Errorf("short netlink message (%d bytes)", n)
	}
	return h, data, nil
}

// Close closes the socket; later calls return the first result.
func (s *socket) Close() error {
	s.closeOnce.Do(func() { s.closeErr = unix.Close(s.fd) })
	return s.closeErr
}

// request sends one control message with NLM_F_ACK and waits for the kernel's
// acknowledgement. It returns the errno the kernel acknowledged with (nil for
// success). Records that arrive meanwhile (only on a registered data socket)
// are passed to keep, which may be nil.
func (s *socket) request(typ uint16, data []byte, keep func(audit.Record)) error {
	return s.exchange(typ, data, nil, keep)
}

// exchange is request for messages that also get replies (AUDIT_GET,
// AUDIT_LIST_RULES). The kernel may send the replies before or after the ACK
// (they come from a kernel thread), so exchange returns once it has both the
// ACK and a reply for which reply returned true. keep is as for request.
func (s *socket) exchange(typ uint16, data []byte, reply func(typ uint16, data []byte) bool, keep func(audit.Record)) error {
	seq, err := s.send(typ, unix.NLM_F_REQUEST|unix.NLM_F_ACK, data)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	acked, replied := false, reply == nil
	deadline := time.Now().Add(replyTimeout)
	for !acked || !replied {
		wait := time.Until(deadline)
		if wait <= 0 {
			return errors.New("no reply from the kernel")
		}
		fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(wait/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll: %w", err)
		}
		h, data, err := s.receive()
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			continue // overflow of a registered data socket; the kernel counts it as lost
		case err != nil:
			return fmt.Errorf("receive: %w", err)
		}
		switch {
		case h.Seq == seq && h.Type == unix.NLMSG_ERROR:
			if err := libaudit.ParseNetlinkError(data); err != nil {
				return err
			}
			acked = true
		case h.Seq == seq && reply != nil && !replied:
			replied = reply(h.Type, data)
		case keep != nil && h.Seq == 0 && isRecord(h.Type):
			keep(audit.Record{Type: h.Type, Data: append([]byte(nil), trimNUL(data)...)})
		}
	}
	return nil
}

// getStatus asks the kernel for its audit status.
func (s *socket) getStatus() (libaudit.AuditStatus, error) {
	var st libaudit.AuditStatus
	var perr error
	err := s.exchange(audit.MsgGet, nil, func(typ uint16, data []byte) bool {
		if typ == audit.MsgGet {
			perr = st.FromWireFormat(data)
			return true
		}
		return false
	}, nil)
	if err == nil {
		err = perr
	}
	return st, err
}

// listRules returns every rule in the kernel, in wire format.
func (s *socket) listRules() ([][]byte, error) {
	var rules [][]byte
	err := s.exchange(audit.MsgListRules, nil, func(typ uint16, data []byte) bool {
		if typ == audit.MsgListRules {
			rules = append(rules, append([]byte(nil), data...))
		}
		return typ == unix.NLMSG_DONE
	}, nil)
	return rules, err
}

// setStatus sends AUDIT_SET with the fields selected by st.Mask.
func (s *socket) setStatus(st libaudit.AuditStatus, keep func(audit.Record)) error {
	return s.request(audit.MsgSet, statusWire(st), keep)
}

// statusWire encodes struct audit_status (include/uapi/linux/audit.h) in host
// byte order.
func statusWire(st libaudit.AuditStatus) []byte {
	b := make([]byte, 0, 44)
	for _, v := range []uint32{
		uint32(st.Mask), st.Enabled, st.Failure, st.PID, st.RateLimit, st.BacklogLimit,
		st.Lost, st.Backlog, st.FeatureBitmap, st.BacklogWaitTime, st.BacklogWaitTimeActual,
	} {
		b = binary.NativeEndian.AppendUint32(b, v)
	}
	return b
}

// isRecord reports whether a netlink message type carries an audit record
// rather than netlink or audit control traffic.
func isRecord(typ uint16) bool {
	switch typ {
	case unix.NLMSG_NOOP, unix.NLMSG_ERROR, unix.NLMSG_DONE, unix.NLMSG_OVERRUN, audit.MsgReplace:
		return false
	}
	// Control messages sit below AUDIT_FIRST_USER_MSG; records the kernel
	// generates start there.
	return typ >= audit.RecFirstUser
}

// trimNUL drops the NUL bytes some kernels leave at the end of a record.
func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// parseMessage splits one datagram into its netlink header and payload. The
// kernel sends every audit message in a datagram of its own and sets the
// nlmsg_len of a record to its payload length only (audit_log_end in
// kernel/audit.c), so the header's length is not to be trusted; auditd and
// go-libaudit take the datagram's length instead, and so do we.
func parseMessage(buf []byte) (h syscall.NlMsghdr, data []byte, ok bool) {
	if len(buf) < unix.NLMSG_HDRLEN {
		return h, nil, false
	}
	h = syscall.NlMsghdr{
		Len:   binary.NativeEndian.Uint32(buf[0:]),
		Type:  binary.NativeEndian.Uint16(buf[4:]),
		Flags: binary.NativeEndian.Uint16(buf[6:]),
		Seq:   binary.NativeEndian.Uint32(buf[8:]),
		Pid:   binary.NativeEndian.Uint32(buf[12:]),
	}
	return h, buf[unix.NLMSG_HDRLEN:], true
}
