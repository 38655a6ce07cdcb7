// Package sink delivers alerts: output formats, transports and the per-sink
// queues that keep a slow or dead destination from stalling detection.
package sink

import (
	"context"

	"github.com/encwatch/encwatch/detect"
)

// Sink is one destination for alerts. Send is called from a single goroutine,
// the sink's own delivery worker; Close is called after the last Send.
type Sink interface {
	Name() string
	Send(ctx context.Context, alerts []detect.Alert) error
	Close() error
}
