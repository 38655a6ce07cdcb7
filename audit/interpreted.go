package audit

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ausearch -i (interpreted) output is what detection write-ups publish:
//
//	type=EXECVE msg=audit(11/27/26 06:00:59.157:6) : argc=3 a0=/usr/bin/base64 a1=--decode a2=/etc/hostname
//	type=SYSCALL msg=audit(11/27/26 06:00:59.157:6) : arch=x86_64 syscall=execve success=yes exit=0 … uid=root … comm=base64 exe=/usr/bin/base64 key=k
//
// auparse (audit-userspace's auparse/interpret.c) rewrote every value for
// people: the stamp in the analyst's local time (strftime %x %T, MM/DD/YY
// in the C locale), ids as names, arch and syscall as names, file modes as
// "file,755", strings decoded and unquoted, exit codes as "ENOENT(No such
// file or directory)". appendUninterpreted maps a line back to the raw
// form the rest of the package reads. What cannot be mapped back is said
// here, not guessed:
//   - a user or group name other than root is unknown to the machine that
//     replays (it was the analyst's /etc/passwd that named it): its id is
//     read as unset, never as root;
//   - PROCTITLE's NULs were printed as spaces: its argv is split at spaces
//     (EXECVE, when present, is what gives argv);
//   - an EXECVE argument holding " aN=" for the next N, or a value holding
//     " key=", is cut there.

// errInterpretedLine is a line of ausearch -i output that could not be
// mapped back.
var errInterpretedLine = errors.New("interpreted ausearch line")

// appendUninterpreted appends to dst the raw form of rest, an ausearch -i
// record line after its "type=NAME " (node is its node= prefix, or nil):
// "[node=N ]type=NAME msg=audit(SEC.MS:SERIAL): k=v ...". The stamp is read
// in loc (nil: UTC).
func appendUninterpreted(dst []byte, typ uint16, typeName, node, rest []byte, loc *time.Location) ([]byte, error) {
	if loc == nil {
		loc = time.UTC
	}
	if !hasPrefix(rest, "msg=audit(") {
		return dst, errInterpretedLine
	}
	rest = rest[len("msg=audit("):]
	end := bytes.IndexByte(rest, ')')
	if end < 0 {
		return dst, errInterpretedLine
	}
	stamp := rest[:end]
	fields := bytes.TrimPrefix(rest[end+1:], []byte(" :"))
	fields = bytes.TrimSpace(fields)
	colon := bytes.LastIndexByte(stamp, ':')
	if colon < 0 {
		return dst, errInterpretedLine
	}
	serial, ok := parseUint(stamp[colon+1:], 10)
	if !ok {
		return dst, errInterpretedLine
	}
	t, err := time.ParseInLocation("01/02/06 15:04:05.000", string(stamp[:colon]), loc)
	if err != nil {
		return dst, errInterpretedLine
	}
	if node != nil {
		dst = append(dst, "node="...)
		dst = append(dst, node...)
		dst = append(dst, ' ')
	}
	dst = append(dst, "type="...)
	dst = append(dst, typeName...)
	dst = append(dst, " msg=audit("...)
	dst = strconv.AppendInt(dst, t.Unix(), 10)
	dst = append(dst, '.')
	ms := t.Nanosecond() / 1e6
	dst = append(dst, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, serial, 10)
	dst = append(dst, "):"...)
	var arch string
	for _, kv := range splitInterpreted(typ, string(fields)) {
		k, v := kv[0], kv[1]
		if k == "arch" {
			arch = v
		}
		dst = append(dst, ' ')
		dst = appendRawField(dst, typ, k, v, arch)
	}
	return dst, nil
}

// splitInterpreted splits an interpreted record's fields into key and
// value pairs. EXECVE's arguments are split by argc and their keys (a
// value runs to the next argument's key); PROCTITLE and CWD hold one value
// that runs to the end; elsewhere a word that does not start a key=value
// belongs to the value before it.
func splitInterpreted(typ uint16, s string) [][2]string {
	var out [][2]string
	switch typ {
	case RecProctitle, RecCwd:
		k, v, ok := strings.Cut(s, "=")
		if ok {
			out = append(out, [2]string{k, v})
		}
		return out
	case RecExecve:
		return splitExecve(s)
	}
	for _, w := range strings.Split(s, " ") {
		if k, v, ok := strings.Cut(w, "="); ok && isFieldKey(k) {
			out = append(out, [2]string{k, v})
		} else if len(out) > 0 {
			out[len(out)-1][1] += " " + w
		}
	}
	return out
}

