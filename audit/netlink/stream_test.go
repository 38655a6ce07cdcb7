package netlink

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/encwatch/encwatch/audit"
)

// sendRecord writes one record to fd as the kernel frames it: a netlink
// header, then the text.
func sendRecord(t *testing.T, fd int, typ uint16, text string) {
	t.Helper()
	msg := make([]byte, unix.NLMSG_HDRLEN+len(text))
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	copy(msg[unix.NLMSG_HDRLEN:], text)
	if _, err := unix.Write(fd, msg); err != nil {
		t.Fatal(err)
	}
}

// streamPair is a Stream reading one end of a datagram socket pair, the
// test writing the other: the Stream's wake-ups without the kernel.
func streamPair(t *testing.T, gather time.Duration) (*Stream, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	rd := &reader{data: &socket{fd: fds[0]}, gather: gather}
	s, err := rd.Stream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, fds[1]
}

// waitReady reports whether Ready fired within d.
func waitReady(s *Stream, d time.Duration) bool {
	select {
	case <-s.Ready():
		return true
	case <-time.After(d):
		return false
	}
}

// The stream's cycle: a lead record is handed over at once; a drain that found
// records arms the timer for the next window (Ready fires with no new
// record, and what came meanwhile is read then); an empty drain re-arms the
// socket, after which an idle stream does not wake at all, and the next
// record wakes it again.
func TestStreamWakesPerWindowUnderLoadAndNotWhenIdle(t *testing.T) {
	const gather = 20 * time.Millisecond
	s, peer := streamPair(t, gather)
	read := func() []audit.Record {
		t.Helper()
		var all []audit.Record
		for {
			batch, more, err := s.Read(nil)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, batch...)
			if !more {
				return all
			}
		}
	}

	sendRecord(t, peer, 1300, "first")
	if !waitReady(s, 5*time.Second) {
		t.Fatal("no Ready after the first record")
	}
	if got := read(); len(got) != 1 || string(got[0].Data) != "first" {
		t.Fatalf("first drain read %v, want the one record", got)
	}
	// Under load: the timer, not the socket, ends the next window, and a
	// record sent during it is read at its end.
	sendRecord(t, peer, 1309, "during the window")
	if !waitReady(s, 5*time.Second) {
		t.Fatal("no Ready at the end of the window after a drain that found records")
	}
	if got := read(); len(got) != 1 || string(got[0].Data) != "during the window" {
		t.Fatalf("second drain read %v, want the record sent during the window", got)
	}
	// The timer fires once more; this drain finds nothing and re-arms the
	// socket.
	if !waitReady(s, 5*time.Second) {
		t.Fatal("no Ready at the end of the window after a drain that found records")
	}
	if got := read(); len(got) != 0 {
		t.Fatalf("third drain read %v, want nothing", got)
	}
	// Idle: no wake-up without records.
	if waitReady(s, 10*gather) {
		t.Fatal("an idle stream signalled Ready with no record sent")
	}
	sendRecord(t, peer, 1300, "after idling")
	if !waitReady(s, 5*time.Second) {
		t.Fatal("no Ready for a record sent to an idle stream")
	}
	if got := read(); len(got) != 1 || string(got[0].Data) != "after idling" {
		t.Fatalf("drain after idling read %v, want the one record", got)
	}
}

// The lead record of an idle stream is handed over at once, whatever the
// window: a window of an hour does not hold it back.
func TestStreamHandsOverTheLeadRecord(t *testing.T) {
	s, peer := streamPair(t, time.Hour)
	sendRecord(t, peer, 1300, "lead")
	if !waitReady(s, 5*time.Second) {
		t.Fatal("the lead record of an idle stream waited for the gather window")
	}
	if batch, _, err := s.Read(nil); err != nil || len(batch) != 1 || string(batch[0].Data) != "lead" {
		t.Fatalf("read %v, %v, want the lead record", batch, err)
	}
	// What follows waits for the window.
	sendRecord(t, peer, 1309, "follower")
	if waitReady(s, 200*time.Millisecond) {
		t.Fatal("a record after the lead one was handed over before the window ended")
	}
}

// With no gather window the first record signals Ready at once, and the
// socket is always what is re-armed.
func TestStreamWithoutGatherWindow(t *testing.T) {
	s, peer := streamPair(t, 0)
	for i := range 3 {
		sendRecord(t, peer, 1300, "r")
		if !waitReady(s, 5*time.Second) {
			t.Fatalf("record %d: no Ready", i)
		}
		batch, _, err := s.Read(nil)
		if err != nil || len(batch) != 1 {
			t.Fatalf("record %d: read %v, %v", i, batch, err)
		}
	}
	if waitReady(s, 100*time.Millisecond) {
		t.Fatal("Ready with no record sent")
	}
}
