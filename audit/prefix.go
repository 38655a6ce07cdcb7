package audit

// The framings an audit record line arrives in besides auditd's own log,
// recognised by stripLogPrefix from the line's content alone:
//
//   - ausearch's output (ausearch -if FILE, without --raw) puts a "----" line
//     and a "time->Mon Dec  7 12:00:00 2026" line before each event.
//   - A syslog relay (audisp-syslog, rsyslog's imfile or a forwarding
//     daemon) puts a header before the record. RFC 3164 (as rsyslog's
//     RSYSLOG_TraditionalFileFormat writes it): [<PRI>]TIMESTAMP HOSTNAME
//     TAG MSG, TIMESTAMP being "Mmm dd hh:mm:ss" (RFC 3164 section 4.1.2)
//     or RFC 3339 (RSYSLOG_FileFormat); TAG is "name:", "name[pid]:", or a
//     bare word (rsyslog's imfile with a tag such as "tag_audit"). RFC 5424
//     (section 6): <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP
//     PROCID SP MSGID SP STRUCTURED-DATA [SP MSG], MSG possibly starting
//     with a UTF-8 byte order mark.
//   - The kernel's own printk of a record when no audit daemon listens
//     (kauditd_printk_skb in kernel/audit.c), as dmesg, journalctl -k or
//     journalctl -o short print it: "audit: type=1300 audit(SEC.MS:SERIAL):
//     fields", the type a number and no msg=, possibly behind a syslog
//     header (TAG "kernel:") or dmesg's "[ seconds.micros] ".
//
// journalctl -o short prints the records of journald's audit transport as
// "audit[PID]: SYSCALL arch=...": journald took the audit(...) stamp apart
// (see journal.go), so those lines cannot be put back into events; they
// are reported as errJournalShort, naming the export form that can.

import (
	"bytes"
	"errors"
)

// logPrefix is what stripLogPrefix found before a record.
type logPrefix uint8

const (
	prefixNone      logPrefix = iota // a plain auditd log line
	prefixSeparator                  // ausearch's "----" or "time->" line: no record
	prefixSyslog                     // an RFC 3164 syslog header
	prefixRFC5424                    // an RFC 5424 syslog header
	prefixKernel                     // the kernel's "audit: " printk prefix
)

// maxHostname bounds a syslog HOSTNAME: 255 octets (RFC 5424 section 6.2.4,
// after RFC 1034's bound on a domain name).
const maxHostname = 255

// maxTag bounds the syslog TAG or APP-NAME/PROCID/MSGID fields skipped
// before a record (RFC 3164 allows 32 characters for the name; this allows
// a pid and some slack).
const maxTag = 128

var (
	errBadHost      = errors.New("syslog hostname not printable ascii, or longer than 255 bytes")
	errJournalShort = errors.New("journal text without the audit(...) stamp: read the journal with journalctl -o export")
	// errForeign marks a syslog line of another program (sshd, cron...):
	// a well-formed header before a message with no sign of an audit
	// record, which a forwarded syslog file holds plenty of.
	errForeign = errors.New("syslog message of another program")
)

