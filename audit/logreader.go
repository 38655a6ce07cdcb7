package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// maxLogLine is the longest auditd log line ReadLog accepts (1 MiB). The
// kernel caps one record near 8 KiB (MAX_AUDIT_MESSAGE_LENGTH, 8970 bytes in
// kernel/audit.c); a 3000-argument EXECVE record line is about 9 KB. Longer
// lines are reported to onErr and skipped.
const maxLogLine = 1 << 20

// logBatch is how many records ReadLog sends at most in one batch.
const logBatch = 256

var (
	errNoType   = errors.New("missing type=")
	errNoMsg    = errors.New("missing msg=")
	errLongLine = errors.New("line longer than 1 MiB")
	// errSkip marks a line that is an audit record encwatch has no use for
	// and cannot read (type=UNKNOWN[1329] msg=?): skipped, not malformed.
	errSkip = errors.New("skipped record")
	// errSeparator marks ausearch's "----" and "time->" lines: neither
	// records nor malformed.
	errSeparator = errors.New("ausearch separator")
	// errInterpreted names ausearch -i's output, whose stamps and values
	// are rewritten for people (audit(11/27/26 06:00:59.157:6) : ...).
	errInterpreted = errors.New("interpreted ausearch output (-i): replay ausearch's output without -i")
)

// concernsExec reports whether records of type typ are part of an exec's
// syscall event: the records the Assembler folds into an Event.
func concernsExec(typ uint16) bool {
	switch typ {
	case RecSyscall, RecExecve, RecCwd, RecPath, RecProctitle, RecEOE, RecBprmFcaps:
		return true
	}
	return false
}

// appendLogRecord appends the Data of line's record to dst and returns the
// record type, its header and the grown dst: the record's Data is what was
// appended. A record of a known type that does not concern an exec and
// has an unreadable header (type=UNKNOWN[1329] msg=?) returns errSkip.
// Lines auditd does not write go through stripLogPrefix: ausearch's
// separators return errSeparator, another program's syslog line
// errForeign; a record behind a syslog header takes the HOSTNAME as its
// node unless it has a node= of its own, and one behind the kernel's
// "audit: " may give its type as a number and have no msg=.
func appendLogRecord(dst, line []byte) (uint16, rawHeader, []byte, error) {
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	// A plain line takes no detour: stripLogPrefix is only asked about
	// lines auditd does not write.
	var host []byte
	kind := prefixNone
	if !hasPrefix(line, "type=") && !hasPrefix(line, "node=") {
		var err error
		host, line, kind, err = stripLogPrefix(line)
		switch {
		case err != nil:
			return 0, rawHeader{}, dst, err
		case kind == prefixSeparator:
			return 0, rawHeader{}, dst, errSeparator
		}
	}
	var node []byte
	if hasPrefix(line, "node=") {
		i := 5
		for i < len(line) && line[i] != ' ' {
			i++
		}
		if i == 5 || i == len(line) {
			return 0, rawHeader{}, dst, errBadNode
		}
		node, line = line[5:i], line[i+1:]
	}
	if !hasPrefix(line, "type=") {
		return 0, rawHeader{}, dst, errNoType
	}
	line = line[5:]
	i := 0
	for i < len(line) && line[i] != ' ' {
		i++
	}
	typ, typErr := typeFromName(line[:i])
	if typErr != nil && kind != prefixNone {
		// The kernel's printk, and some relays, write the number.
		if n, ok := parseUint(line[:i], 10); ok && n <= 0xffff {
			typ, typErr = uint16(n), nil
		}
	}
	for i < len(line) && line[i] == ' ' {
		i++
	}
	line = line[i:]
	switch {
	case hasPrefix(line, "msg="):
		line = line[4:]
	case kind == prefixKernel && hasPrefix(line, "audit("):
		// The kernel's printk has no msg=.
	default:
		return 0, rawHeader{}, dst, errNoMsg
	}
	h, _, err := parseHeader(line)
	switch {
	case typErr != nil:
		// The table names every type the kernel and auditd write; a name
		// outside it is damage, not news.
		return 0, h, dst, typErr
	case err != nil && isInterpreted(line):
		return 0, h, dst, errInterpreted
	case err != nil && !concernsExec(typ):
		return 0, h, dst, errSkip
	case err != nil:
		return 0, h, dst, err
	}
	if node == nil && host != nil {
		// The syslog HOSTNAME names the record's node when the record
		// itself does not (auditd's name_format = none).
		node = host
	}
	h.node = node
	if node != nil {
		dst = append(dst, "node="...)
		dst = append(dst, node...)
		dst = append(dst, ' ')
	}
	if kind == prefixSyslog || kind == prefixRFC5424 {
		if i := escapedGS(line); i >= 0 {
			// rsyslog wrote the enriched separator as "#035".
			dst = append(dst, line[:i]...)
			dst = append(dst, 0x1d)
			line = line[i+len("#035"):]
		}
	}
	dst = append(dst, line...)
	return typ, h, dst, nil
}

