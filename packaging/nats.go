package packaging

import _ "embed"

// NATSConf is nats-encwatch.conf, the fleet's users and permissions on
// nats-server, shipped in docs/fleet.md; the fleet tests run against it.
//
//go:embed nats-encwatch.conf
var NATSConf string
