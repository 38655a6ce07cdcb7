package audit

import "time"

// Unset is the value the kernel reports for an unset auid or session
// ((u32)-1, AUDIT_UID_UNSET in include/linux/audit.h).
const Unset = ^uint32(0)

// Record is one audit record as it arrived: the netlink message type and its
// payload ("audit(SECONDS.MILLIS:SERIAL): key=value ...").
type Record struct {
	Type uint16
	Data []byte
}

// Path is one PATH record of an event.
type Path struct {
	Item  int    `json:"item"`
	Name  string `json:"name"`
	Inode uint64 `json:"inode"`
	Dev   string `json:"dev"`  // "fe:00", as the kernel prints it
	Mode  uint32 `json:"mode"` // st_mode, parsed from octal
	// OUID is the file's owner (ouid=); 0, root, when the record has none.
	OUID     uint32 `json:"ouid,omitempty"`
	Nametype string `json:"nametype"`
}

// Event is one audited syscall: every record that shares an audit serial,
// joined. Strings hold the decoded bytes exactly as the kernel logged them;
// they may be any bytes, including invalid UTF-8 and control characters.
type Event struct {
	Time   time.Time
	Serial uint64
	Node   string // the node= prefix of a forwarded log line, if any

	Arch    uint32 // AUDIT_ARCH_* value, e.g. 0xc000003e for x86_64
	Syscall int
	Success bool
	Exit    int64

	PID, PPID                    int
	UID, EUID, SUID, FSUID       uint32
	GID, EGID, SGID, FSGID       uint32
	AUID, Session                uint32 // Unset when the kernel says so
	TTY, Comm, Exe, Key, Subject string

	Argc      int      // argc as the kernel reported it
	Argv      []string // every argument, in order, empty ones kept
	Cwd       string
	Paths     []Path
	Proctitle string // raw proctitle bytes (NUL-separated argv, possibly truncated)

	// ArgvFromProctitle is set when the event had no EXECVE record (a
	// failed exec, or a forwarder that dropped it) and Argv was split from
	// the PROCTITLE record instead: as much of argv as the kernel kept
	// there (it truncates the proctitle), and Argc is 0.
	ArgvFromProctitle bool

	// NoSyscall is set for an event that had an EXECVE record but no
	// SYSCALL (a replayed log of EXECVE lines alone, as grep'd into a
	// write-up): only argv, and what CWD, PATH and PROCTITLE said, is
	// known. Syscall is execve's, Success is assumed (the kernel writes
	// EXECVE only for an exec that read its arguments), the pid is 0, the
	// ids are Unset and Exe is empty.
	NoSyscall bool

	// Records is how many records were joined into this event; Incomplete is
	// set when the event was flushed without its closing record (timeout,
	// in-flight bound, end of input) or when argv came out shorter than argc.
	Records    int
	Incomplete bool
}

// IsExec reports whether the event is an execve or execveat, successful or not.
func (e *Event) IsExec() bool {
	switch e.Arch {
	case ArchI386:
		return e.Syscall == 11 || e.Syscall == 358 // arch/x86/entry/syscalls/syscall_32.tbl
	case ArchAarch64:
		return e.Syscall == 221 || e.Syscall == 281 // include/uapi/asm-generic/unistd.h
	default: // ArchX86_64: arch/x86/entry/syscalls/syscall_64.tbl
		return e.Syscall == 59 || e.Syscall == 322
	}
}

// AUDIT_ARCH_* values, include/uapi/linux/audit.h.
const (
	ArchX86_64  = 0xc000003e
	ArchI386    = 0x40000003
	ArchAarch64 = 0xc00000b7
)
