package sink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/encwatch/encwatch/detect"
)

// spoolOf appends n alerts to a new spool in dir and closes it.
func spoolOf(t *testing.T, dir string, n int) {
	t.Helper()
	s, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		a := alertN(i)
		if err := s.Append(&a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// frameOffsets lists the offsets of the frames of a segment file.
func frameOffsets(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	frames, damaged := scanFrames(b)
	if len(damaged) != 0 {
		t.Fatalf("%s already damaged: %v", path, damaged)
	}
	var offs []int
	for _, f := range frames {
		offs = append(offs, f.Off)
	}
	return offs
}

// TestSpoolRecoveryResyncs damages one record of 300 in the last segment
// in several ways: recovery must keep every other record, say how many it
// lost (encwatch_spool_corrupt_records_total) and quarantine the bytes.
func TestSpoolRecoveryResyncs(t *testing.T) {
	const n, victim = 300, 100
	tests := []struct {
		name     string
		damage   func(b []byte, off int) []byte
		wantLost uint64
	}{
		{"flipped payload byte", func(b []byte, off int) []byte { b[off+frameHeader+5] ^= 0x40; return b }, 1},
		{"flipped crc byte", func(b []byte, off int) []byte { b[off+4] ^= 1; return b }, 1},
		{"length too large", func(b []byte, off int) []byte {
			binary.LittleEndian.PutUint32(b[off:], 1<<30)
			return b
		}, 1},
		{"length too small", func(b []byte, off int) []byte {
			binary.LittleEndian.PutUint32(b[off:], 3)
			return b
		}, 1},
		{"length zero", func(b []byte, off int) []byte {
			binary.LittleEndian.PutUint32(b[off:], 0)
			return b
		}, 1},
		{"garbage inserted", func(b []byte, off int) []byte {
			return slices.Insert(b, off, []byte("\x07garbage between records")...)
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			spoolOf(t, dir, n)
			seg := filepath.Join(dir, segName(1))
			offs := frameOffsets(t, seg)
			b, _ := os.ReadFile(seg)
			b = tt.damage(b, offs[victim])
			if err := os.WriteFile(seg, b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenSpool(SpoolOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.Corrupt(); got != tt.wantLost {
				t.Errorf("Corrupt() = %d, want %d", got, tt.wantLost)
			}
			if got, want := s.Pending(), n-1; got != want && tt.name != "garbage inserted" {
				t.Errorf("Pending() = %d, want %d", got, want)
			}
			a := alertN(n)
			if err := s.Append(&a); err != nil {
				t.Fatal(err)
			}
			got, _, skipped := readAll(t, s)
			want := slices.Concat(ids(victim), ids(n + 1)[victim+1:])
			if tt.name == "garbage inserted" {
				want = ids(n + 1)
			}
			if !slices.Equal(got, want) || skipped != 0 {
				t.Errorf("read %d alerts (skipped %d), want %d: all but the damaged one", len(got), skipped, len(want))
			}
			q, err := os.ReadFile(seg + quarantineSuffix)
			if err != nil || len(q) == 0 {
				t.Errorf("quarantine file: %d bytes, %v; want the damaged bytes", len(q), err)
			}
		})
	}
}

// TestSpoolRecoveryCountsTornTail: a record cut short at the end is cut
// off, counted and quarantined.
func TestSpoolRecoveryCountsTornTail(t *testing.T) {
	dir := t.TempDir()
	spoolOf(t, dir, 5)
	seg := filepath.Join(dir, segName(1))
	fi, _ := os.Stat(seg)
	if err := os.Truncate(seg, fi.Size()-3); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, _, _ := readAll(t, s)
	if want := ids(4); !slices.Equal(got, want) || s.Corrupt() != 1 {
		t.Errorf("read %v, Corrupt %d; want %v and 1", got, s.Corrupt(), want)
	}
}

// TestSpoolReadResyncs damages a record after the spool was opened: Read
// must skip exactly it, count it, and go on.
func TestSpoolReadResyncs(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 50 {
		a := alertN(i)
		if err := s.Append(&a); err != nil {
			t.Fatal(err)
		}
	}
	seg := filepath.Join(dir, segName(1))
	offs := frameOffsets(t, seg)
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xff, 0xff, 0x7f}, int64(offs[20])); err != nil { // a bad length
		t.Fatal(err)
	}
	f.Close()
	got, next, skipped := readAll(t, s)
	if want := slices.Concat(ids(20), ids(50)[21:]); !slices.Equal(got, want) || skipped != 0 || s.Corrupt() != 1 {
		t.Errorf("read %d alerts, skipped %d, Corrupt %d; want %d, 0, 1", len(got), skipped, s.Corrupt(), len(want))
	}
	if err := s.Ack(next, len(got)); err != nil {
		t.Fatal(err)
	}
	if got := s.Pending(); got != 0 {
		t.Errorf("Pending after acking all = %d, want 0", got)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory (root only)
// and unmounts it when the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: it mounts a small tmpfs to fill up")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// gate is a sink that fails while closed and records what it took.
type gate struct {
	mu    sync.Mutex
	open  bool
	sends int
	got   []string
}

func (g *gate) Name() string { return "gate" }
func (g *gate) Close() error { return nil }
func (g *gate) Send(_ context.Context, batch []detect.Alert) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sends++
	if !g.open {
		return errors.New("receiver down")
	}
	for _, a := range batch {
		g.got = append(g.got, a.ID)
	}
	return nil
}

func (g *gate) state() (sends int, got []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sends, slices.Clone(g.got)
}

// TestSpoolDiskFullAsRoot fills a real 256 KiB tmpfs with a spool while the
// receiver is down, then brings it back: every spooled alert arrives once,
// without re-sending in a loop, every refused one is counted, and once the
// backlog is delivered new alerts spool again although max_bytes was never
// reached.
func TestSpoolDiskFullAsRoot(t *testing.T) {
	dir := filepath.Join(mountTmpfs(t, "256k"), "spool")
	sp, err := OpenSpool(SpoolOptions{Dir: dir, SegmentBytes: 64 << 10, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{}
	r := NewRouter(discardLog(), []Sink{WithDelivery(g, Delivery{Spool: sp})},
		RouterOptions{BatchSize: 64, RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond})
	done := start(r, t.Context())
	var stopOnce sync.Once
	var stopErr error
	stop := func() error {
		stopOnce.Do(func() {
			r.Close()
			stopErr = <-done
		})
		return stopErr
	}
	t.Cleanup(func() { _ = stop() }) // before the unmount, even after a t.Fatal

	n := 0
	deliver := func(k int) {
		for range k {
			a := hostileAlert()
			a.ID = fmt.Sprint(n)
			r.Deliver(a)
			n++
		}
	}
	deliver(2000) // far more than 256 KiB holds
	st := r.Stats()[0]
	if st.Dropped.SpoolError == 0 {
		t.Fatalf("stats %+v: want alerts refused by the full disk", st)
	}
	g.mu.Lock()
	g.open = true
	g.mu.Unlock()
	waitFor(t, func() bool { _, got := g.state(); return uint64(len(got)) >= r.Stats()[0].Queued })

	// The disk has room again: new alerts must spool and arrive, after the
	// disk-full backoff (at most diskFullMax) has passed.
	deadline := time.Now().Add(2*diskFullMax + 5*time.Second)
	for {
		before := r.Stats()[0].Queued
		deliver(1)
		if r.Stats()[0].Queued > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: no alert spooled after the backlog was delivered", r.Stats()[0])
		}
		time.Sleep(20 * time.Millisecond) // polling the backoff's end
	}
	deliver(100)
	waitFor(t, func() bool { _, got := g.state(); return uint64(len(got)) >= r.Stats()[0].Queued })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	sends, got := g.state()
	st = r.Stats()[0]
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("alert %s delivered twice", id)
		}
		seen[id] = true
	}
	t.Logf("%d alerts: %d delivered in %d sends, stats %+v", n, len(got), sends, st)
	if uint64(len(got))+st.Dropped.SpoolError != uint64(n) {
		t.Errorf("delivered %d + dropped %d != %d delivered: an alert went missing uncounted", len(got), st.Dropped.SpoolError, n)
	}
	if maxSends := 2*len(got)/64 + 200; sends > maxSends {
		t.Errorf("%d sends for %d alerts, want at most %d: re-sending in a loop", sends, len(got), maxSends)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond) // polling for delivery
	}
}

// TestOutputPathsAsRoot: the spool and file sinks refuse a symlinked final
// component, directories others can write or own, and files they own.
func TestOutputPathsAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("TestOutputPathsAsRoot needs root: it chowns to nobody")
	}
	victim := func(t *testing.T) string {
		p := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(p, []byte("precious\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		make func(t *testing.T, base string) string
		want string
	}{
		{"symlink to a root file", func(t *testing.T, base string) string {
			p := filepath.Join(base, "out")
			if err := os.Symlink(victim(t), p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "symbolic link"},
		{"directory writable by others", func(t *testing.T, base string) string {
			d := filepath.Join(base, "open")
			if err := os.Mkdir(d, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(d, "out")
		}, "is writable by group or others"},
		{"directory owned by nobody", func(t *testing.T, base string) string {
			d := filepath.Join(base, "theirs")
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(d, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(d, "out")
		}, "is owned by uid 65534"},
	}
	for _, tt := range tests {
		t.Run("file/"+tt.name, func(t *testing.T) {
			p := tt.make(t, t.TempDir())
			_, err := NewFile(discardLog(), "f", p, FileOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewFile(%s) = %v, want an error containing %q", p, err, tt.want)
			}
		})
		t.Run("spool/"+tt.name, func(t *testing.T) {
			p := tt.make(t, t.TempDir())
			s, err := OpenSpool(SpoolOptions{Dir: p})
			if err == nil {
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenSpool(%s) = %v, want an error containing %q", p, err, tt.want)
			}
		})
	}
	t.Run("file owned by nobody", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "out")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		if _, err := NewFile(discardLog(), "f", p, FileOptions{}); err == nil || !strings.Contains(err.Error(), "is owned by uid 65534") {
			t.Errorf("NewFile(%s) = %v, want an ownership error", p, err)
		}
	})
	t.Run("spool segment symlinked", func(t *testing.T) {
		dir := t.TempDir()
		v := victim(t)
		if err := os.Symlink(v, filepath.Join(dir, segName(1))); err != nil {
			t.Fatal(err)
		}
		s, err := OpenSpool(SpoolOptions{Dir: dir})
		if err == nil {
			s.Close()
			t.Errorf("OpenSpool over a symlinked segment = nil, want an error")
		}
		if b, _ := os.ReadFile(v); string(b) != "precious\n" {
			t.Errorf("victim file now holds %q", b)
		}
	})
}

// TestSpoolDiskFullBackoffAsRoot: after ENOSPC, Append fails at once for
// its backoff even when the disk has room again (no I/O per alert), then
// tries the disk again; the waits double, jittered, up to diskFullMax.
func TestSpoolDiskFullBackoffAsRoot(t *testing.T) {
	mnt := mountTmpfs(t, "64k")
	now := time.Unix(1700000000, 0)
	sp, err := OpenSpool(SpoolOptions{Dir: filepath.Join(mnt, "spool"), MaxBytes: 64 << 20, SegmentBytes: 1 << 20,
		now: func() time.Time { return now }, rand: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 32<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	var err2 error
	for i := 0; err2 == nil && i < 10000; i++ {
		a := hostileAlert()
		err2 = sp.Append(&a)
	}
	if !errors.Is(err2, ErrSpoolDiskFull) || !errors.Is(err2, syscall.ENOSPC) {
		t.Fatalf("Append on a full tmpfs = %v, want ErrSpoolDiskFull wrapping ENOSPC", err2)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	a := alertN(1)
	if err := sp.Append(&a); err != ErrSpoolDiskFull {
		t.Errorf("Append during the backoff = %v, want ErrSpoolDiskFull without touching the disk", err)
	}
	now = now.Add(diskFullMin)
	if err := sp.Append(&a); err != nil {
		t.Errorf("Append after the backoff, with room = %v, want nil", err)
	}

	var d diskFull
	o := SpoolOptions{Log: discardLog(), now: func() time.Time { return now }, rand: func() float64 { return 0.999 }}
	var waits []time.Duration
	for range 10 {
		d.enter(o, syscall.ENOSPC)
		waits = append(waits, d.until.Sub(now))
	}
	for i, w := range waits {
		if w > diskFullMax || (i > 0 && w < waits[i-1]) || w < diskFullMin/2 {
			t.Errorf("backoff waits %v: want non-decreasing, within [%v, %v]", waits, diskFullMin/2, diskFullMax)
			break
		}
	}
	if d.lost != 10 {
		t.Errorf("lost = %d after 10 refused appends, want 10", d.lost)
	}
}
