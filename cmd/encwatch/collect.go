package main

import (
	"context"
	"io"

	"github.com/encwatch/encwatch/internal/config"
	"github.com/encwatch/encwatch/internal/daemon"
)

// cmdCollect is `encwatch collect`: the fleet side, pulling the agents'
// alerts from NATS JetStream into the policy's sinks (docs/fleet.md).
func cmdCollect(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("collect", "--config FILE", stderr)
	path := fs.String("config", defaultConfig, "policy file with a collect block and the sinks to feed")
	level := fs.String("log-level", "info", "log level: debug, info, warning, error")
	format := fs.String("log-format", "auto", "log format: auto (JSON unless stderr is a terminal), json, text")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*level, *format, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*path, config.LoadOptions{RequireRootOwned: true})
	if err != nil {
		return err
	}
	return daemon.Collect(ctx, cfg, log, daemon.CollectOptions{Version: version})
}
