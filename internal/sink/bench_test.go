package sink

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"testing"
)

func BenchmarkAppendJSON(b *testing.B) {
	a := testAlert()
	a.Event.Argv = []string{"sh", "-c", "echo aGVsbG8gd29ybGQK | base64 -d | sh", "--flag=value"}
	buf := AppendJSON(nil, &a)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], &a)
	}
}

// BenchmarkEncodingJSON is the reflection baseline AppendJSON replaces.
func BenchmarkEncodingJSON(b *testing.B) {
	a := testAlert()
	a.Event.Argv = []string{"sh", "-c", "echo aGVsbG8gd29ybGQK | base64 -d | sh", "--flag=value"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(&a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRouterDeliver measures the detection side of the router: a
// Deliver to three sinks whose workers drain the queues concurrently.
func BenchmarkRouterDeliver(b *testing.B) {
	sinks := []Sink{NewStdout("a", discardWriter{}, nil), NewStdout("b", discardWriter{}, nil), NewStdout("c", discardWriter{}, nil)}
	r := NewRouter(discardLog(), sinks, RouterOptions{})
	done := make(chan error, 1)
	go func() { done <- r.Run(b.Context()) }()
	a := testAlert()
	b.ReportAllocs()
	for b.Loop() {
		r.Deliver(a)
	}
	r.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	var dropped uint64
	for _, st := range r.Stats() {
		dropped += st.Dropped.Total()
	}
	b.ReportMetric(float64(dropped)/float64(b.N), "dropped/op")
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkSpoolRecord measures a spool record's encoding, the work Append
// does under the spool's lock on the detection path, and its decoding, done
// by the sink's worker: version 2 (JSON) against version 1 (gob), which
// it replaced.
func BenchmarkSpoolRecord(b *testing.B) {
	a := hostileAlert()
	var v2, v1 bytes.Buffer
	if err := encodeAlert(&v2, &a); err != nil {
		b.Fatal(err)
	}
	if err := gob.NewEncoder(&v1).Encode(&a); err != nil {
		b.Fatal(err)
	}
	b.Run("encode-v2", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			_ = encodeAlert(&buf, &a)
		}
		b.ReportMetric(float64(v2.Len()), "bytes/record")
	})
	b.Run("encode-v1-gob", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			_ = gob.NewEncoder(&buf).Encode(&a)
		}
		b.ReportMetric(float64(v1.Len()), "bytes/record")
	})
	b.Run("decode-v2", func(b *testing.B) {
		for b.Loop() {
			_, _ = decodeAlert(v2.Bytes())
		}
	})
	b.Run("decode-v1-gob", func(b *testing.B) {
		for b.Loop() {
			_, _ = decodeAlert(v1.Bytes())
		}
	})
}
