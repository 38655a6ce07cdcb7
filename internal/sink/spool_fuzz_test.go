package sink

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// frame returns payload framed as the spool writes it.
func frame(payload string) []byte {
	b := make([]byte, frameHeader, frameHeader+len(payload))
	binary.LittleEndian.PutUint32(b[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum([]byte(payload), castagnoli))
	return append(b, payload...)
}

// FuzzScanFrames checks the recovery scanner on arbitrary segment bytes:
// the frames and damaged regions it returns tile the input in order, every
// frame is intact, and no damaged region starts with an intact frame.
func FuzzScanFrames(f *testing.F) {
	good := bytes.Join([][]byte{frame(`{"v":2}`), frame("x"), frame(strings.Repeat("y", 300))}, nil)
	f.Add(good)
	f.Add(append([]byte("junk"), good...))
	f.Add(good[:len(good)-3])
	flipped := bytes.Clone(good)
	flipped[frameHeader+2] ^= 0xff
	f.Add(flipped)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, damaged := scanFrames(data)
		all := append(append([]span(nil), frames...), damaged...)
		covered := make([]bool, len(data))
		for _, s := range all {
			if s.Off < 0 || s.End > len(data) || s.Off >= s.End {
				t.Fatalf("span %v out of [0, %d)", s, len(data))
			}
			for i := s.Off; i < s.End; i++ {
				if covered[i] {
					t.Fatalf("byte %d in two spans", i)
				}
				covered[i] = true
			}
		}
		for i, c := range covered {
			if !c {
				t.Fatalf("byte %d in no span", i)
			}
		}
		for _, fr := range frames {
			if end, ok := frameAt(data, fr.Off); !ok || end != fr.End {
				t.Fatalf("frame %v not intact", fr)
			}
		}
		for _, d := range damaged {
			if _, ok := frameAt(data, d.Off); ok {
				t.Fatalf("damaged region %v starts with an intact frame", d)
			}
			if n := lostRecords(data[d.Off:d.End]); n < 1 {
				t.Fatalf("lostRecords = %d, want at least 1", n)
			}
		}
	})
}

// TestSpoolCollector exports the corruption count of each spooled sink.
func TestSpoolCollector(t *testing.T) {
	dir := t.TempDir()
	spoolOf(t, dir, 3)
	seg := filepath.Join(dir, segName(1))
	b, _ := os.ReadFile(seg)
	b[frameHeader+1] ^= 1 // the first record's payload
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRouter(discardLog(), []Sink{WithDelivery(newFake("spooled"), Delivery{Spool: sp}), newFake("plain")}, RouterOptions{})
	defer sp.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewSpoolCollector(func() *Router { return r }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got = append(got, fmt.Sprintf("%s{sink=%q} %v", mf.GetName(), m.GetLabel()[0].GetValue(), m.GetCounter().GetValue()))
		}
	}
	if want := []string{`encwatch_spool_corrupt_records_total{sink="spooled"} 1`}; !slices.Equal(got, want) {
		t.Errorf("gathered %q, want %q", got, want)
	}
	empty := prometheus.NewRegistry()
	empty.MustRegister(NewSpoolCollector(func() *Router { return nil }))
	if mfs, err := empty.Gather(); err != nil || len(mfs) != 0 {
		t.Errorf("collector without a router gathered %d families (%v), want none", len(mfs), err)
	}
}
