package audit

import (
	"bytes"
	"context"
	"os"
	"testing"
)

// BenchmarkReadLog reads the captured log, repeated to about 8 MB, into
// record batches in each of its framings: what stripLogPrefix costs beside
// the plain form it must not slow down.
func BenchmarkReadLog(b *testing.B) {
	for _, f := range []struct{ name, path string }{
		{"plain", "../testdata/replay-audit.log"},
		{"rfc3164", "../testdata/syslog/replay-audit.rfc3164.log"},
		{"rfc5424", "../testdata/syslog/replay-audit.rfc5424.log"},
		{"ausearch", "../testdata/ausearch/replay-audit.ausearch"},
		{"kmsg", "../testdata/kmsg/replay-audit.kmsg"},
	} {
		b.Run(f.name, func(b *testing.B) {
			src, err := os.ReadFile(f.path)
			if err != nil {
				b.Skip(err)
			}
			data := bytes.Repeat(src, (8<<20)/len(src))
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				out := make(chan []Record, 1<<16)
				l := LogReader{}
				if err := l.Read(context.Background(), bytes.NewReader(data), out); err != nil {
					b.Fatal(err)
				}
				if st := l.Stats(); st.Malformed != 0 || st.Records == 0 {
					b.Fatalf("stats %+v", st)
				}
			}
		})
	}
}
