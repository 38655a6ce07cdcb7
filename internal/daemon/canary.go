package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
)

// canaryWait bounds how long start-up waits for the canary's event.
const canaryWait = 5 * time.Second

// canary is a marker exec waiting to be seen by the detection stage.
type canary struct {
	marker string
	once   sync.Once
	seen   chan time.Time
}

// check tells c of ev, in the detection goroutine.
func (c *canary) check(ev *audit.Event, now time.Time) {
	for _, a := range ev.Argv {
		if a == c.marker {
			c.once.Do(func() { c.seen <- now })
			return
		}
	}
}

// runCanary execs a harmless marker command and waits until its event has
// come through the assembler: proof that the path from the kernel to
// detection works.
func (d *daemon) runCanary(ctx context.Context) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	c := &canary{marker: "encwatch-canary-" + hex.EncodeToString(b[:]), seen: make(chan time.Time, 1)}
	d.p.canary.Store(c)
	defer d.p.canary.Store(nil)
	wait := d.opts.canaryTimeout
	if wait <= 0 {
		wait = canaryWait
	}
	start := time.Now()
	if err := exec.CommandContext(ctx, "/bin/true", c.marker).Run(); err != nil {
		d.log.WithError(err).Warn("canary exec failed to run")
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case at := <-c.seen:
		d.m.canaryOK.Set(1)
		d.log.WithFields(logrus.Fields{"marker": c.marker, "latency": at.Sub(start).Seconds()}).Info("canary exec seen: kernel to pipeline works")
	case <-t.C:
		d.m.canaryOK.Set(0)
		d.log.WithFields(logrus.Fields{"marker": c.marker, "timeout": wait.Seconds()}).
			Error("CANARY EXEC NOT SEEN: execs may not reach encwatch; check the audit rules, audit_pid and backlog")
	case <-ctx.Done():
	}
}
