package input

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
)

func init() {
	Register(Kind{
		Name: "audisp",
		Help: "auditd plugin: records on stdin",
		Live: true,
		Open: func(c Config) (Input, error) { return &audisp{stdin: c.Stdin, log: c.Log}, nil },
	})
}

// audisp reads auditd's records from stdin (audisp mode): auditd's
// rules and settings are auditd's, so it has no capability.
type audisp struct {
	stdin io.Reader // nil is os.Stdin
	log   *logrus.Entry
}

// Run reads stdin until it ends or ctx does.
func (a *audisp) Run(ctx context.Context, out chan<- []audit.Record) error {
	r := a.stdin
	if r == nil {
		r = os.Stdin
		// Through the runtime poller, so that a read deadline can end a
		// blocked read when ctx ends (SIGTERM while auditd keeps the pipe
		// open); os.Stdin itself is blocking and cannot take one. Stdin is
		// put back to blocking for whoever shares it after us.
		if err := syscall.SetNonblock(0, true); err == nil {
			defer syscall.SetNonblock(0, false)
			r = os.NewFile(0, "stdin")
		}
	}
	// A blocked read is unblocked by closing (a pipe) or by a deadline (a
	// pollable file) when ctx ends.
	stop := context.AfterFunc(ctx, func() {
		if f, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
			_ = f.SetReadDeadline(time.Unix(1, 0))
		}
		if c, ok := r.(io.Closer); ok && r != io.Reader(os.Stdin) {
			_ = c.Close()
		}
	})
	defer stop()
	onErr := func(line int, err error) {
		a.log.WithFields(logrus.Fields{"line": line}).WithError(err).Warn("skipping malformed audit record")
	}
	err := audit.ReadLog(ctx, r, out, onErr)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audisp: read stdin: %w", err)
	}
	a.log.Info("audisp input ended")
	return nil
}

// Close does nothing: stdin is not ours to close.
func (a *audisp) Close() error { return nil }

// Events feeds stdin's records through the assembler.
func (a *audisp) Events(ctx context.Context, so StreamOptions) (Stream, error) {
	return Feed(ctx, a.Run, so, nil), nil
}
