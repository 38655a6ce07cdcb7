package audit

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"
)

// The record payload grammar, as kernel/audit.c (audit_log_start) and
// kernel/auditsc.c write it:
//
//	[node=HOST ]audit(SECONDS.MILLIS:SERIAL): key=value key=value ...[\x1d KEY=value ...]
//
// Older auditd wrote its own DAEMON_* records without the colon after the
// stamp ("audit(T:S) config changed, auid=0"); the parser takes either.
// The node= prefix is not written by the kernel: ReadLog keeps it from a
// forwarded auditd log line so that the Event can carry it. The \x1d group
// separator starts auditd's ENRICHED fields (log_format = ENRICHED).
//
// Values are written four ways: a double-quoted string with no escapes inside
// (audit_log_untrustedstring quotes a string only when it holds no byte that
// needs escaping), bare hex (the same function hex-encodes any string holding
// a space, a quote, a control byte or a byte >= 0x7f), a bare word or number,
// and the placeholders "(null)" and "?". User-space records wrap their
// message in single quotes (msg='op=... res=success').

// enrichedSep is the byte auditd writes before enriched fields
// (AUDIT_INTERP_SEPARATOR, auditd's lib/libaudit.h).
const enrichedSep = 0x1d

// ValueKind says how a field's value was written in the record.
type ValueKind uint8

// The ways a value can be written.
const (
	// KindBare is an unquoted word or number, kept as written.
	KindBare ValueKind = iota
	// KindQuoted is a "double-" or 'single-'quoted value; Value is the text
	// between the quotes, which may be empty.
	KindQuoted
	// KindHex is a bare hex value of a field that carries an untrusted string
	// (see isStringKey); Value holds the decoded bytes.
	KindHex
	// KindNull is the placeholder (null); Value is empty.
	KindNull
	// KindUnset is the placeholder ?; Value is empty.
	KindUnset
)

// Field is one key=value pair of a parsed record.
type Field struct {
	Key   string
	Value string // decoded: any bytes, including NUL and invalid UTF-8
	Kind  ValueKind
}

// Header is the audit(SECONDS.MILLIS:SERIAL) stamp that starts every record,
// with the node= prefix of a forwarded log line if there was one.
type Header struct {
	Time   time.Time
	Serial uint64
	Node   string
}

// ParsedRecord is one record with its header and fields decoded.
type ParsedRecord struct {
	Type uint16
	Header
	// Fields are the record's fields in order; a key may repeat.
	Fields []Field
	// Enriched are the fields auditd appended after \x1d (ENRICHED log
	// format), kept apart because they are auditd's interpretation, not the
	// kernel's record. No value among them is hex-decoded.
	Enriched []Field
}

// Get returns the value of the first field named key and whether there was one.
func (p *ParsedRecord) Get(key string) (string, bool) {
	for i := range p.Fields {
		if p.Fields[i].Key == key {
			return p.Fields[i].Value, true
		}
	}
	return "", false
}

// Parse errors. They are static so that the hot path never formats; the
// exported functions wrap them once with context.
var (
	errNoHeader   = errors.New("missing audit( header")
	errBadTime    = errors.New("malformed timestamp")
	errBadSerial  = errors.New("malformed serial")
	errBadHeader  = errors.New("malformed header terminator")
	errBadNode    = errors.New("malformed node= prefix")
	errEmptyKey   = errors.New("field with empty key")
	errUnterm     = errors.New("unterminated quoted value")
	errAfterQuote = errors.New("junk after quoted value")
	errBadHex     = errors.New("string field is neither quoted nor valid hex")
)

// rawHeader is the header as parsed, before any allocation.
type rawHeader struct {
	sec    int64
	nsec   int64
	serial uint64
	node   []byte
}

func (h *rawHeader) time() time.Time { return time.Unix(h.sec, h.nsec) }

