package audit

// Test-only helpers over the package's parsers: the exported API is ParseRecord,
// ReadLog and the Assembler.

import (
	"fmt"
)

// parseHeaderValue parses the audit(SECONDS.MILLIS:SERIAL): stamp (and node=
// prefix) of a record payload and returns the fields that follow it.
func parseHeaderValue(data []byte) (Header, []byte, error) {
	h, body, err := parseHeader(data)
	if err != nil {
		return Header{}, nil, fmt.Errorf("audit: parse header: %w", err)
	}
	return Header{Time: h.time(), Serial: h.serial, Node: string(h.node)}, body, nil
}

// isStringField reports whether the kernel writes field key of a record of
// type typ as an untrusted string, that is quoted or hex-encoded
// (audit_log_untrustedstring and audit_log_n_hex in kernel/audit.c): EXECVE
// aN and aN[i], proctitle, comm, ocomm, exe, cwd, name, key, path, dir, and
// the user-space acct, cmd and data (TTY keystrokes). Other bare hex values,
// such as arch=c000003e or the SYSCALL a0..a3 registers, are numbers.
func isStringField(typ uint16, key string) bool {
	return isStringKey(typ, []byte(key))
}

// parseLogLine parses one auditd log line,
//
//	[node=HOST ]type=NAME msg=audit(SECONDS.MILLIS:SERIAL): key=value ...
//
// into a Record. NAME is a name typeName returns, or UNKNOWN[n]. A node=
// prefix is kept at the start of Data ("node=HOST audit(...): ..."), where
// ParseRecord and the Assembler read it into Header.Node and Event.Node.
// Enriched fields after \x1d stay in Data. Data is a fresh copy: it does not
// alias line. A trailing newline is ignored.
func parseLogLine(line []byte) (Record, error) {
	// Data is never longer than line: "type=NAME msg=" is dropped and the
	// node= prefix kept as it was.
	typ, _, data, err := appendLogRecord(make([]byte, 0, len(line)), line)
	if err != nil {
		return Record{}, fmt.Errorf("audit: parse log line: %w", err)
	}
	return Record{Type: typ, Data: data[:len(data):len(data)]}, nil
}

// parsetypeName returns the record type number for an auditd type= name:
// one of the names typeName returns, including the "UNKNOWN[1234]" form.
func parseTypeName(name string) (uint16, error) {
	t, err := typeFromName([]byte(name))
	if err != nil {
		return 0, fmt.Errorf("audit: record type %q: %w", name, err)
	}
	return t, nil
}

// inFlight returns how many events a has open.
func inFlight(a *Assembler) int { return a.inflight }