// isFieldKey reports whether k can be an audit field's key.
func isFieldKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// splitExecve splits an interpreted EXECVE record: argc, then for each
// argument N either aN=VALUE, or aN_len=L and aN[i]=PIECE; a value runs to
// the next key expected.
func splitExecve(s string) [][2]string {
	var out [][2]string
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ")
		k, rest, ok := strings.Cut(s, "=")
		if !ok || !isFieldKey(k) {
			break
		}
		// The value ends where the next key starts: " argc=", " aN=",
		// " aN_len=", " aN[" for the next argument or piece.
		end := len(rest)
		for i := 0; i < len(rest); i++ {
			if rest[i] == ' ' && i+1 < len(rest) && nextExecveKey(rest[i+1:]) {
				end = i
				break
			}
		}
		out = append(out, [2]string{k, rest[:end]})
		s = rest[end:]
	}
	return out
}

// nextExecveKey reports whether s starts with an EXECVE key and '='.
func nextExecveKey(s string) bool {
	k, _, ok := strings.Cut(s, "=")
	if !ok {
		return false
	}
	if k == "argc" {
		return true
	}
	_, _, kind := execveArgKey([]byte(k))
	return kind != argNone
}

// appendRawField appends key=value in the raw form.
func appendRawField(dst []byte, typ uint16, k, v, arch string) []byte {
	dst = append(dst, k...)
	dst = append(dst, '=')
	switch {
	case k == "proctitle":
		return appendUpperHex(dst, strings.ReplaceAll(v, " ", "\x00"))
	case k == "key" && v == "(null)":
		return append(dst, v...)
	case isStringKey(typ, []byte(k)):
		return appendRawString(dst, v)
	case k == "arch":
		return append(dst, rawArch(v)...)
	case k == "syscall":
		return append(dst, rawSyscall(v, arch)...)
	case k == "exit":
		return append(dst, rawExit(v)...)
	case isIDKey(k):
		return append(dst, rawID(v)...)
	case k == "mode" && typ == RecPath:
		return append(dst, rawMode(v)...)
	case typ == RecSyscall && len(k) == 2 && k[0] == 'a' && k[1] >= '0' && k[1] <= '3':
		return append(dst, strings.TrimPrefix(v, "0x")...)
	}
	if strings.ContainsAny(v, " \"") {
		return appendUpperHex(dst, v)
	}
	return append(dst, v...)
}

// appendRawString appends a string value as the kernel logs it: quoted
// when it is printable without '"' or space, else hex.
func appendRawString(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' {
			return appendUpperHex(dst, v)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, v...)
	return append(dst, '"')
}

// isIDKey names the fields that hold a uid, gid, or session.
func isIDKey(k string) bool {
	switch k {
	case "uid", "euid", "suid", "fsuid", "auid", "gid", "egid", "sgid", "fsgid", "ouid", "ogid", "ses", "oauid", "ouid_", "new_ses", "old_ses":
		return true
	}
	return false
}

// rawID maps an interpreted id back: a number, "unset", root (0) and
// "unknown(N)" are known; any other name is the analyst's and reads as
// unset.
func rawID(v string) string {
	switch {
	case v == "root":
		return "0"
	case v == "unset":
		return "4294967295"
	case strings.HasPrefix(v, "unknown(") && strings.HasSuffix(v, ")"):
		v = v[len("unknown(") : len(v)-1]
	}
	if _, err := strconv.ParseUint(v, 10, 32); err == nil {
		return v
	}
	return "4294967295"
}