// escapedGS returns where an enriched record's separator (0x1d) is in
// line as rsyslog writes a control character on receipt (its
// EscapeControlCharactersOnReceive, on by default: '#' and three octal
// digits), or -1. Only an occurrence outside double quotes counts: the
// kernel hex-encodes any value holding '"', so quote parity is reliable,
// and "#035" typed into a quoted argument stays text.
func escapedGS(line []byte) int {
	quoted := false
	for i := 0; i+4 <= len(line); i++ {
		switch {
		case line[i] == '"':
			quoted = !quoted
		case !quoted && line[i] == '#' && string(line[i:i+4]) == "#035":
			return i
		}
	}
	return -1
}

// LogStats count what a LogReader has read.
type LogStats struct {
	Lines     uint64 // non-blank lines
	Records   uint64 // records sent
	Skipped   uint64 // records that concern no exec and have an unreadable header
	Filtered  uint64 // records outside [Since, Until)
	Malformed uint64 // lines that are not audit records, or are unreadable exec records
	// Separators are ausearch's "----" and "time->" lines between events.
	Separators uint64
	// Foreign are syslog lines of other programs, in a syslog file that
	// also holds forwarded audit records.
	Foreign uint64
	// First and Last are the earliest and latest record times sent.
	First, Last time.Time
}

// AuditLines reports how many lines were audit records, used or not.
func (s LogStats) AuditLines() uint64 { return s.Records + s.Skipped + s.Filtered }

// LogReader reads auditd log lines into record batches. Its zero value
// reads everything and reports nothing. A LogReader is used by one
// goroutine; Stats is read after Read returns.
type LogReader struct {
	// Since and Until, when not zero, keep only records stamped at or
	// after Since and before Until.
	Since, Until time.Time
	// OnMalformed, if set, is told of each malformed line with its
	// 1-based line number.
	OnMalformed func(line int, err error)
	// Location is the time zone of ausearch -i's stamps (interpreted.go):
	// the analyst's, which the output does not say; nil is UTC.
	Location *time.Location

	// Done, if set, is where the receiver of Read's batches hands each
	// one back once it reads its records no more (their Data included),
	// so that Read can reuse their memory rather than make more. A batch
	// not handed back is simply not reused.
	Done <-chan []Record

	stats       LogStats
	first, last rawHeader // the stamps of First and Last (span), compared without time.Time
	scratch     []byte    // an ausearch -i line's raw form
}

// Stats returns the counts of everything Read has read so far.
func (l *LogReader) Stats() LogStats {
	s := l.stats
	if s.Records > 0 {
		s.First, s.Last = l.first.time(), l.last.time()
	}
	return s
}

// ReadLog reads auditd log lines from r and sends their records to out, as
// LogReader.Read does, with onErr told of each malformed line.
func ReadLog(ctx context.Context, r io.Reader, out chan<- []Record, onErr func(line int, err error)) error {
	l := LogReader{OnMalformed: onErr}
	return l.Read(ctx, r, out)
}

// Read reads auditd log lines from r and sends their records to out in
// batches of at most logBatch, each a new slice the receiver owns, in file
// order. A batch is sent when full, and also whenever r has no more input
// ready, so that a slow stream (an audisp plugin's stdin) is not held back
// waiting for a full batch. The lines may be auditd's (plain or
// enriched), ausearch's output, or records behind a syslog header or the
// kernel's printk prefix, mixed (see stripLogPrefix); an ausearch event is
// held until its end and put back in the kernel's order (ausearchOrder).
// Empty lines, ausearch's separators and other programs' syslog lines are
// skipped, and so are records that concern no exec and cannot be read
// (type=UNKNOWN[1329] msg=?); a malformed or over-long line is reported
// to OnMalformed with its 1-based line number, and reading goes on. Read returns nil at the end of r, ctx's
// error if ctx is done, or r's read error. It does not close out.
func (l *LogReader) Read(ctx context.Context, r io.Reader, out chan<- []Record) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		batch   []Record
		c       = chunks{recycle: l.Done != nil} // the records' Data
		long    []byte                           // a line longer than the reader's buffer, being gathered
		tooLong bool                             // the line being gathered passed maxLogLine
		lineN   int
		// block is where ausearch's current event starts in batch, or -1
		// outside one: its records are held back until the event ends, to
		// be put back in the kernel's order (see ausearchOrder).
		block = -1
	)
	// send sends batch, except the records of an ausearch event that has
	// not ended unless all is set.
	send := func(all bool) error {
		n := len(batch)
		if block >= 0 && !all {
			n = block
		}
		if n == 0 {
			return nil
		}
		select {
		case out <- batch[:n:n]:
		case <-ctx.Done():
			return ctx.Err()
		}
		for c.recycle {
			select {
			case b := <-l.Done:
				c.handBack(b)
				continue
			default:
			}
			break
		}
		// The held records keep their Data where it is, which the
		// receiver only reads. The next batch has room for as many
		// records as this one, so that it fills without growing step by
		// step.
		batch = c.send(batch, n)
		if block >= 0 {
			block = 0
		}
		return nil
	}
	endBlock := func() {
		if block >= 0 {
			ausearchOrder(batch[block:])
		}
		block = len(batch)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if br.Buffered() == 0 {
			if err := send(false); err != nil {
				return err
			}
		}
		frag, rerr := br.ReadSlice('\n')
		if rerr == bufio.ErrBufferFull {
			if !tooLong && len(long)+len(frag) <= maxLogLine {
				long = append(long, frag...)
			} else {
				tooLong, long = true, long[:0]
			}
			continue
		}
		if rerr != nil && rerr != io.EOF {
			if err := send(true); err != nil {
				return err
			}
			return fmt.Errorf("audit: read log: %w", rerr)
		}
		line := frag
		if len(long) > 0 {
			long = append(long, frag...)
			line = long
		}
		if len(line) > 0 || tooLong {
			lineN++
			seps := l.stats.Separators
			if !tooLong && isLaurel(line) {
				// laurel's JSON: one line, one event (laurel.go).
				batch = append(batch, l.laurel(line, lineN, &c)...)
			} else if r, ok := l.line(line, tooLong, lineN, &c); ok {
				batch = append(batch, r)
			} else if l.stats.Separators != seps {
				endBlock()
			}
		}
		long, tooLong = long[:0], false
		if cap(long) > 1<<20 {
			long = nil
		}
		if len(batch) >= logBatch {
			if block == 0 {
				// An ausearch event of logBatch records or more: sent
				// as it is.
				block = -1
			}
			if err := send(false); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			if block >= 0 {
				endBlock()
			}
			return send(true)
		}
	}
}

