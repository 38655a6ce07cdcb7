package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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
)

// appendLogRecord appends the Data of line's record to dst and returns the
// record type and the grown dst: the record's Data is what was appended.
func appendLogRecord(dst, line []byte) (uint16, []byte, error) {
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	var node []byte
	if hasPrefix(line, "node=") {
		i := 5
		for i < len(line) && line[i] != ' ' {
			i++
		}
		if i == 5 || i == len(line) {
			return 0, dst, errBadNode
		}
		node, line = line[5:i], line[i+1:]
	}
	if !hasPrefix(line, "type=") {
		return 0, dst, errNoType
	}
	line = line[5:]
	i := 0
	for i < len(line) && line[i] != ' ' {
		i++
	}
	typ, err := typeFromName(line[:i])
	if err != nil {
		return 0, dst, err
	}
	for i < len(line) && line[i] == ' ' {
		i++
	}
	line = line[i:]
	if !hasPrefix(line, "msg=") {
		return 0, dst, errNoMsg
	}
	line = line[4:]
	if _, _, err := parseHeader(line); err != nil {
		return 0, dst, err
	}
	if node != nil {
		dst = append(dst, "node="...)
		dst = append(dst, node...)
		dst = append(dst, ' ')
	}
	dst = append(dst, line...)
	return typ, dst, nil
}

// ReadLog reads auditd log lines from r and sends their records to out in
// batches of at most logBatch, each a new slice the receiver owns, in file
// order. A batch is sent when full, and also whenever r has no more input
// ready, so that a slow stream (an audisp plugin's stdin) is not held back
// waiting for a full batch. Empty lines are skipped; a malformed or
// over-long line is reported to onErr (if not nil) with its 1-based line
// number, and reading goes on. ReadLog returns nil at the end of r, ctx's
// error if ctx is done, or r's read error. It does not close out.
func ReadLog(ctx context.Context, r io.Reader, out chan<- []Record, onErr func(line int, err error)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		batch   []Record
		arena   []byte // the batch's Data, carved from shared chunks
		long    []byte // a line longer than the reader's buffer, being gathered
		tooLong bool   // the line being gathered passed maxLogLine
		lineN   int
	)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case out <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
		batch, arena = nil, nil
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if br.Buffered() == 0 {
			if err := send(); err != nil {
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
			if err := send(); err != nil {
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
			var perr error
			switch {
			case tooLong || len(line) > maxLogLine+1:
				perr = errLongLine
			case isBlank(line):
			default:
				if cap(arena)-len(arena) < len(line)+64 {
					arena = make([]byte, 0, max(64<<10, len(line)+64))
				}
				var typ uint16
				var grown []byte
				typ, grown, perr = appendLogRecord(arena, line)
				if perr == nil {
					batch = append(batch, Record{Type: typ, Data: grown[len(arena):len(grown):len(grown)]})
					arena = grown
				}
			}
			if perr != nil && onErr != nil {
				onErr(lineN, fmt.Errorf("audit: log line %d: %w", lineN, perr))
			}
		}
		long, tooLong = long[:0], false
		if cap(long) > 1<<20 {
			long = nil
		}
		if len(batch) >= logBatch {
			if err := send(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return send()
		}
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
