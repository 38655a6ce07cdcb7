package audit

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"unsafe"
)

// reuseLog returns log lines that exercise what Done's reuse must not
// break: plain records, ausearch events held back across batches, lines
// longer than a chunk and longer than the reader's buffer, each line's
// Data unique.
func reuseLog() []string {
	var lines []string
	for i := range 6000 {
		switch {
		case i%997 == 0:
			lines = append(lines, fmt.Sprintf("type=EXECVE msg=audit(1.000:%d): argc=1 a0=%s\n", i, strings.Repeat("6a", 40<<10+i)))
		case i%1499 == 0:
			lines = append(lines, fmt.Sprintf("type=EXECVE msg=audit(1.000:%d): argc=1 a0=%s\n", i, strings.Repeat("6b", 100<<10)))
		case i%300 < 40:
			// An ausearch event of 13 records, last first.
			if i%13 == 0 {
				lines = append(lines, "----\n", "time->Fri Nov 27 06:00:59 2026\n")
			}
			lines = append(lines, fmt.Sprintf("type=PATH msg=audit(1.000:%d): item=%d name=\"/x\"\n", i/13, i))
			if i%13 == 12 {
				lines = append(lines, fmt.Sprintf("type=SYSCALL msg=audit(1.000:%d): syscall=59\n", i/13))
			}
		default:
			lines = append(lines, fmt.Sprintf("type=CWD msg=audit(1.000:%d): cwd=\"/home/%d\"\n", i, i))
		}
	}
	return lines
}

// TestReadLogDone reads a log with Done set, handing batches back a few
// batches late, and checks that no record's Data changed while its batch
// was held, and that the records are those read without Done.
func TestReadLogDone(t *testing.T) {
	lines := reuseLog()
	all := strings.Join(lines, "")
	var want []string
	for _, r := range readRecords(t, &LogReader{}, strings.NewReader(all)) {
		want = append(want, string(r.Data))
	}
	for _, in := range []struct {
		name string
		r    io.Reader
	}{{"file", strings.NewReader(all)}, {"pipe", &slowPipe{lines: lines}}} {
		t.Run(in.name, func(t *testing.T) {
			done := make(chan []Record, 16)
			out := make(chan []Record)
			l := &LogReader{Done: done}
			errc := make(chan error, 1)
			go func() {
				errc <- l.Read(context.Background(), in.r, out)
				close(out)
			}()
			type held struct {
				batch []Record
				data  []string
			}
			var queue []held
			var got []string
			check := func(h held) {
				for i, r := range h.batch {
					if string(r.Data) != h.data[i] {
						t.Fatalf("record Data changed while its batch was held: %.40q, was %.40q", r.Data, h.data[i])
					}
				}
			}
			for b := range out {
				h := held{batch: b}
				for _, r := range b {
					h.data = append(h.data, string(r.Data))
				}
				got = append(got, h.data...)
				queue = append(queue, h)
				if len(queue) > 3 {
					check(queue[0])
					done <- queue[0].batch
					queue = queue[1:]
				}
			}
			for _, h := range queue {
				check(h)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("Read with Done gave %d records, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("record %d = %.60q, want %.60q", i, got[i], want[i])
				}
			}
		})
	}
}

// slowPipe returns at most one line per Read, like a pipe fed slowly.
type slowPipe struct{ lines []string }

func (r *slowPipe) Read(p []byte) (int, error) {
	if len(r.lines) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.lines[0])
	if r.lines[0] = r.lines[0][n:]; r.lines[0] == "" {
		r.lines = r.lines[1:]
	}
	return n, nil
}

// readRecords reads in with l and returns its records.
func readRecords(t *testing.T, l *LogReader, in io.Reader) []Record {
	t.Helper()
	out := make(chan []Record, 1<<16)
	if err := l.Read(context.Background(), in, out); err != nil {
		t.Fatal(err)
	}
	close(out)
	var recs []Record
	for b := range out {
		recs = append(recs, b...)
	}
	return recs
}

// TestChunksReuse checks the chunk bookkeeping: a chunk is reused only
// once every batch that may refer to it is handed back, the batch being
// gathered included, and the current chunk is never free.
func TestChunksReuse(t *testing.T) {
	c := chunks{recycle: true}
	carve := func(batch []Record, s string) []Record {
		c.room(len(s))
		c.arena = append(c.arena, s...)
		return append(batch, Record{Data: c.arena[len(c.arena)-len(s):]})
	}
	base := func(r Record) *byte { return unsafe.SliceData(r.Data[:cap(r.Data)]) }
	big := strings.Repeat("x", chunkSize/2+1) // two records need two chunks

	var b1 []Record
	b1 = carve(b1, big)
	b1 = carve(b1, big) // in a second chunk
	first := base(b1[0])
	b2 := c.send(b1, 1) // the second record is held back
	if len(b2) != 1 || base(b2[0]) != base(b1[1]) {
		t.Fatalf("held records = %d, want the second record", len(b2))
	}
	c.handBack(b1[:1])
	if len(c.free) != 0 {
		t.Fatalf("%d chunks free while a held record may refer to them, want 0", len(c.free))
	}
	b3 := c.send(b2, len(b2))
	c.handBack(b2)
	if len(c.free) != 1 || unsafe.SliceData(c.free[0].buf) != first || c.free[0] == c.cur {
		t.Fatalf("after both batches are handed back, %d chunks free, want the first one", len(c.free))
	}
	b3 = carve(b3, big) // no room left in the current chunk: the free one
	if base(b3[0]) != first {
		t.Errorf("a new chunk was made while one was free")
	}
	c.send(b3, len(b3))
	c.handBack(b3)
	if len(c.free) != 1 || c.free[0] == c.cur || c.cur == nil {
		t.Fatalf("after the third batch, %d chunks free, want the second one and not the current one", len(c.free))
	}
	c.handBack(b3) // a batch handed back twice is ignored
	c.handBack([]Record{{Data: []byte("x")}})
	if len(c.free) != 1 || c.cur.refs != 1 {
		t.Errorf("a batch handed back twice or never sent changed the counts: %d free, current chunk refs %d", len(c.free), c.cur.refs)
	}
}