// parseHeader reads the optional node= prefix and the audit(...): stamp and
// returns the rest of the payload.
func parseHeader(data []byte) (h rawHeader, body []byte, err error) {
	// Netlink payloads may carry a trailing NUL or newline; neither is data.
	for len(data) > 0 && (data[len(data)-1] == 0 || data[len(data)-1] == '\n') {
		data = data[:len(data)-1]
	}
	if hasPrefix(data, "node=") {
		i := 5
		for i < len(data) && data[i] != ' ' {
			i++
		}
		if i == 5 || i == len(data) {
			return h, nil, errBadNode
		}
		h.node = data[5:i]
		data = data[i+1:]
	}
	if hasPrefix(data, "msg=") { // tolerate a log line's msg= left in place
		data = data[4:]
	}
	if !hasPrefix(data, "audit(") {
		return h, nil, errNoHeader
	}
	i := 6
	// SECONDS
	start := i
	for i < len(data) && isDigit(data[i]) {
		i++
	}
	sec, ok := parseUint(data[start:i], 10)
	if !ok || sec > math.MaxInt64/2 || i >= len(data) || data[i] != '.' {
		return h, nil, errBadTime
	}
	i++
	// MILLIS: three digits from the kernel; accept 1..9 as a fraction.
	start = i
	for i < len(data) && isDigit(data[i]) {
		i++
	}
	n := i - start
	if n == 0 || n > 9 || i >= len(data) || data[i] != ':' {
		return h, nil, errBadTime
	}
	frac, _ := parseUint(data[start:i], 10)
	for ; n < 9; n++ {
		frac *= 10
	}
	i++
	start = i
	for i < len(data) && isDigit(data[i]) {
		i++
	}
	serial, ok := parseUint(data[start:i], 10)
	if !ok {
		return h, nil, errBadSerial
	}
	if i >= len(data) || data[i] != ')' {
		return h, nil, errBadHeader
	}
	i++
	switch {
	case i < len(data) && data[i] == ':':
		i++
	case i == len(data) || data[i] == ' ':
		// auditd's own records (DAEMON_CONFIG in RHEL 7's audit-2.6)
		// were written "audit(T:S) text": no colon after the stamp.
	default:
		return h, nil, errBadHeader
	}
	h.sec, h.nsec, h.serial = int64(sec), int64(frac), serial
	return h, data[i:], nil
}

// ParseRecord parses a record's header and all its fields, hex-decoding the
// values of string fields (isStringKey). It never panics; malformed input
// returns an error. The returned strings do not alias r.Data.
func ParseRecord(r Record) (ParsedRecord, error) {
	h, body, err := parseHeader(r.Data)
	if err != nil {
		return ParsedRecord{}, fmt.Errorf("audit: parse record: %w", err)
	}
	p := ParsedRecord{
		Type:   r.Type,
		Header: Header{Time: h.time(), Serial: h.serial, Node: string(h.node)},
	}
	s := fieldScanner{typ: r.Type, data: body}
	var buf []byte
	for s.next() {
		buf = s.appendValue(buf[:0])
		f := Field{Key: string(s.key()), Value: string(buf), Kind: s.kind}
		if s.enriched {
			p.Enriched = append(p.Enriched, f)
		} else {
			p.Fields = append(p.Fields, f)
		}
	}
	if s.err != nil {
		return ParsedRecord{}, fmt.Errorf("audit: parse %s record %d: %w", typeName(r.Type), h.serial, s.err)
	}
	return p, nil
}

func isStringKey(typ uint16, key []byte) bool {
	switch string(key) {
	case "proctitle", "comm", "ocomm", "exe", "cwd", "name", "key", "path",
		"dir", "acct", "cmd", "data":
		return true
	}
	if typ == RecExecve {
		_, _, kind := execveArgKey(key)
		return kind == argWhole || kind == argPiece
	}
	return false
}

// Kinds of EXECVE argument key.
const (
	argNone  = iota
	argWhole // aN
	argPiece // aN[i]
	argLen   // aN_len
)

