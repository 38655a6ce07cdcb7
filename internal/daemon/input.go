package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/audit/netlink"
	"github.com/encwatch/encwatch/internal/config"
)

// input is where the pipeline's records come from: the kernel as its audit
// daemon (owner), the kernel's multicast group, auditd's dispatcher (audisp)
// or log files (replay). What an input can do beyond reading is an optional
// capability below, discovered with a type assertion; the daemon never asks
// which mode it runs in.
type input interface {
	// Run sends record batches to out until the input ends or ctx does;
	// it does not close out.
	Run(ctx context.Context, out chan<- []audit.Record) error
	// Close releases what opening the input took (sockets, kernel
	// settings, rules). It is called once, after Run has returned.
	Close() error
}

// kernelWatcher is an input reading this machine's kernel audit stream: the
// supervisor checks its status for tampering and loss.
type kernelWatcher interface {
	Status() (netlink.Status, error)
	// Found is the status when the input was opened.
	Found() netlink.Status
	// Rules lists every rule in the kernel, as auditctl prints it.
	Rules() ([]string, error)
}

// ruleKeeper is an input that keeps encwatch's execve rules in the kernel.
type ruleKeeper interface {
	// RulesInstalled reports whether the rules are encwatch's to keep now.
	RulesInstalled() bool
	RuleKey() string
	OwnRules() []string
	// VerifyRules counts encwatch's rules missing from the kernel.
	VerifyRules() (missing int, err error)
	InstallRules() error
}

// settingsOwner is an input that owns the kernel's audit settings and pid,
// and so may repair them.
type settingsOwner interface {
	Enable() error
	Register() error
}

// reconfigurer is an input that applies a reloaded audit block. It is a
// kernelWatcher: the kernel supervisor, which only such an input has,
// applies the block.
type reconfigurer interface {
	kernelWatcher
	Reconfigure(config.Audit) error
}

// streamer is an input the detection stage reads itself (the kernel's
// stream): see recordStream.
type streamer interface {
	Stream(ctx context.Context) (*netlink.Stream, error)
}

// readerStats is an input that counts its own receive losses.
type readerStats interface {
	Stats() netlink.ReaderStats
}

// openInput opens the input of mode, the one place that knows the modes.
func openInput(mode string, cfg *config.Config, opts Options, log *logrus.Entry) (input, error) {
	switch mode {
	case config.ModeOwner:
		o, err := netlink.OpenOwner(ownerConfig(cfg.Audit), log.WithField("stage", "kernel"))
		if err != nil {
			return nil, err
		}
		return ownerInput{o}, nil
	case config.ModeMulticast:
		m, err := netlink.OpenMulticast(multicastConfig(cfg.Audit), log.WithField("stage", "kernel"))
		if err != nil {
			return nil, err
		}
		return multicastInput{m}, nil
	case config.ModeAudisp:
		return &audispInput{stdin: opts.Stdin, log: log}, nil
	}
	// Unreachable for a mode audit.CheckMode accepts.
	return nil, fmt.Errorf("no input for audit mode %q", mode)
}

// ownerInput is encwatch as the kernel's audit daemon: every capability.
type ownerInput struct{ *netlink.Owner }

// Reconfigure applies a reloaded audit block to the kernel.
func (o ownerInput) Reconfigure(a config.Audit) error { return o.Owner.Reconfigure(ownerConfig(a)) }

func ownerConfig(a config.Audit) netlink.OwnerConfig {
	return netlink.OwnerConfig{Settings: a.Settings}
}

// multicastInput reads beside auditd: it watches the kernel and keeps rules
// when asked, but owns no setting.
type multicastInput struct{ *netlink.Multicast }

// Reconfigure applies a reloaded rule key and install_rules.
func (m multicastInput) Reconfigure(a config.Audit) error {
	return m.Multicast.Reconfigure(multicastConfig(a))
}

func multicastConfig(a config.Audit) netlink.MulticastConfig {
	return netlink.MulticastConfig{Settings: a.Settings}
}

var (
	_ kernelWatcher = ownerInput{}
	_ ruleKeeper    = ownerInput{}
	_ settingsOwner = ownerInput{}
	_ reconfigurer  = ownerInput{}
	_ readerStats   = ownerInput{}
	_ kernelWatcher = multicastInput{}
	_ ruleKeeper    = multicastInput{}
	_ reconfigurer  = multicastInput{}
	_ readerStats   = multicastInput{}
	_ streamer      = ownerInput{}
	_ streamer      = multicastInput{}
	_ recordStream  = (*netlink.Stream)(nil)
	_ input         = (*audispInput)(nil)
)

// audispInput reads auditd's records from stdin (audisp mode): auditd's
// rules and settings are auditd's, so it has no capability.
type audispInput struct {
	stdin io.Reader // nil is os.Stdin
	log   *logrus.Entry
}

// Run reads stdin until it ends or ctx does.
func (a *audispInput) Run(ctx context.Context, out chan<- []audit.Record) error {
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
func (a *audispInput) Close() error { return nil }