// stripLogPrefix finds where the audit record in line starts. A plain line
// (starting with type= or node=) is returned as it is, with no other work.
// Otherwise it skips a syslog header, the kernel's "audit: " prefix, or
// both, and returns the syslog HOSTNAME (nil when there is none, or it is
// RFC 5424's "-"), the record (a suffix of line) and what framed it;
// ausearch's separator lines return prefixSeparator and no rest. A
// syslog line of another program returns errForeign, any other line an
// error saying why it is not a record. host is checked as printable ASCII
// without spaces, at most maxHostname bytes: a forwarded log's hostname is
// whatever its sender wrote. stripLogPrefix does no I/O and does not
// allocate.
func stripLogPrefix(line []byte) (host, rest []byte, kind logPrefix, err error) {
	if hasPrefix(line, "type=") || hasPrefix(line, "node=") {
		return nil, line, prefixNone, nil
	}
	if hasPrefix(line, "----") && allByte(line, '-') || hasPrefix(line, "time->") {
		return nil, nil, prefixSeparator, nil
	}
	kind = prefixSyslog
	rest = line
	if len(rest) > 0 && rest[0] == '<' { // PRI: "<" 1*3DIGIT ">"
		i := 1
		for i < len(rest) && i <= 4 && isDigit(rest[i]) {
			i++
		}
		if i == 1 || i > 4 || i >= len(rest) || rest[i] != '>' {
			return nil, nil, 0, errNoType
		}
		rest = rest[i+1:]
		// RFC 5424: VERSION, a nonzero digit then at most two more, and SP.
		if j := digits(rest); j > 0 && j <= 3 && j < len(rest) && rest[j] == ' ' {
			return strip5424(rest[j+1:])
		}
	}
	if r, ok := cutKernel(rest); ok {
		return nil, r, prefixKernel, nil
	}
	n := timestamp3164(rest)
	if n == 0 {
		n = timestamp3339(rest)
	}
	if n == 0 || n >= len(rest) || rest[n] != ' ' {
		return nil, nil, 0, errNoType
	}
	rest = rest[n+1:]
	host, rest = token(rest)
	if err := checkHost(host); err != nil {
		return nil, nil, 0, err
	}
	rest = skipSpaces(rest)
	if !hasPrefix(rest, "type=") && !hasPrefix(rest, "node=") {
		// The TAG, with or without its colon.
		var tag []byte
		tag, rest = token(rest)
		if len(tag) > maxTag {
			return nil, nil, 0, errNoType
		}
		rest = skipSpaces(rest)
		if isJournalShort(tag, rest) {
			return nil, nil, 0, errJournalShort
		}
	}
	if r, ok := cutKernel(rest); ok {
		return host, r, prefixKernel, nil
	}
	if !hasPrefix(rest, "type=") && !hasPrefix(rest, "node=") {
		return nil, nil, 0, notRecord(rest)
	}
	return host, rest, kind, nil
}

// notRecord is the error for a syslog message msg that does not start
// with a record: errForeign when nothing in it looks like one, errNoType
// (malformed) when it has a type= or an audit( stamp somewhere.
func notRecord(msg []byte) error {
	if bytes.Contains(msg, []byte("type=")) || bytes.Contains(msg, []byte("audit(")) {
		return errNoType
	}
	return errForeign
}

// strip5424 reads an RFC 5424 header after its VERSION SP.
func strip5424(b []byte) (host, rest []byte, kind logPrefix, err error) {
	var f [5][]byte // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
	for i := range f {
		f[i], b = token(b)
		if len(f[i]) == 0 || len(f[i]) > maxHostname {
			return nil, nil, 0, errNoType
		}
	}
	host = f[1]
	if string(host) == "-" { // NILVALUE
		host = nil
	} else if err := checkHost(host); err != nil {
		return nil, nil, 0, err
	}
	// STRUCTURED-DATA: "-" or one or more [SD-ID *(SP PARAM="VALUE")], a
	// VALUE escaping '"', '\' and ']' with '\' (section 6.3.3).
	switch {
	case hasPrefix(b, "-"):
		b = b[1:]
	case hasPrefix(b, "["):
		for len(b) > 0 && b[0] == '[' {
			i, quoted := 1, false
			for ; i < len(b); i++ {
				c := b[i]
				if quoted && c == '\\' {
					i++
					continue
				}
				if c == '"' {
					quoted = !quoted
				} else if c == ']' && !quoted {
					break
				}
			}
			if i >= len(b) {
				return nil, nil, 0, errNoType
			}
			b = b[i+1:]
		}
	default:
		return nil, nil, 0, errNoType
	}
	if len(b) > 0 && b[0] != ' ' {
		return nil, nil, 0, errNoType
	}
	b = skipSpaces(b)
	if hasPrefix(b, "\xef\xbb\xbf") { // BOM, section 6.4
		b = b[3:]
	}
	if r, ok := cutKernel(b); ok {
		return host, r, prefixKernel, nil
	}
	if !hasPrefix(b, "type=") && !hasPrefix(b, "node=") {
		return nil, nil, 0, notRecord(b)
	}
	return host, b, prefixRFC5424, nil
}