// rawArch maps auparse's arch names back to AUDIT_ARCH_* (as hex).
func rawArch(v string) string {
	switch v {
	case "x86_64":
		return "c000003e"
	case "i386", "i686":
		return "40000003"
	case "aarch64":
		return "c00000b7"
	}
	return strings.TrimPrefix(v, "0x")
}

// rawSyscall maps execve and execveat back to their number on arch; other
// names are not exec calls and read as -1.
func rawSyscall(v, arch string) string {
	if _, err := strconv.Atoi(v); err == nil {
		return v
	}
	nums := map[string][2]string{"x86_64": {"59", "322"}, "i386": {"11", "358"}, "i686": {"11", "358"}, "aarch64": {"221", "281"}}
	n, ok := nums[arch]
	if !ok {
		n = nums["x86_64"]
	}
	switch v {
	case "execve":
		return n[0]
	case "execveat":
		return n[1]
	}
	return "-1"
}

// rawExit maps "ENOENT(No such file or directory)" back to -2.
func rawExit(v string) string {
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		return v
	}
	name, _, _ := strings.Cut(v, "(")
	if n, ok := errnoByName()[name]; ok {
		return "-" + strconv.Itoa(int(n))
	}
	return "-1"
}

// errnoByName is the table of errno names, built once.
var errnoByName = sync1(func() map[string]syscall.Errno {
	m := make(map[string]syscall.Errno)
	for e := syscall.Errno(1); e < 256; e++ {
		if n := unix.ErrnoName(e); n != "" {
			m[n] = e
		}
	}
	return m
})

// modeBits are the words ausearch -i writes for a mode's file type and
// special bits, with their st_mode values (S_IFREG…, S_ISUID…, inode(7)).
var modeBits = map[string]uint64{
	"file": unix.S_IFREG, "dir": unix.S_IFDIR, "char": unix.S_IFCHR, "block": unix.S_IFBLK,
	"fifo": unix.S_IFIFO, "link": unix.S_IFLNK, "socket": unix.S_IFSOCK,
	"suid": unix.S_ISUID, "sgid": unix.S_ISGID, "sticky": unix.S_ISVTX,
}

// rawMode maps "file,755" (a type and special bits from modeBits, and
// octal permissions) back to the octal st_mode.
func rawMode(v string) string {
	var mode uint64
	for _, part := range strings.Split(v, ",") {
		if bit, ok := modeBits[part]; ok {
			mode |= bit
			continue
		}
		p, err := strconv.ParseUint(part, 8, 32)
		if err != nil {
			return "0"
		}
		mode |= p
	}
	return "0" + strconv.FormatUint(mode, 8)
}

// sync1 returns a function computing f once.
func sync1[T any](f func() T) func() T {
	var once sync.Once
	var v T
	return func() T {
		once.Do(func() { v = f() })
		return v
	}
}

// uninterpret reads an ausearch -i line as appendLogRecord reads a raw one,
// through its raw form.
func (l *LogReader) uninterpret(dst, line []byte) (uint16, rawHeader, []byte, error) {
	line = bytes.TrimRight(line, "\r\n")
	var node []byte
	if hasPrefix(line, "node=") {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return 0, rawHeader{}, dst, errInterpretedLine
		}
		node, line = line[5:i], line[i+1:]
	}
	if !hasPrefix(line, "type=") {
		return 0, rawHeader{}, dst, errInterpretedLine
	}
	name, rest, ok := bytes.Cut(line[5:], []byte(" "))
	if !ok {
		return 0, rawHeader{}, dst, errInterpretedLine
	}
	typ, err := typeFromName(name)
	if err != nil {
		return 0, rawHeader{}, dst, err
	}
	raw, err := appendUninterpreted(l.scratch[:0], typ, name, node, rest, l.Location)
	l.scratch = raw
	if err != nil {
		return 0, rawHeader{}, dst, err
	}
	return appendLogRecord(dst, raw)
}

// appendUpperHex appends v in hex, upper case, as the kernel writes it.
func appendUpperHex(dst []byte, v string) []byte {
	const digits = "0123456789ABCDEF"
	for i := 0; i < len(v); i++ {
		dst = append(dst, digits[v[i]>>4], digits[v[i]&15])
	}
	return dst
}
