package daemon

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/fleet"
)

// CollectOptions are how Collect is started, beyond the policy.
type CollectOptions struct {
	// Version is the product version the sinks report; "" is "dev".
	Version string
}

// sinkDescs describe the sink metrics collectSinkStats reports, the agent's
// and the collector's alike.
var sinkDescs = []*prometheus.Desc{descQueue, descSpool, descSpoolMax, descSent, descSendErr, descRejected, descDropped}

// Collect runs `encwatch collect` (internal/fleet) on the policy, its
// sinks reported under the agent's sink metrics.
func Collect(ctx context.Context, cfg *config.Config, log *logrus.Entry, opts CollectOptions) error {
	return fleet.Collect(ctx, cfg, log, fleet.Options{Version: opts.Version, SinkStats: collectSinkStats, SinkDescs: sinkDescs})
}