// cutKernel strips dmesg's "[ seconds.micros] " and the kernel's "audit: "
// before "type=", reporting whether b had the latter.
func cutKernel(b []byte) ([]byte, bool) {
	if len(b) > 0 && b[0] == '[' {
		i := 1
		for i < len(b) && i < 32 && (b[i] == ' ' || b[i] == '.' || isDigit(b[i])) {
			i++
		}
		if i >= len(b) || b[i] != ']' {
			return b, false
		}
		b = skipSpaces(b[i+1:])
	}
	if !hasPrefix(b, "audit: ") {
		return b, false
	}
	b = skipSpaces(b[len("audit: "):])
	return b, hasPrefix(b, "type=")
}

// isJournalShort reports whether tag and msg are journalctl's short form
// of a journald audit record: "audit[PID]:" or "audit:", then an upper-case
// type name and a space.
func isJournalShort(tag, msg []byte) bool {
	if !hasPrefix(tag, "audit[") && string(tag) != "audit:" {
		return false
	}
	i := 0
	for i < len(msg) && (msg[i] >= 'A' && msg[i] <= 'Z' || msg[i] == '_') {
		i++
	}
	return i > 0 && i < len(msg) && msg[i] == ' '
}

// timestamp3164 returns the length of an RFC 3164 TIMESTAMP at b's start,
// "Mmm dd hh:mm:ss" with the day space- or zero-padded, or 0; a fraction
// of a second after it (journalctl -o short-precise) is included.
func timestamp3164(b []byte) int {
	const n = len("Mmm dd hh:mm:ss")
	if len(b) < n || !isUpper(b[0]) || !isLower(b[1]) || !isLower(b[2]) || b[3] != ' ' ||
		!(b[4] == ' ' || isDigit(b[4])) || !isDigit(b[5]) || b[6] != ' ' {
		return 0
	}
	for i, c := range b[7:n] {
		if (i == 2 || i == 5) != (c == ':') || c != ':' && !isDigit(c) {
			return 0
		}
	}
	if len(b) > n+1 && b[n] == '.' && isDigit(b[n+1]) {
		return n + 1 + digits(b[n+1:])
	}
	return n
}

// timestamp3339 returns the length of an RFC 3339 date-time at b's start
// (YYYY-MM-DDTHH:MM:SS, then any fraction and offset up to a space), or 0.
func timestamp3339(b []byte) int {
	const pattern = "dddd-dd-ddTdd:dd:dd"
	if len(b) < len(pattern) {
		return 0
	}
	for i := range len(pattern) {
		if p := pattern[i]; p == 'd' && !isDigit(b[i]) || p != 'd' && b[i] != p && !(p == 'T' && b[i] == 't') {
			return 0
		}
	}
	i := len(pattern)
	for i < len(b) && i < 64 && b[i] != ' ' {
		i++
	}
	return i
}

// checkHost reports whether host is a usable hostname: 1 to maxHostname
// bytes of printable ASCII other than space (RFC 5424 PRINTUSASCII), and
// not starting with '-' (the NILVALUE, or an option look-alike).
func checkHost(host []byte) error {
	if len(host) == 0 || len(host) > maxHostname || host[0] == '-' {
		return errBadHost
	}
	for _, c := range host {
		if c <= ' ' || c > '~' {
			return errBadHost
		}
	}
	return nil
}

// token returns b's first space-delimited word and what follows the
// single space after it.
func token(b []byte) (word, rest []byte) {
	i := 0
	for i < len(b) && b[i] != ' ' {
		i++
	}
	if i < len(b) {
		return b[:i], b[i+1:]
	}
	return b, nil
}

func skipSpaces(b []byte) []byte {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	return b
}

func digits(b []byte) int {
	i := 0
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func allByte(b []byte, c byte) bool {
	for _, x := range b {
		if x != c && x != '\n' && x != '\r' {
			return false
		}
	}
	return true
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
