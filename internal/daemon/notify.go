package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// notifier speaks the systemd notification protocol (sd_notify(3)): one
// datagram per message to the unix socket named by NOTIFY_SOCKET. A nil
// *notifier sends nothing, for a daemon not started by systemd.
type notifier struct {
	addr *net.UnixAddr
	// watchdogEvery is half of WATCHDOG_USEC, or 0 when no watchdog is
	// armed for this process.
	watchdogEvery time.Duration
}

// notifierFromEnv returns the notifier NOTIFY_SOCKET and WATCHDOG_USEC
// describe, or nil when there is no NOTIFY_SOCKET.
func notifierFromEnv() *notifier {
	return newNotifier(os.Getenv("NOTIFY_SOCKET"), os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

// newNotifier parses the environment values; a name starting with "@" is an
// abstract socket. WATCHDOG_PID, when set, must name this process.
func newNotifier(socket, watchdogUsec, watchdogPID string, pid int) *notifier {
	if socket == "" {
		return nil
	}
	name := socket
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	n := &notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
	if usec, err := strconv.ParseUint(watchdogUsec, 10, 63); err == nil && usec > 0 {
		if wp, err := strconv.Atoi(watchdogPID); watchdogPID == "" || (err == nil && wp == pid) {
			n.watchdogEvery = time.Duration(usec) * time.Microsecond / 2
		}
	}
	return n
}

// send sends one notification, e.g. "READY=1". Errors are ignored: the
// service manager may be gone, and the daemon works without it.
func (n *notifier) send(state string) {
	_ = n.sendErr(state)
}

func (n *notifier) sendErr(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// reloading says a reload has begun: RELOADING=1 with the CLOCK_MONOTONIC
// time, as Type=notify-reload requires.
func (n *notifier) reloading(monotonic time.Duration) {
	n.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonic.Microseconds()))
}

// watchdog sends WATCHDOG=1 at half the watchdog interval until ctx ends,
// but only while alive says the pipeline still turns: a wedged detection
// stage misses its pings and systemd restarts the service.
func (n *notifier) watchdog(ctx context.Context, alive func() bool) error {
	if n == nil || n.watchdogEvery <= 0 {
		return nil
	}
	t := time.NewTicker(n.watchdogEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if alive() {
				n.send("WATCHDOG=1")
			}
		}
	}
}
