package main

import (
	"context"
	"io"

	"github.com/encwatch/encwatch/internal/daemon"
)

// cmdCollect is `encwatch collect`: the fleet side, pulling the agents'
// alerts from NATS JetStream into the policy's sinks (docs/fleet.md).
func cmdCollect(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("collect", "--config FILE", stderr)
	df := addDaemonFlags(fs, "policy file with a collect block and the sinks to feed")
	cfg, log, err := df.start(fs, args, stderr)
	if err != nil {
		return err
	}
	return daemon.Collect(ctx, cfg, log, daemon.CollectOptions{Version: version})
}
