package audit

import (
	"errors"
	"strconv"
	"strings"

	"github.com/elastic/go-libaudit/v2/auparse"
)

// Message and record types encwatch refers to by name: the only place their
// numbers are written. From include/uapi/linux/audit.h (control messages and
// kernel records) and auditd's lib/libaudit.h (user-space and daemon records,
// which reach auditd's log and audisp through the same type= field). The
// table typeNames names every type the kernel and auditd write.
const (
	// Control messages of the netlink audit protocol (below 1100).
	MsgGet       = 1000 // AUDIT_GET: read struct audit_status
	MsgSet       = 1001 // AUDIT_SET: change fields of struct audit_status
	MsgAddRule   = 1011 // AUDIT_ADD_RULE
	MsgDelRule   = 1012 // AUDIT_DEL_RULE
	MsgListRules = 1013 // AUDIT_LIST_RULES

	// Ranges: records start at the first user message.
	RecFirstUser   = 1100 // AUDIT_FIRST_USER_MSG
	RecFirstDaemon = 1200 // AUDIT_FIRST_DAEMON
	RecLastDaemon  = 1299 // AUDIT_LAST_DAEMON

	// Syscall event records.
	RecSyscall      = 1300 // AUDIT_SYSCALL
	RecPath         = 1302 // AUDIT_PATH
	RecConfigChange = 1305 // AUDIT_CONFIG_CHANGE
	RecCwd          = 1307 // AUDIT_CWD
	RecExecve       = 1309 // AUDIT_EXECVE
	RecEOE          = 1320 // AUDIT_EOE
	RecBprmFcaps    = 1321 // AUDIT_BPRM_FCAPS
	RecProctitle    = 1327 // AUDIT_PROCTITLE
	// MsgReplace is AUDIT_REPLACE: the kernel pinging its registered audit
	// daemon; it is in the record range but carries no record.
	MsgReplace = 1329
)

// maxTypeNumber bounds the record type numbers the name table covers: the
// last user-space message, AUDIT_LAST_USER_MSG2 in auditd's lib/libaudit.h.
const maxTypeNumber = 2999

// newerTypeNames are record types the kernel writes that go-libaudit's
// table (below) does not name yet: MAC_TASK_CONTEXTS and MAC_OBJ_CONTEXTS,
// include/uapi/linux/audit.h since Linux 6.6.
var newerTypeNames = map[uint16]string{1420: "MAC_TASK_CONTEXTS", 1421: "MAC_OBJ_CONTEXTS"}

// typeNames maps every record type number the kernel and auditd write to
// the name auditd writes after type=. It is one table: go-libaudit's
// (auparse.AuditMessageType, generated from auditd's lib/libaudit.h and
// lib/msg_typetab.h, over 200 types), read once, with newerTypeNames.
var typeNames = func() map[uint16]string {
	m := make(map[uint16]string, 256)
	for t := range uint16(maxTypeNumber + 1) {
		if s := auparse.AuditMessageType(t).String(); !strings.HasPrefix(s, "UNKNOWN[") {
			m[t] = s
		}
	}
	for t, s := range newerTypeNames {
		m[t] = s
	}
	return m
}()

// typeNumbers is the inverse of typeNames.
var typeNumbers = func() map[string]uint16 {
	m := make(map[string]uint16, len(typeNames))
	for n, s := range typeNames {
		m[s] = n
	}
	return m
}()

// errUnknownType is returned for a type= name that is neither in the table nor
// written as UNKNOWN[n].
var errUnknownType = errors.New("unknown record type name")

// typeName returns the name auditd writes for record type t ("SYSCALL",
// "EXECVE", ...), or "UNKNOWN[t]" for a number it does not know, as auditd does.
func typeName(t uint16) string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "UNKNOWN[" + strconv.Itoa(int(t)) + "]"
}

// typeFromName is ParseTypeName over bytes, without allocating.
func typeFromName(name []byte) (uint16, error) {
	// The records of an exec event, nearly every line of a log, are told
	// by a switch, which compares without hashing the name.
	switch string(name) {
	case "SYSCALL":
		return RecSyscall, nil
	case "EXECVE":
		return RecExecve, nil
	case "CWD":
		return RecCwd, nil
	case "PATH":
		return RecPath, nil
	case "PROCTITLE":
		return RecProctitle, nil
	case "EOE":
		return RecEOE, nil
	case "BPRM_FCAPS":
		return RecBprmFcaps, nil
	}
	if t, ok := typeNumbers[string(name)]; ok {
		return t, nil
	}
	const pre = "UNKNOWN["
	if len(name) > len(pre)+1 && string(name[:len(pre)]) == pre && name[len(name)-1] == ']' {
		n, ok := parseUint(name[len(pre):len(name)-1], 10)
		if ok && n <= 0xffff {
			return uint16(n), nil
		}
	}
	return 0, errUnknownType
}
