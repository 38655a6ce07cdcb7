package detect

import (
	"fmt"
	"testing"
	"time"
)

// TestThrottleExpiresInTimeOrder: windows end in the order they were
// opened, each summary once, a window not yet ended stays, and the expiry
// heap holds one entry per group (nothing is scanned per alert).
func TestThrottleExpiresInTimeOrder(t *testing.T) {
	e := throttledEngine(t, ThrottleSpec{Per: "parent_exe", Max: 1, Window: time.Minute}, 0)
	const n = 5
	// Decode i twice at i seconds: the second is held in window i.
	for i := range n {
		at := time.Duration(i) * time.Second
		file := fmt.Sprintf("f%d", i)
		e.Evaluate(decodeAt(at, 1000+2*i, file))
		e.Evaluate(decodeAt(at, 1001+2*i, file))
	}
	if got, want := len(e.thr.expiry), len(e.thr.groups); got != want || got != n {
		t.Errorf("expiry heap holds %d, groups %d, want %d each", got, want, n)
	}
	sums := e.Flush(evTime.Add(time.Minute + 2*time.Second)) // windows 0, 1 and 2 ended
	var files []string
	for _, s := range sums {
		files = append(files, matchValue(s, "suppressed.first_argv"))
	}
	if want := "[base64 -d f0 base64 -d f1 base64 -d f2]"; fmt.Sprint(files) != want {
		t.Errorf("summaries = %v, want %s in that order", files, want)
	}
	if len(e.thr.groups) != 2 || len(e.thr.expiry) != 2 {
		t.Errorf("after the flush: %d groups, %d in the heap, want 2 and 2", len(e.thr.groups), len(e.thr.expiry))
	}
	if rest := e.FlushAll(); len(rest) != 2 || len(e.thr.expiry) != 0 {
		t.Errorf("FlushAll = %d summaries, heap %d, want 2 and empty", len(rest), len(e.thr.expiry))
	}
	if again := e.Flush(evTime.Add(time.Hour)); len(again) != 0 {
		t.Errorf("Flush after FlushAll = %d summaries, want 0", len(again))
	}
}

// BenchmarkThrottleDistinct: a new command each millisecond, past the
// first window, so that windows end on every event.
func BenchmarkThrottleDistinct(b *testing.B) {
	e := NewEngine(mustCompile(b, PolicySpec{Signatures: []SignatureSpec{func() SignatureSpec {
		s := encoderSpec
		s.Throttles = []ThrottleSpec{{Per: "parent_exe", Max: 1, Window: time.Minute}}
		return s
	}()}, AlertCap: 1 << 30}), "h", fixedNow)
	for i := range 70_000 { // past the first minute
		e.Evaluate(decodeAt(time.Duration(i)*time.Millisecond, i, fmt.Sprintf("w%d", i)))
	}
	b.ResetTimer()
	for i := range b.N {
		e.Evaluate(decodeAt(time.Duration(70_000+i)*time.Millisecond, i, fmt.Sprintf("b%d", i)))
	}
}
