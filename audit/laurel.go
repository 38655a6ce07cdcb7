package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// laurel (an auditd plugin, github.com/threathunters-io/laurel) writes one
// JSON object a line per event, as its json-format.md documents:
//
//	{"ID":"1626611363.720:348501","SYSCALL":{"arch":"0xc000003e","syscall":59,…,"comm":"perl","key":null,"ARCH":"x86_64",…},
//	 "EXECVE":{"argc":3,"ARGV":["perl","-e","…"]},"CWD":{"cwd":"/root"},"PATH":[{"item":0,"mode":"0o100755",…}],"PROCTITLE":{"ARGV":[…]}}
//
// SYSCALL, EXECVE, CWD and PROCTITLE are objects, PATH and every other
// record type a list of objects; decimal numbers are JSON numbers, hex and
// octal ones strings prefixed 0x and 0o; strings are percent-encoded past
// printable ASCII and for '%' and '+'; enrichments have upper-case keys
// (ARCH, UID, PPID, …) and are left out. laurelRecords turns a line back
// into the event's raw records: SYSCALL first and PROCTITLE last, the
// kernel's order.

var errLaurel = errors.New("laurel JSON line")

// maxLaurelRecords bounds the records one laurel line may give.
const maxLaurelRecords = 4096

// isLaurel reports whether line is a JSON object (laurel's form).
func isLaurel(line []byte) bool {
	// A loop rather than bytes.TrimLeft: this runs on every line of a
	// replay, and TrimLeft builds a set of its cutset on each call.
	for _, c := range line {
		if c != ' ' && c != '\t' {
			return c == '{'
		}
	}
	return false
}

// laurelRecords returns the raw record lines of a laurel line.
func laurelRecords(line []byte) ([][]byte, error) {
	var ev map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	if err := d.Decode(&ev); err != nil {
		return nil, errLaurel
	}
	var id string
	if err := json.Unmarshal(ev["ID"], &id); err != nil || id == "" {
		return nil, errLaurel
	}
	if !laurelID(id) {
		return nil, errLaurel
	}
	var node string
	if raw, ok := ev["NODE"]; ok {
		if err := json.Unmarshal(raw, &node); err != nil || !validNode(node) {
			return nil, errLaurel
		}
	}
	stamp := "msg=audit(" + id + "):"
	var out [][]byte
	record := func(typ string, fields []byte) {
		var b []byte
		if node != "" {
			b = append(b, "node="...)
			b = append(b, node...)
			b = append(b, ' ')
		}
		b = append(b, "type="...)
		b = append(b, typ...)
		b = append(b, ' ')
		b = append(b, stamp...)
		b = append(b, fields...)
		out = append(out, b)
	}
	// The kernel's order: SYSCALL, EXECVE, CWD, PATH, the others, PROCTITLE.
	keys := make([]string, 0, len(ev))
	for k := range ev {
		if k != "ID" && k != "NODE" && strings.ToUpper(k) == k {
			keys = append(keys, k)
		}
	}
	rank := map[string]int{"SYSCALL": 0, "EXECVE": 1, "CWD": 2, "PATH": 3, "PROCTITLE": 9}
	sort.Slice(keys, func(i, j int) bool {
		ri, ok := rank[keys[i]]
		if !ok {
			ri = 4
		}
		rj, ok := rank[keys[j]]
		if !ok {
			rj = 4
		}
		if ri != rj {
			return ri < rj
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		typ, err := typeFromName([]byte(k))
		if err != nil {
			continue // a laurel enrichment at the top (PARENT_INFO …)
		}
		raw := ev[k]
		if len(raw) > 0 && raw[0] == '[' {
			var list []map[string]json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, errLaurel
			}
			for _, obj := range list {
				fields, err := laurelFields(typ, obj)
				if err != nil {
					return nil, err
				}
				record(k, fields)
			}
		} else {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(raw, &obj); err != nil {
				return nil, errLaurel
			}
			fields, err := laurelFields(typ, obj)
			if err != nil {
				return nil, err
			}
			record(k, fields)
		}
		if len(out) > maxLaurelRecords {
			return nil, errLaurel
		}
	}
	if len(out) == 0 {
		return nil, errLaurel
	}
	return out, nil
}

// laurelFields renders one record object's fields in the raw form, in key
// order (EXECVE: argc, then the arguments; PROCTITLE: the joined ARGV).
func laurelFields(typ uint16, obj map[string]json.RawMessage) ([]byte, error) {
	var b []byte
	switch typ {
	case RecExecve:
		var argv []string
		if err := json.Unmarshal(obj["ARGV"], &argv); err != nil {
			return nil, errLaurel
		}
		argc := strconv.Itoa(len(argv))
		if n, ok := laurelNumber(obj["argc"]); ok {
			argc = n
		}
		b = append(b, " argc="...)
		b = append(b, argc...)
		for i, a := range argv {
			b = append(b, " a"...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, '=')
			b = appendRawString(b, percentDecode(a))
		}
		return b, nil
	case RecProctitle:
		var argv []string
		if err := json.Unmarshal(obj["ARGV"], &argv); err != nil {
			return nil, errLaurel
		}
		for i := range argv {
			argv[i] = percentDecode(argv[i])
		}
		b = append(b, " proctitle="...)
		return appendUpperHex(b, strings.Join(argv, "\x00")), nil
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		if strings.ToLower(k) == k {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return laurelKeyOrder(keys[i]) < laurelKeyOrder(keys[j]) || laurelKeyOrder(keys[i]) == laurelKeyOrder(keys[j]) && keys[i] < keys[j]
	})
	for _, k := range keys {
		v := obj[k]
		b = append(b, ' ')
		b = append(b, k...)
		b = append(b, '=')
		switch {
		case string(v) == "null":
			b = append(b, "(null)"...)
		case len(v) > 0 && v[0] == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, errLaurel
			}
			s = percentDecode(s)
			switch {
			case isStringKey(typ, []byte(k)):
				b = appendRawString(b, s)
			case strings.HasPrefix(s, "0x"):
				b = append(b, s[2:]...)
			case strings.HasPrefix(s, "0o"):
				b = append(b, '0')
				b = append(b, s[2:]...)
			case strings.ContainsAny(s, " \"") || s == "":
				b = appendUpperHex(b, s)
			default:
				b = append(b, s...)
			}
		default:
			n, ok := laurelNumber(v)
			if !ok {
				return nil, errLaurel // an object or list where a value belongs
			}
			b = append(b, n...)
		}
	}
	return b, nil
}

