package input

import (
	"context"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/audit/netlink"
)

// DefaultMode is the mode of a policy that names none: the owner.
const DefaultMode = "owner"

func init() {
	Register(Kind{
		Name: DefaultMode,
		Help: "be the audit daemon",
		Live: true, Lossy: true,
		Open: openOwner,
	})
}

// owner is encwatch as the kernel's audit daemon (netlink.Owner): every
// capability.
type owner struct {
	*netlink.Owner
	notices chan string
}

func openOwner(c Config) (Input, error) {
	o, err := netlink.OpenOwner(netlink.OwnerConfig{Settings: c.Settings}, c.Log.WithField("stage", "kernel"))
	if err != nil {
		return nil, err
	}
	return &owner{Owner: o, notices: make(chan string, 16)}, nil
}

// Events reads the kernel's stream in the detection goroutine.
func (o *owner) Events(ctx context.Context, so StreamOptions) (Stream, error) {
	st, err := o.Stream(ctx)
	if err != nil {
		return nil, err
	}
	return Assemble(st, so, o.notices), nil
}

// Reconfigure applies reloaded settings to the kernel.
func (o *owner) Reconfigure(s audit.Settings) error {
	return o.Owner.Reconfigure(netlink.OwnerConfig{Settings: s})
}

// ConfigChanges tells of CONFIG_CHANGE records.
func (o *owner) ConfigChanges() <-chan string { return o.notices }

var (
	_ KernelWatcher = (*owner)(nil)
	_ RuleKeeper    = (*owner)(nil)
	_ SettingsOwner = (*owner)(nil)
	_ Reconfigurer  = (*owner)(nil)
	_ Stats         = (*owner)(nil)
	_ ConfigNotices = (*owner)(nil)
	_ RecordSource  = (*netlink.Stream)(nil)
)
