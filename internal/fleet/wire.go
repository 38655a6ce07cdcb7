// Package fleet is encwatch's fleet in one place, beside the nats sink that
// publishes an agent's records (internal/sink): the fleet's own records
// (an agent's heartbeat and clean stop, which internal/daemon sends; a
// host's silence and return, a forgery, a stalled collector), and
// `encwatch collect`: the durable JetStream consumer feeding the SIEM
// sinks, who sent a record (its subject, never its payload), the claims
// that let several collectors share a consumer, the liveness of every
// host, and the collector's health and metrics endpoint. docs/fleet.md
// describes it.
package fleet

// Signatures of the fleet's records: an agent's heartbeat and clean stop
// (raised by internal/daemon), a host gone silent and back (raised by the
// collector).
const (
	SigHeartbeat = "agent_heartbeat"
	SigStopped   = "agent_stopped"
	SigSilent    = "agent_silent"
	SigBack      = "agent_back"
)

// Match fields of a heartbeat record. The collector reads
// HeartbeatInterval to know when a host is overdue.
const (
	HeartbeatInterval = "heartbeat.interval_seconds"
	HeartbeatUptime   = "heartbeat.uptime_seconds"
)
