package sink

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/encwatch/encwatch/detect"
)

func readAll(t *testing.T, s *Spool) ([]string, Cursor, int) {
	t.Helper()
	batch, next, skipped, err := s.Read(nil, 1<<20)
	if err != nil {
		t.Fatalf("Read = %v", err)
	}
	var got []string
	for _, a := range batch {
		got = append(got, a.ID)
	}
	return got, next, skipped
}

func TestSpoolAppendReadAckReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(SpoolOptions{Dir: dir, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		a := hostileAlert()
		a.ID = strconv.Itoa(i)
		if err := s.Append(&a); err != nil {
			t.Fatal(err)
		}
	}
	batch, next, _, err := s.Read(nil, 5)
	if err != nil || len(batch) != 5 {
		t.Fatalf("Read(5) = %d alerts, %v", len(batch), err)
	}
	if !slices.Equal(batch[0].Event.Argv, hostileArgv) {
		t.Errorf("argv after the spool = %q, want %q", batch[0].Event.Argv, hostileArgv)
	}
	if err := s.Ack(next, 5); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Pending(), 15; got != want {
		t.Errorf("Pending = %d, want %d", got, want)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(segs) < 2 {
		t.Errorf("%d segments, want rotation at 4 KiB", len(segs))
	}
	var onDisk int64
	for _, seg := range segs {
		if fi, err := os.Stat(seg); err == nil {
			onDisk += fi.Size()
		}
	}
	if got := s.Bytes(); got != onDisk || got == 0 {
		t.Errorf("Bytes = %d, want the %d bytes of segment files on disk", got, onDisk)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenSpool(SpoolOptions{Dir: dir, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, next, _ := readAll(t, s)
	want := ids(20)[5:]
	if !slices.Equal(got, want) {
		t.Errorf("after reopen read %v, want %v", got, want)
	}
	if err := s.Ack(next, len(got)); err != nil {
		t.Fatal(err)
	}
	if got := s.Pending(); got != 0 {
		t.Errorf("Pending = %d after acking all, want 0", got)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.wal")); len(segs) != 1 {
		t.Errorf("segments left after acking all: %v, want 1", segs)
	}
}

func TestSpoolTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		a := alertN(i)
		if err := s.Append(&a); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	seg := filepath.Join(dir, segName(1))
	fi, _ := os.Stat(seg)
	if err := os.Truncate(seg, fi.Size()-7); err != nil { // a write cut short by a crash
		t.Fatal(err)
	}
	s, err = OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	a := alertN(3)
	if err := s.Append(&a); err != nil {
		t.Fatal(err)
	}
	got, _, skipped := readAll(t, s)
	if want := []string{"0", "1", "3"}; !slices.Equal(got, want) || skipped != 0 {
		t.Errorf("read %v (skipped %d) after a torn tail, want %v", got, skipped, want)
	}
	s.Close()
}

func TestSpoolFull(t *testing.T) {
	for _, mode := range []string{"drop_newest", "block"} {
		t.Run(mode, func(t *testing.T) {
			s, err := OpenSpool(SpoolOptions{Dir: t.TempDir(), MaxBytes: 4000, WhenFull: mode, BlockTimeout: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var n int
			for i := range 100 {
				a := alertN(i)
				if err := s.Append(&a); err != nil {
					if !errors.Is(err, ErrSpoolFull) {
						t.Fatalf("Append = %v, want ErrSpoolFull", err)
					}
					break
				}
				n++
			}
			if n == 0 || n == 100 {
				t.Fatalf("spool of 4000 bytes took %d alerts", n)
			}
			_, next, _ := readAll(t, s)
			if err := s.Ack(next, n); err != nil {
				t.Fatal(err)
			}
			a := alertN(1000)
			if err := s.Append(&a); err != nil {
				t.Errorf("Append after acking all = %v, want room", err)
			}
		})
	}
}

func TestSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := OpenSpool(SpoolOptions{Dir: dir}); err == nil {
		t.Error("second OpenSpool of the same dir succeeded, want a lock error")
	}
}

func TestRouterSpoolFilterAndDeliver(t *testing.T) {
	sp, err := OpenSpool(SpoolOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	fs := newFake("spooled")
	fs.failFirst = 2
	r := NewRouter(discardLog(), []Sink{WithDelivery(fs, Delivery{MinImportance: detect.Medium, Spool: sp})},
		RouterOptions{BatchSize: 4, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	done := start(r, t.Context())
	var want []string
	for i := range 30 {
		a := alertN(i)
		a.Signature.Importance = detect.Importance(i % 5)
		if a.Signature.Importance >= detect.Medium {
			want = append(want, a.ID)
		}
		r.Deliver(a)
	}
	r.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := fs.received(); !slices.Equal(got, want) {
		t.Errorf("sink got %v, want %v", got, want)
	}
	st := r.Stats()[0]
	if st.Filtered != 12 || st.Queued != 18 || st.Sent != 18 || st.Pending != 0 || st.Dropped.Total() != 0 {
		t.Errorf("stats = %+v, want 12 filtered, 18 queued and sent", st)
	}
}

// TestSpoolSurvivesKill9 spools alerts in a child process that is killed
// with SIGKILL while its receiver is down, then delivers them from a new
// router over the same spool directory.
func TestSpoolSurvivesKill9(t *testing.T) {
	if dir := os.Getenv("ENCWATCH_SPOOL_CHILD"); dir != "" {
		spoolChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolSurvivesKill9$")
	cmd.Env = append(os.Environ(), "ENCWATCH_SPOOL_CHILD="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child prints "spooled" once its 50 alerts are written.
	buf := make([]byte, 64)
	var out []byte
	for !slices.Contains([]string{"spooled\n"}, string(out)) {
		n, err := stdout.Read(buf)
		if err != nil {
			t.Fatalf("child: %v (output %q)", err, out)
		}
		out = append(out, buf[:n]...)
		if len(out) > 8 {
			out = out[len(out)-8:]
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	sp, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	fs := newFake("after-restart")
	r := NewRouter(discardLog(), []Sink{WithDelivery(fs, Delivery{Spool: sp})}, RouterOptions{})
	done := start(r, t.Context())
	r.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := fs.received(), ids(50); !slices.Equal(got, want) {
		t.Errorf("after kill -9 and restart the sink got %v, want %v", got, want)
	}
}

// spoolChild is the process TestSpoolSurvivesKill9 kills: a router whose
// sink always fails, so every alert stays in the spool.
func spoolChild(dir string) {
	sp, err := OpenSpool(SpoolOptions{Dir: dir, FsyncInterval: time.Hour})
	if err != nil {
		panic(err)
	}
	fs := newFake("down")
	fs.failFirst = 1 << 30
	r := NewRouter(discardLog(), []Sink{WithDelivery(fs, Delivery{Spool: sp})}, RouterOptions{})
	go r.Run(context0())
	for i := range 50 {
		r.Deliver(alertN(i))
	}
	os.Stdout.WriteString("spooled\n")
	select {} // wait for SIGKILL
}

func context0() context.Context { return context.Background() }

// TestSpoolSyncsWhenIdle: an alert appended before a quiet spell is fsynced
// once the worker goes idle for FsyncInterval, not left for the next append.
func TestSpoolSyncsWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 5 * time.Second
		sp, err := OpenSpool(SpoolOptions{Dir: t.TempDir(), FsyncInterval: interval})
		if err != nil {
			t.Fatal(err)
		}
		fs := newFake("idle")
		fs.want = 1
		r := NewRouter(discardLog(), []Sink{WithDelivery(fs, Delivery{Spool: sp})}, RouterOptions{})
		done := start(r, t.Context())
		a := hostileAlert()
		r.Deliver(a) // the open's own fsync was just now: this append waits
		<-fs.done
		synctest.Wait()
		if !sp.Unsynced() {
			t.Fatal("spool synced at once; the test needs an append inside FsyncInterval")
		}
		time.Sleep(interval)
		synctest.Wait()
		if sp.Unsynced() {
			t.Error("spool still unsynced after an idle FsyncInterval")
		}
		r.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