// execveArgKey classifies an EXECVE key: aN, aN[i] or aN_len
// (audit_log_single_execve_arg, kernel/auditsc.c).
func execveArgKey(key []byte) (n, piece uint64, kind int) {
	if len(key) < 2 || key[0] != 'a' || !isDigit(key[1]) {
		return 0, 0, argNone
	}
	i := 1
	for i < len(key) && isDigit(key[i]) {
		i++
	}
	n, ok := parseUint(key[1:i], 10)
	if !ok {
		return 0, 0, argNone
	}
	rest := key[i:]
	switch {
	case len(rest) == 0:
		return n, 0, argWhole
	case string(rest) == "_len":
		return n, 0, argLen
	case len(rest) >= 3 && rest[0] == '[' && rest[len(rest)-1] == ']':
		p, ok := parseUint(rest[1:len(rest)-1], 10)
		if ok {
			return n, p, argPiece
		}
	}
	return 0, 0, argNone
}

// fieldScanner walks the key=value fields of a record body without
// allocating. After next returns true, key, val and kind describe the field;
// appendValue decodes it.
type fieldScanner struct {
	typ  uint16
	data []byte // the kernel's fields, then (once enriched) auditd's
	rest []byte // the enriched fields after \x1d, until data reaches them
	pos  int
	// enriched is set once the scanner has moved past \x1d: the current
	// field is one of auditd's ENRICHED fields.
	enriched bool
	split    bool // rest has been cut from data

	// The current field's key is data[keyStart:keyEnd] and its raw value
	// (between the quotes, or the bare text) data[valStart:valEnd]:
	// offsets rather than slices, because they are written for every
	// field and writing a pointer costs a write barrier whenever the
	// collector is marking.
	keyStart, keyEnd, valStart, valEnd int
	kind                               ValueKind
	err                                error
}

// key returns the current field's key.
func (s *fieldScanner) key() []byte { return s.data[s.keyStart:s.keyEnd] }

// val returns the current field's raw value: between the quotes, or the
// bare text.
func (s *fieldScanner) val() []byte { return s.data[s.valStart:s.valEnd] }

// next advances to the next field. Words without '=' (the free text of AVC
// records, "avc:  denied  { read }") are skipped.
func (s *fieldScanner) next() bool {
	if !s.split {
		s.split = true
		if i := bytes.IndexByte(s.data, enrichedSep); i >= 0 {
			s.data, s.rest = s.data[:i], s.data[i+1:]
		}
	}
	// The loops work on locals, written back to s once: through the
	// pointer, the compiler would load and store s.pos at every byte.
	for s.err == nil {
		d, pos, enriched := s.data, s.pos, s.enriched
		for pos < len(d) && (d[pos] == ' ' || (enriched && d[pos] == enrichedSep)) {
			pos++
		}
		if pos >= len(d) {
			if s.rest == nil {
				s.pos = pos
				return false
			}
			// A further \x1d in the enriched part is taken as a space.
			s.data, s.rest, s.pos, s.enriched = s.rest, nil, 0, true
			continue
		}
		start := pos
		for pos < len(d) {
			c := d[pos]
			if c == '=' || c == ' ' || (enriched && c == enrichedSep) {
				break
			}
			pos++
		}
		s.pos = pos
		if pos >= len(d) || d[pos] != '=' {
			continue // a word without a value
		}
		if pos == start {
			s.err = errEmptyKey
			return false
		}
		s.keyStart, s.keyEnd = start, pos
		s.pos = pos + 1
		return s.value()
	}
	return false
}

// isSep reports whether c separates fields: a space, and within the
// enriched part a further \x1d.
func (s *fieldScanner) isSep(c byte) bool {
	return c == ' ' || (s.enriched && c == enrichedSep)
}