// laurelKeyOrder puts the keys the assembler reads in the kernel's order
// first; the rest follow by name.
func laurelKeyOrder(k string) int {
	for i, o := range []string{"arch", "syscall", "success", "exit", "a0", "a1", "a2", "a3", "items", "ppid", "pid", "auid", "uid", "gid", "euid", "suid", "fsuid", "egid", "sgid", "fsgid", "tty", "ses", "comm", "exe", "subj", "key", "item", "name", "inode", "dev", "mode", "ouid", "ogid", "rdev", "nametype"} {
		if k == o {
			return i
		}
	}
	return 100
}

// laurelNumber is a JSON number's text, if v is one.
func laurelNumber(v json.RawMessage) (string, bool) {
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil {
		return "", false
	}
	return n.String(), true
}

// percentDecode undoes laurel's percent-encoding; a '%' not followed by
// two hex digits stays.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// laurel reads one laurel line into records carved from c, counting
// it as one line; a line that is not laurel's form is malformed.
func (l *LogReader) laurel(line []byte, lineN int, c *chunks) []Record {
	l.stats.Lines++
	raws, err := laurelRecords(line)
	var recs []Record
	for _, raw := range raws {
		c.room(len(raw) + 64)
		typ, h, grown, perr := appendLogRecord(c.arena, raw)
		switch {
		case perr == errSkip:
			l.stats.Skipped++
			continue
		case perr != nil:
			err = perr
			continue
		case !l.inRange(h):
			l.stats.Filtered++
			continue
		}
		recs = append(recs, Record{Type: typ, Data: grown[len(c.arena):len(grown):len(grown)]})
		c.arena = grown
		l.stats.Records++
		l.span(h)
	}
	if err != nil {
		l.stats.Malformed++
		if l.OnMalformed != nil {
			l.OnMalformed(lineN, fmt.Errorf("audit: log line %d: %w", lineN, err))
		}
	}
	return recs
}

// laurelID reports whether id is SECONDS.MILLIS:SERIAL.
func laurelID(id string) bool {
	dot, colon := strings.IndexByte(id, '.'), strings.IndexByte(id, ':')
	if dot <= 0 || colon <= dot+1 || colon == len(id)-1 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if i != dot && i != colon && !isDigit(id[i]) {
			return false
		}
	}
	return true
}

// validNode reports whether a laurel NODE can stand as a node= prefix:
// printable ASCII without spaces, at most 255 bytes.
func validNode(n string) bool {
	if n == "" || len(n) > 255 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] <= ' ' || n[i] >= 0x7f {
			return false
		}
	}
	return true
}
