package audit

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReadGoLibauditLogs replays every log of go-libaudit's auparse testdata
// (real RHEL and Ubuntu logs) through the reader and the assembler: no line
// and no record may be malformed.
func TestReadGoLibauditLogs(t *testing.T) {
	files, err := filepath.Glob("../testdata/go-libaudit/*.log")
	if err != nil || len(files) < 7 {
		t.Fatalf("go-libaudit logs: %v, %d files, want 7", err, len(files))
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			f, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			out := make(chan []Record, 1024)
			var bad []string
			l := LogReader{OnMalformed: func(line int, err error) { bad = append(bad, err.Error()) }}
			if err := l.Read(context.Background(), f, out); err != nil {
				t.Fatalf("Read: %v", err)
			}
			close(out)
			a := NewAssembler(AssemblerConfig{Mode: ModeReplay})
			for b := range out {
				for _, r := range b {
					a.Push(r, time.Time{}, func(*Event) {})
				}
			}
			a.Flush(func(*Event) {})
			if len(bad) != 0 {
				t.Errorf("malformed lines: %q, want none", bad)
			}
			st := l.Stats()
			if st.Records == 0 || st.Malformed != 0 {
				t.Errorf("LogStats = %+v, want records and no malformed line", st)
			}
			if got := a.Stats().Malformed; got != 0 {
				t.Errorf("assembler Malformed = %d, want 0", got)
			}
		})
	}
}