// line reads one line into a record carved from c, counting it.
func (l *LogReader) line(line []byte, tooLong bool, lineN int, c *chunks) (Record, bool) {
	if !tooLong && isBlank(line) {
		return Record{}, false
	}
	l.stats.Lines++
	var err error
	if tooLong || len(line) > maxLogLine+1 {
		err = errLongLine
	} else {
		c.room(len(line) + 64)
		typ, h, grown, perr := appendLogRecord(c.arena, line)
		if perr == errInterpreted {
			// ausearch -i: mapped back to the raw form (interpreted.go).
			typ, h, grown, perr = l.uninterpret(c.arena, line)
		}
		switch {
		case perr == errSkip:
			l.stats.Skipped++
			return Record{}, false
		case perr == errSeparator:
			l.stats.Separators++
			return Record{}, false
		case perr == errForeign:
			l.stats.Foreign++
			return Record{}, false
		case perr != nil:
			err = perr
		case !l.inRange(h):
			l.stats.Filtered++
			return Record{}, false
		default:
			rec := Record{Type: typ, Data: grown[len(c.arena):len(grown):len(grown)]}
			c.arena = grown
			l.stats.Records++
			l.span(h)
			return rec, true
		}
	}
	l.stats.Malformed++
	if l.OnMalformed != nil {
		l.OnMalformed(lineN, fmt.Errorf("audit: log line %d: %w", lineN, err))
	}
	return Record{}, false
}

// isInterpreted reports whether stamp, what follows msg=, is ausearch -i's
// local date (MM/DD/YY) rather than the kernel's seconds since the epoch.
func isInterpreted(stamp []byte) bool {
	return hasPrefix(stamp, "audit(") && len(stamp) > 9 && isDigit(stamp[6]) && isDigit(stamp[7]) && stamp[8] == '/'
}

// ausearchOrder puts the records of one event from ausearch's output back
// in the order the kernel wrote them. ausearch 3.0.9 (Debian 12) prints an
// event's records last first (PROCTITLE ... EXECVE, SYSCALL); read that
// way, PROCTITLE would close a replayed event before its SYSCALL arrived,
// splitting it in two: the SYSCALL's half without its proctitle. An event
// that ends with its SYSCALL, and does not start with it, is reversed.
func ausearchOrder(recs []Record) {
	if len(recs) > 1 && recs[len(recs)-1].Type == RecSyscall && recs[0].Type != RecSyscall {
		slices.Reverse(recs)
	}
}

// inRange reports whether h's time lies within [Since, Until).
func (l *LogReader) inRange(h rawHeader) bool {
	if l.Since.IsZero() && l.Until.IsZero() {
		return true
	}
	t := h.time()
	return (l.Since.IsZero() || !t.Before(l.Since)) && (l.Until.IsZero() || t.Before(l.Until))
}

// span widens First..Last to h's time. Only the stamps are kept: Stats
// makes the times, rather than every record that moves Last.
func (l *LogReader) span(h rawHeader) {
	if h.sec < l.first.sec || (h.sec == l.first.sec && h.nsec < l.first.nsec) || l.stats.Records == 1 {
		l.first.sec, l.first.nsec = h.sec, h.nsec
	}
	if h.sec > l.last.sec || (h.sec == l.last.sec && h.nsec > l.last.nsec) || l.stats.Records == 1 {
		l.last.sec, l.last.nsec = h.sec, h.nsec
	}
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != '\n' && c != '\r' && c != ' ' {
			return false
		}
	}
	return true
}
