package audit

import (
	"errors"
	"strconv"
)

// Message and record types encwatch refers to by name: the only place their
// numbers are written. From include/uapi/linux/audit.h (control messages and
// kernel records) and auditd's lib/libaudit.h (user-space and daemon records,
// which reach auditd's log and audisp through the same type= field). The
// table below names every type auditd knows.
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

// typeNames maps record type numbers to the names auditd writes after type=.
var typeNames = map[uint16]string{
	// include/uapi/linux/audit.h: control and legacy messages.
	MsgGet: "GET", MsgSet: "SET", 1002: "LIST", 1003: "ADD", 1004: "DEL",
	1005: "USER", 1006: "LOGIN", 1007: "WATCH_INS", 1008: "WATCH_REM",
	1009: "WATCH_LIST", 1010: "SIGNAL_INFO", MsgAddRule: "ADD_RULE", MsgDelRule: "DEL_RULE",
	MsgListRules: "LIST_RULES", 1014: "TRIM", 1015: "MAKE_EQUIV", 1016: "TTY_GET",
	1017: "TTY_SET", 1018: "SET_FEATURE", 1019: "GET_FEATURE",

	// lib/libaudit.h: user-space messages (1100-1199).
	RecFirstUser: "USER_AUTH", 1101: "USER_ACCT", 1102: "USER_MGMT", 1103: "CRED_ACQ",
	1104: "CRED_DISP", 1105: "USER_START", 1106: "USER_END", 1107: "USER_AVC",
	1108: "USER_CHAUTHTOK", 1109: "USER_ERR", 1110: "CRED_REFR",
	1111: "USYS_CONFIG", 1112: "USER_LOGIN", 1113: "USER_LOGOUT",
	1114: "ADD_USER", 1115: "DEL_USER", 1116: "ADD_GROUP", 1117: "DEL_GROUP",
	1118: "DAC_CHECK", 1119: "CHGRP_ID", 1120: "TEST", 1121: "TRUSTED_APP",
	1122: "USER_SELINUX_ERR", 1123: "USER_CMD", 1124: "USER_TTY",
	1125: "CHUSER_ID", 1126: "GRP_AUTH", 1127: "SYSTEM_BOOT",
	1128: "SYSTEM_SHUTDOWN", 1129: "SYSTEM_RUNLEVEL", 1130: "SERVICE_START",
	1131: "SERVICE_STOP", 1132: "GRP_MGMT", 1133: "GRP_CHAUTHTOK",
	1134: "MAC_CHECK", 1135: "ACCT_LOCK", 1136: "ACCT_UNLOCK",
	1137: "USER_DEVICE", 1138: "SOFTWARE_UPDATE",

	// lib/libaudit.h: auditd's own records (1200-1299).
	RecFirstDaemon: "DAEMON_START", 1201: "DAEMON_END", 1202: "DAEMON_ABORT",
	1203: "DAEMON_CONFIG", 1204: "DAEMON_RECONFIG", 1205: "DAEMON_ROTATE",
	1206: "DAEMON_RESUME", 1207: "DAEMON_ACCEPT", 1208: "DAEMON_CLOSE",
	1209: "DAEMON_ERR",

	// include/uapi/linux/audit.h: syscall event records (1300-1399).
	RecSyscall: "SYSCALL", 1301: "FS_WATCH", RecPath: "PATH", 1303: "IPC",
	1304: "SOCKETCALL", RecConfigChange: "CONFIG_CHANGE", 1306: "SOCKADDR",
	RecCwd: "CWD", RecExecve: "EXECVE", 1311: "IPC_SET_PERM", 1312: "MQ_OPEN",
	1313: "MQ_SENDRECV", 1314: "MQ_NOTIFY", 1315: "MQ_GETSETATTR",
	1316: "KERNEL_OTHER", 1317: "FD_PAIR", 1318: "OBJ_PID", 1319: "TTY",
	RecEOE: "EOE", RecBprmFcaps: "BPRM_FCAPS", 1322: "CAPSET", 1323: "MMAP",
	1324: "NETFILTER_PKT", 1325: "NETFILTER_CFG", 1326: "SECCOMP",
	RecProctitle: "PROCTITLE", 1328: "FEATURE_CHANGE", MsgReplace: "REPLACE",
	1330: "KERN_MODULE", 1331: "FANOTIFY", 1332: "TIME_INJOFFSET",
	1333: "TIME_ADJNTPVAL", 1334: "BPF", 1335: "EVENT_LISTENER",
	1336: "URINGOP", 1337: "OPENAT2", 1338: "DM_CTRL", 1339: "DM_EVENT",

	// include/uapi/linux/audit.h: SELinux, AppArmor and MAC records.
	1400: "AVC", 1401: "SELINUX_ERR", 1402: "AVC_PATH", 1403: "MAC_POLICY_LOAD",
	1404: "MAC_STATUS", 1405: "MAC_CONFIG_CHANGE", 1406: "MAC_UNLBL_ALLOW",
	1407: "MAC_CIPSOV4_ADD", 1408: "MAC_CIPSOV4_DEL", 1409: "MAC_MAP_ADD",
	1410: "MAC_MAP_DEL", 1411: "MAC_IPSEC_ADDSA", 1412: "MAC_IPSEC_DELSA",
	1413: "MAC_IPSEC_ADDSPD", 1414: "MAC_IPSEC_DELSPD", 1415: "MAC_IPSEC_EVENT",
	1416: "MAC_UNLBL_STCADD", 1417: "MAC_UNLBL_STCDEL", 1418: "MAC_CALIPSO_ADD",
	1419: "MAC_CALIPSO_DEL", 1420: "MAC_TASK_CONTEXTS", 1421: "MAC_OBJ_CONTEXTS",
	1500: "AA", 1501: "APPARMOR_AUDIT", 1502: "APPARMOR_ALLOWED",
	1503: "APPARMOR_DENIED", 1504: "APPARMOR_HINT", 1505: "APPARMOR_STATUS",
	1506: "APPARMOR_ERROR", 1507: "APPARMOR_KILL",

	// include/uapi/linux/audit.h: anomalies and integrity.
	1700: "ANOM_PROMISCUOUS", 1701: "ANOM_ABEND", 1702: "ANOM_LINK",
	1703: "ANOM_CREAT",
	1800: "INTEGRITY_DATA", 1801: "INTEGRITY_METADATA", 1802: "INTEGRITY_STATUS",
	1803: "INTEGRITY_HASH", 1804: "INTEGRITY_PCR", 1805: "INTEGRITY_RULE",
	1806: "INTEGRITY_EVM_XATTR", 1807: "INTEGRITY_POLICY_RULE",
	2000: "KERNEL",
}

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
