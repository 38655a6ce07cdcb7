package daemon

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestNotifierSends sends notifications to a unixgram socket the test
// listens on, named by path and in the abstract namespace.
func TestNotifierSends(t *testing.T) {
	tests := []struct{ name, socket string }{
		{"path", filepath.Join(t.TempDir(), "notify.sock")},
		{"abstract", fmt.Sprintf("@encwatch-notify-test-%d", time.Now().UnixNano())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := tt.socket
			if name[0] == '@' {
				name = "\x00" + name[1:]
			}
			ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			n := newNotifier(tt.socket, "", "", 1)
			for _, want := range []string{"READY=1", "RELOADING=1\nMONOTONIC_USEC=1500000", "STOPPING=1"} {
				if want == "READY=1" {
					n.send(want)
				} else if want[0] == 'R' {
					n.reloading(1500 * time.Millisecond)
				} else {
					n.send(want)
				}
				buf := make([]byte, 256)
				ln.SetReadDeadline(time.Now().Add(5 * time.Second))
				k, err := ln.Read(buf)
				if err != nil {
					t.Fatalf("read notification: %v", err)
				}
				if got := string(buf[:k]); got != want {
					t.Errorf("notification = %q, want %q", got, want)
				}
			}
		})
	}
}

// TestNewNotifierWatchdog checks which environments arm the watchdog, and
// at what period.
func TestNewNotifierWatchdog(t *testing.T) {
	tests := []struct {
		socket, usec, pid string
		want              time.Duration
		wantNil           bool
	}{
		{socket: "", wantNil: true},
		{socket: "/run/systemd/notify", usec: "", want: 0},
		{socket: "/run/systemd/notify", usec: "10000000", want: 5 * time.Second},
		{socket: "/run/systemd/notify", usec: "10000000", pid: "42", want: 5 * time.Second},
		{socket: "/run/systemd/notify", usec: "10000000", pid: "43", want: 0},
		{socket: "/run/systemd/notify", usec: "junk", want: 0},
	}
	for _, tt := range tests {
		n := newNotifier(tt.socket, tt.usec, tt.pid, 42)
		if tt.wantNil {
			if n != nil {
				t.Errorf("newNotifier(%q) = %+v, want nil", tt.socket, n)
			}
			continue
		}
		if got := n.watchdogEvery; got != tt.want {
			t.Errorf("newNotifier(%q, %q, %q).watchdogEvery = %v, want %v", tt.socket, tt.usec, tt.pid, got, tt.want)
		}
	}
}

// TestWatchdogOnlyWhileAlive: the watchdog ping goes out only while the
// pipeline says it is alive, so systemd restarts a wedged daemon.
func TestWatchdogOnlyWhileAlive(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n := newNotifier(sock, "20000", "", 1) // WATCHDOG_USEC 20 ms: a ping every 10 ms
	var alive atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.watchdog(ctx, alive.Load) }()

	buf := make([]byte, 64)
	ln.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if k, err := ln.Read(buf); err == nil {
		t.Errorf("got %q while the pipeline was not alive, want no ping", buf[:k])
	}
	alive.Store(true)
	ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, err := ln.Read(buf)
	if err != nil || string(buf[:k]) != "WATCHDOG=1" {
		t.Errorf("read = %q, %v once alive, want WATCHDOG=1", buf[:k], err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("watchdog returned %v", err)
	}
}
