package input

import (
	"context"

	"github.com/encwatch/encwatch/audit"
	"github.com/encwatch/encwatch/audit/netlink"
)

func init() {
	Register(Kind{
		Name: "multicast",
		Help: "read beside auditd",
		Live: true, Lossy: true,
		Open: openMulticast,
	})
}

// multicast reads beside auditd on the readlog group (netlink.Multicast):
// it watches the kernel and keeps rules when asked, but owns no setting.
type multicast struct {
	*netlink.Multicast
	notices chan string
}

func openMulticast(c Config) (Input, error) {
	m, err := netlink.OpenMulticast(netlink.MulticastConfig{Settings: c.Settings}, c.Log.WithField("stage", "kernel"))
	if err != nil {
		return nil, err
	}
	return &multicast{Multicast: m, notices: make(chan string, 16)}, nil
}

// Events reads the kernel's stream in the detection goroutine.
func (m *multicast) Events(ctx context.Context, so StreamOptions) (Stream, error) {
	st, err := m.Stream(ctx)
	if err != nil {
		return nil, err
	}
	return Assemble(st, so, m.notices), nil
}

// Reconfigure applies a reloaded rule key and install_rules.
func (m *multicast) Reconfigure(s audit.Settings) error {
	return m.Multicast.Reconfigure(netlink.MulticastConfig{Settings: s})
}

// ConfigChanges tells of CONFIG_CHANGE records.
func (m *multicast) ConfigChanges() <-chan string { return m.notices }

var (
	_ KernelWatcher = (*multicast)(nil)
	_ RuleKeeper    = (*multicast)(nil)
	_ Reconfigurer  = (*multicast)(nil)
	_ Stats         = (*multicast)(nil)
	_ ConfigNotices = (*multicast)(nil)
)