// shortValue is how far value looks for a bare value's end byte by byte
// before it calls bytes.IndexByte: most bare values are numbers and flags
// a few bytes long, found sooner than a call is made, while a hex string
// may run to thousands of bytes.
const shortValue = 16

// value reads the value at s.pos.
func (s *fieldScanner) value() bool {
	d, pos := s.data, s.pos
	if pos < len(d) && (d[pos] == '"' || d[pos] == '\'') {
		end := bytes.IndexByte(d[pos+1:], d[pos])
		if end < 0 {
			s.err = errUnterm
			return false
		}
		end += pos + 1
		s.valStart, s.valEnd, s.kind = pos+1, end, KindQuoted
		s.pos = end + 1
		if s.pos < len(d) && !s.isSep(d[s.pos]) {
			s.err = errAfterQuote
			return false
		}
		return true
	}
	start := pos
	for pos < len(d) && pos-start < shortValue && d[pos] != ' ' {
		pos++
	}
	if pos-start == shortValue {
		if i := bytes.IndexByte(d[pos:], ' '); i >= 0 {
			pos += i
		} else {
			pos = len(d)
		}
	}
	if s.enriched {
		for i := start; i < pos; i++ {
			if d[i] == enrichedSep {
				pos = i
				break
			}
		}
	}
	s.pos = pos
	s.valStart, s.valEnd, s.kind = start, pos, KindBare
	val := d[start:pos]
	switch string(val) {
	case "(null)":
		s.valEnd, s.kind = start, KindNull
		return true
	case "?":
		s.valEnd, s.kind = start, KindUnset
		return true
	}
	if !s.enriched && len(val) > 0 && isStringKey(s.typ, d[s.keyStart:s.keyEnd]) {
		ok := validHex(val)
		if n := len(val) - 1; !ok && val[n] == '"' && validHex(val[:n]) {
			// A stray closing quote after a hex value, as in an Ubuntu
			// 17.10 log (go-libaudit's auparse testdata): the hex is whole.
			ok = true
			s.valEnd--
		}
		if !ok {
			s.err = errBadHex
			return false
		}
		s.kind = KindHex
	}
	return true
}

// appendValue appends the current field's decoded value to dst.
func (s *fieldScanner) appendValue(dst []byte) []byte {
	if s.kind == KindHex {
		return appendHex(dst, s.val())
	}
	return append(dst, s.val()...)
}

// validHex reports whether b is an even number of hex digits.
func validHex(b []byte) bool {
	if len(b)%2 != 0 {
		return false
	}
	for _, c := range b {
		if hexVal[c] > 15 {
			return false
		}
	}
	return true
}

// appendHex appends the bytes that the valid hex string src encodes.
func appendHex(dst, src []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, len(src)/2)[:n+len(src)/2]
	for i := 0; i+1 < len(src); i += 2 {
		dst[n] = hexVal[src[i]]<<4 | hexVal[src[i+1]]
		n++
	}
	return dst
}

// hexVal maps a byte to its hex digit value, or 255.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 255
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = byte(c-'a') + 10
	}
	return t
}()

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// parseUint parses a non-empty unsigned number in base 8, 10 or 16, rejecting
// overflow and any other byte.
func parseUint(b []byte, base uint64) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	// Up to 15 digits cannot overflow in any of the three bases; longer
	// numbers take the checked path.
	var n uint64
	if len(b) <= 15 {
		for _, c := range b {
			d := uint64(hexVal[c])
			if d >= base {
				return 0, false
			}
			n = n*base + d
		}
		return n, true
	}
	for _, c := range b {
		d := uint64(hexVal[c])
		if d >= base {
			return 0, false
		}
		hi, lo := bits.Mul64(n, base)
		lo2, carry := bits.Add64(lo, d, 0)
		if hi != 0 || carry != 0 {
			return 0, false
		}
		n = lo2
	}
	return n, true
}

// parseInt parses a signed decimal number.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, ok := parseUint(b, 10)
	if !ok {
		return 0, false
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}
